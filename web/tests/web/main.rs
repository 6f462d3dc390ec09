//! The server on port 0 with a real catalog on disk: real images collected natively,
//! real Debian advisories (tests/data/feeds), tokens of every role.

mod api;
mod browser;
mod hardening;
mod trend;

use std::net::TcpListener;

use std::sync::Arc;

use actix_web::web;
use coldpatch_catalog::{Catalog, Role};
use coldpatch_web::AppState;

pub struct Server {
    pub base: String,
    pub state: web::Data<AppState>,
    pub tokens: Vec<(Role, String)>,
    handle: actix_web::dev::ServerHandle,
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let h = self.handle.clone();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(h.stop(false)));
    }
}

impl Server {
    pub fn token(&self, role: Role) -> &str {
        self.tokens
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, t)| t.as_str())
            .expect("token")
    }
}

pub use coldpatch_testkit::{catalog_with, image_dir, root as repo_root};

/// Starts the app on 127.0.0.1:0 with job workers (0: jobs only run when a test says).
pub fn start(dir: tempfile::TempDir, catalog: Catalog, workers: usize) -> Server {
    // What requests may name: the test's own directory (its images are copied there) and
    // the real bullseye-security repository.
    let roots = coldpatch_jobs::Roots::new(
        &[dir.path().to_path_buf()],
        &[image_dir("repo-bullseye-security")],
    )
    .expect("roots");
    start_with(dir, catalog, workers, roots, None)
}

/// [`start`] with the server's roots and, optionally, TLS.
pub fn start_with(
    dir: tempfile::TempDir,
    catalog: Catalog,
    workers: usize,
    roots: coldpatch_jobs::Roots,
    tls: Option<rustls::ServerConfig>,
) -> Server {
    let mut tokens = Vec::new();
    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        let (_, secret) = catalog.create_token(role.as_str(), role).expect("token");
        tokens.push((role, secret));
    }
    let state = web::Data::new(AppState::new(Arc::new(catalog), false, 1, roots));
    // A shared catalog has no local queue: its jobs wait for workers.
    if let Some(local) = &state.local {
        local.spawn_workers(workers).expect("workers");
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = std::sync::mpsc::channel();
    let st = state.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let srv = coldpatch_web::run(st, listener, 2, tls).expect("server");
            tx.send(srv.handle()).expect("handle");
            srv.await
        })
    });
    let handle = rx.recv().expect("server started");
    Server {
        base,
        state,
        tokens,
        handle,
        dir,
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// (status, body) of a request; `token` None: no Authorization header.
pub fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (u16, String) {
    let a = agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut resp = match method {
        "get" | "delete" => {
            let mut r = if method == "get" {
                a.get(url)
            } else {
                a.delete(url)
            };
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            r.call()
        }
        _ => {
            let mut r = match method {
                "post" => a.post(url),
                "put" => a.put(url),
                m => panic!("method {m}"),
            };
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            match body {
                Some(b) => r.send_json(b),
                None => r.send_empty(),
            }
        }
    }
    .expect("request");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, text)
}

/// The `name=value` of the session cookie a login answer sets.
pub fn session_cookie(r: &ureq::http::Response<ureq::Body>) -> String {
    r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string()
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}
