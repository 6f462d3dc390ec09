//! Who is asking: an API token (`Authorization: Bearer <secret>`) or a console session
//! (cookie `coldpatch_session`, made by logging in with a token). Sessions live in memory,
//! keyed by the SHA-256 of their cookie; a restart logs everyone out, tokens stay.
//! Console forms carry the session's CSRF value, checked on every console POST, and an
//! API request that changes something with only the cookie must send that value in
//! `X-CSRF-Token`; the cookie is HttpOnly, SameSite=Strict and (unless turned off for
//! plain-http testing) Secure. Failed logins and bad tokens are throttled per client
//! address (`throttle.rs`); each token holds at most [`MAX_SESSIONS_PER_TOKEN`] sessions,
//! its oldest ending first, so one holder cannot log out the others. Every authenticated
//! answer carries `Cache-Control: no-store`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::future::{ready, Ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use coldpatch_catalog::{Role, TokenRecord};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::AppState;

pub const COOKIE: &str = "coldpatch_session";
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Sessions one token may hold; a new login ends that token's oldest.
pub const MAX_SESSIONS_PER_TOKEN: usize = 16;
/// Sessions kept in all; beyond, logins are refused until some expire (nobody else's
/// session is ended for it).
const MAX_SESSIONS: usize = 100_000;

#[derive(Debug, Clone)]
pub struct Session {
    pub role: Role,
    pub token: String,
    pub name: String,
    pub csrf: String,
    expires: Instant,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

fn key(cookie: &str) -> String {
    hex::encode(Sha256::digest(cookie.as_bytes()))
}

fn random() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Sessions {
    /// A new session for a token's holder: returns the cookie value, or `None` when the
    /// server holds as many sessions as it keeps.
    pub fn create(&self, t: &TokenRecord) -> Option<String> {
        let cookie = random();
        let s = Session {
            role: t.role,
            token: t.id.clone(),
            name: t.name.clone(),
            csrf: random(),
            expires: Instant::now() + SESSION_TTL,
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        let mine: Vec<(String, Instant)> = map
            .iter()
            .filter(|(_, x)| x.token == t.id)
            .map(|(k, x)| (k.clone(), x.expires))
            .collect();
        if mine.len() >= MAX_SESSIONS_PER_TOKEN {
            if let Some((k, _)) = mine.iter().min_by_key(|(_, e)| *e) {
                map.remove(k);
            }
        } else if map.len() >= MAX_SESSIONS {
            return None;
        }
        map.insert(key(&cookie), s);
        Some(cookie)
    }

    /// Sessions a token holds now.
    pub fn of_token(&self, token: &str) -> usize {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.values()
            .filter(|s| s.token == token && s.expires > now)
            .count()
    }

    pub fn get(&self, cookie: &str) -> Option<Session> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key(cookie))
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    pub fn remove(&self, cookie: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&key(cookie));
    }

    /// Ends every session of a revoked token.
    pub fn revoke_token(&self, token: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.token != token);
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    /// The token's name.
    pub name: String,
    pub token: String,
    /// Set when the caller came with a console session.
    pub session: Option<Session>,
    /// What it authenticated with, to check again later (a live event stream).
    pub credential: Credential,
}

/// A bearer token's secret or a session's cookie, as the caller sent it.
#[derive(Clone)]
pub enum Credential {
    Bearer(String),
    Session(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Bearer(_) => "Bearer(..)",
            Credential::Session(_) => "Session(..)",
        })
    }
}

impl Credential {
    /// Whether it is still good: the token not revoked, the session not ended.
    pub fn still_valid(&self, st: &AppState) -> bool {
        match self {
            Credential::Bearer(secret) => matches!(st.catalog.check_token(secret), Ok(Some(_))),
            Credential::Session(cookie) => st.sessions.get(cookie).is_some(),
        }
    }
}

impl Caller {
    /// Refuses with 403 unless the caller's role is at least `role`.
    pub fn need(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "this needs the {} role; token {} ({}) has {}",
                    role.as_str(),
                    self.token,
                    self.name,
                    self.role.as_str()
                ),
            ))
        }
    }

    /// Checks a console form's CSRF value against the session's.
    pub fn check_csrf(&self, form_value: &str) -> Result<(), ApiError> {
        match &self.session {
            Some(s) if !form_value.is_empty() && s.csrf == form_value => Ok(()),
            _ => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the form's CSRF value is missing or wrong; reload the page and try again",
            )),
        }
    }

    pub fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |s| s.csrf.as_str())
    }
}

/// The client's address as the connection shows it (a proxy's header is not believed).
pub fn client_addr(req: &HttpRequest) -> std::net::IpAddr {
    req.peer_addr()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip())
}

