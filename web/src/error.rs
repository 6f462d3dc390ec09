//! Every error the server answers with: a status and a message that says what was wrong.
//! The API answers `{"error": "..."}`; console pages answer the same message as an HTML
//! page with a way back (`console.rs` wraps its routes in [`html_pages`]; the page is `layout.rs`). Internal errors
//! name what failed, never a secret (tokens and session ids never reach an error message).
//! A request at fault is a 4xx; the machine at fault (storage, the appliance, I/O) a 5xx.

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpResponse, ResponseError};
use coldpatch_catalog::CatalogError;
use coldpatch_jobs::JobError;
use coldpatch_patcher::PatchError;

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
pub fn chain(e: impl std::error::Error + Send + Sync + 'static) -> String {
    format!("{:#}", anyhow::Error::new(e))
}

fn catalog_status(e: &CatalogError) -> StatusCode {
    match e {
        CatalogError::NoImage(_)
        | CatalogError::NoRun(_)
        | CatalogError::NoToken(_)
        | CatalogError::NoSchedule(_)
        | CatalogError::NoRepo(_)
        | CatalogError::NoVersion { .. } => StatusCode::NOT_FOUND,
        CatalogError::NotCollected(_)
        | CatalogError::NoParent(_)
        | CatalogError::Moved { .. }
        | CatalogError::FeedMoved { .. }
        | CatalogError::NotEmpty { .. }
        | CatalogError::NotShared { .. }
        | CatalogError::NameTaken { .. }
        | CatalogError::WorkerTaken { .. } => StatusCode::CONFLICT,
        CatalogError::Pattern { .. } | CatalogError::Label { .. } => StatusCode::BAD_REQUEST,
        CatalogError::Locked { .. } | CatalogError::Connect { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        CatalogError::Store { .. }
        | CatalogError::Corrupt { .. }
        | CatalogError::State { .. }
        | CatalogError::NoStateDir { .. }
        | CatalogError::Location { .. }
        | CatalogError::Newer { .. }
        | CatalogError::Foreign { .. }
        | CatalogError::Output => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> ApiError {
        ApiError::new(catalog_status(&e), chain(e))
    }
}

impl From<PatchError> for ApiError {
    fn from(e: PatchError) -> ApiError {
        let status = match &e {
            PatchError::Catalog(c) => catalog_status(c),
            PatchError::Busy { .. } => StatusCode::CONFLICT,
            e if e.is_request() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, chain(e))
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> ApiError {
        let status = match &e {
            JobError::Catalog(c) => catalog_status(c),
            JobError::NotCancellable { .. } => StatusCode::CONFLICT,
            JobError::NoImages | JobError::Cron { .. } => StatusCode::BAD_REQUEST,
            JobError::Encode(_) | JobError::Thread(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, chain(e))
    }
}

/// Error responses of the routes it wraps rendered as an HTML page (for people in a
/// browser), with the same status and message.
pub fn html_pages<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(|res: ServiceResponse<B>| {
        let status = res.status();
        let message = res.response().error().map_or_else(
            || status.canonical_reason().unwrap_or("error").to_string(),
            ToString::to_string,
        );
        let (req, _) = res.into_parts();
        let page = crate::layout::error_page(status, &message);
        Ok(ErrorHandlerResponse::Response(
            ServiceResponse::new(req, page).map_into_right_body::<B>(),
        ))
    })
}
