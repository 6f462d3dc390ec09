//! Every error the server answers with: a status and a JSON body `{"error": "..."}` that
//! says what was wrong. Internal errors name what failed, never a secret (tokens and
//! session ids never reach an error message).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use coldpatch_catalog::CatalogError;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(serde_json::json!({ "error": self.message }))
    }
}

/// An error and its causes on one line, `outer: inner: ...`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        message.push_str(&format!(": {s}"));
        src = s.source();
    }
    message
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> ApiError {
        let status = match e {
            CatalogError::NoImage(_)
            | CatalogError::NoRun(_)
            | CatalogError::NoToken(_)
            | CatalogError::NoSchedule(_)
            | CatalogError::NoRepo(_)
            | CatalogError::NoVersion { .. } => StatusCode::NOT_FOUND,
            CatalogError::NotCollected(_) | CatalogError::NoParent(_) => StatusCode::CONFLICT,
            CatalogError::Pattern { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, chain(&e))
    }
}

impl From<coldpatch_patcher::PatchError> for ApiError {
    fn from(e: coldpatch_patcher::PatchError) -> ApiError {
        ApiError::bad(e.to_string())
    }
}