/// 429 while the client's address is throttled for its failures.
pub fn throttled(st: &AppState, addr: std::net::IpAddr) -> Result<(), ApiError> {
    st.throttle.check(addr).map_err(|wait| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed logins or bad tokens from this address; try again in {wait} s"
            ),
        )
    })
}

/// Who sent `req`. A bearer token is looked up in the catalog off the async threads.
async fn identify(req: HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("server state missing"))?
        .clone();
    let addr = client_addr(&req);
    if let Some(h) = req.headers().get("authorization") {
        throttled(&state, addr)?;
        let secret = h
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "the Authorization header must be \"Bearer <token>\"",
                )
            })?;
        let secret = secret.trim().to_string();
        let catalog = state.catalog.clone();
        let s2 = secret.clone();
        let found = crate::service::blocking(move || Ok(catalog.check_token(&s2)?)).await?;
        return match found {
            Some(t) => Ok(Caller {
                role: t.role,
                name: t.name,
                token: t.id,
                session: None,
                credential: Credential::Bearer(secret),
            }),
            None => {
                state.throttle.failed(addr, "token");
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "the token is not valid (unknown or revoked)",
                ))
            }
        };
    }
    if let Some((cookie, s)) = req.cookie(COOKIE).and_then(|c| {
        state
            .sessions
            .get(c.value())
            .map(|s| (c.value().to_string(), s))
    }) {
        let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if changes && req.path().starts_with("/api/") {
            let sent = req
                .headers()
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if sent.is_empty() || sent != s.csrf {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "an API request that changes something with the console's session cookie \
                     needs its CSRF value in the X-CSRF-Token header (or use a bearer token)",
                ));
            }
        }
        return Ok(Caller {
            role: s.role,
            name: s.name.clone(),
            token: s.token.clone(),
            session: Some(s),
            credential: Credential::Session(cookie),
        });
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "authentication required: send \"Authorization: Bearer <token>\" or log in",
    ))
}

/// Who sent a request, as [`authenticate`] found it.
#[derive(Clone)]
struct Identity(Result<Caller, (StatusCode, String)>);

/// Middleware: finds who sent each request once, before any extractor runs (a bearer
/// token is looked up in the catalog off the async threads), and keeps it in the
/// request's extensions for [`Caller`], [`PageCaller`] and [`Need`]. Extraction then
/// never waits, so a role is refused before a handler's body or query is read.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let who = identify(req.request().clone())
        .await
        .map_err(|e| (e.status, e.message));
    let known = who.is_ok();
    req.extensions_mut().insert(Identity(who));
    let mut res = next.call(req).await?;
    if known {
        // What an authenticated caller sees stays out of every cache.
        res.headers_mut().insert(
            actix_web::http::header::CACHE_CONTROL,
            actix_web::http::header::HeaderValue::from_static("no-store"),
        );
    }
    Ok(res)
}

fn caller_of(req: &HttpRequest) -> Result<Caller, ApiError> {
    match req.extensions().get::<Identity>() {
        Some(Identity(Ok(c))) => Ok(c.clone()),
        Some(Identity(Err((status, message)))) => Err(ApiError::new(*status, message.clone())),
        None => Err(ApiError::internal(
            "the request was not authenticated (the server lacks its middleware)",
        )),
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(caller_of(req))
    }
}

/// A console page's caller: like [`Caller`], but an unauthenticated browser is sent to
/// the login page instead of getting a JSON error.
pub struct PageCaller(pub Caller);

impl FromRequest for PageCaller {
    type Error = actix_web::Error;
    type Future = Ready<Result<PageCaller, actix_web::Error>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match caller_of(req) {
            Ok(c) => Ok(PageCaller(c)),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                let to = format!("/login?next={}", encode(req.path()));
                Err(actix_web::error::InternalError::from_response(
                    "login required",
                    HttpResponse::SeeOther()
                        .insert_header(("location", to))
                        .finish(),
                )
                .into())
            }
            Err(e) => Err(e.into()),
        })
    }
}

/// What a query value keeps unencoded: RFC 3986's unreserved characters and `/`.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes a path for a query value.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

pub const OPERATOR: u8 = Role::Operator.rank();
pub const ADMIN: u8 = Role::Admin.rank();

/// A caller with at least the role of rank `R` ([`OPERATOR`], [`ADMIN`]; a number that is
/// no role's rank does not compile). As a handler's first argument it refuses (401/403)
/// before the body or query is even read, so a caller without the role learns nothing
/// from how a bad request would fail.
pub struct Need<const R: u8>(pub Caller);

impl<const R: u8> FromRequest for Need<R> {
    type Error = ApiError;
    type Future = Ready<Result<Need<R>, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let role = const {
            match Role::from_rank(R) {
                Some(r) => r,
                None => panic!("Need<R>: R is not the rank of a role"),
            }
        };
        ready(caller_of(req).and_then(|c| c.need(role).map(|()| Need(c))))
    }
}
