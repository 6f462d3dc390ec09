//! The server behind `coldpatch serve`: the console (`console.rs`), the REST API under
//! `/api/v1` (`api.rs`, documented by `openapi.rs` from the same route table), and the
//! cached fleet view they read (`fleet.rs`), over the job queue and scheduler of the jobs
//! crate. One process holds an embedded catalog; while it runs, the state directory's
//! `server.json` names it, so the CLI can say where to go instead.

pub mod api;
pub mod auth;
pub mod charts;
pub mod console;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod fleet;
pub mod layout;
pub mod openapi;
pub mod report;
pub mod service;
pub mod throttle;
pub mod tls;
pub mod trend;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use coldpatch_catalog::{Catalog, ServerInfo};
use coldpatch_jobs::shared::SharedJobs;
use coldpatch_jobs::{scheduler, Jobs, Queue, Roots};

use crate::error::ApiError;

pub struct AppState {
    pub catalog: Arc<Catalog>,
    /// Where runs are queued: this process's queue on an embedded catalog, the
    /// database's on a shared one.
    pub jobs: Arc<dyn Queue>,
    /// This process's queue and its worker threads (an embedded catalog only).
    pub local: Option<Arc<Jobs>>,
    pub fleet: Arc<fleet::Fleet>,
    pub sessions: auth::Sessions,
    /// Failed logins and bad tokens per client address.
    pub throttle: throttle::Throttle,
    /// The session cookie's Secure flag (on unless the server is told it runs on plain
    /// http for testing).
    pub secure_cookies: bool,
    /// The host paths requests, the console and schedules may name (see
    /// [`coldpatch_jobs::roots`]).
    pub roots: Roots,
}

impl AppState {
    /// `appliances`: libguestfs appliances per patch run.
    pub fn new(
        catalog: Arc<Catalog>,
        secure_cookies: bool,
        appliances: usize,
        roots: Roots,
    ) -> AppState {
        let fleet = Arc::new(fleet::Fleet::default());
        let stale = fleet.clone();
        let (jobs, local): (Arc<dyn Queue>, _) = match SharedJobs::new(catalog.clone()) {
            Ok(shared) => (Arc::new(shared), None),
            Err(_) => {
                let local = Arc::new(
                    Jobs::new(catalog.clone(), appliances, roots.clone())
                        .on_change(move || stale.changed()),
                );
                (local.clone(), Some(local))
            }
        };
        AppState {
            jobs,
            local,
            catalog,
            fleet,
            sessions: auth::Sessions::default(),
            throttle: throttle::Throttle::default(),
            secure_cookies,
            roots,
        }
    }
}

/// Registers the API, the console and the JSON error handlers for bad input.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| ApiError::bad(format!("bad query: {e}")).into()),
    )
    .app_data(
        web::JsonConfig::default()
            .limit(1 << 20)
            .error_handler(|e, _| ApiError::bad(format!("bad JSON body: {e}")).into()),
    )
    .app_data(
        web::FormConfig::default()
            .limit(1 << 20)
            .error_handler(|e, _| ApiError::bad(format!("bad form: {e}")).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|e, _| ApiError::bad(format!("bad path: {e}")).into()),
    )
    .app_data(web::PayloadConfig::new(service::MAX_FEED_UPLOAD))
    .service(
        web::scope("/api/v1")
            .configure(api::configure)
            .default_service(web::to(|| async {
                Err::<actix_web::HttpResponse, _>(ApiError::not_found("no such API route"))
            })),
    )
    .configure(console::configure);
}

/// Serves on `listener` until the process is stopped: https with `tls`, else http.
pub fn run(
    state: web::Data<AppState>,
    listener: TcpListener,
    http_workers: usize,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<actix_web::dev::Server> {
    let s = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(actix_web::middleware::from_fn(auth::authenticate))
            .configure(configure)
    })
    .workers(http_workers.max(1));
    let s = match tls {
        Some(cfg) => s.listen_rustls_0_23(listener, cfg)?,
        None => s.listen(listener)?,
    };
    Ok(s.run())
}

pub struct Options {
    pub listen: String,
    /// Job worker threads (0: jobs only run through [`Jobs::run_next`]).
    pub workers: usize,
    pub appliances: usize,
    pub secure_cookies: bool,
    pub roots: Roots,
    /// (certificate chain, private key), PEM files: serve https.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// On a shared catalog the server's own workers are one more worker on the queue, with
/// the server's roots and `workers` slots, named after its host and pid.
fn own_worker(
    catalog: &Catalog,
    opts: &Options,
    addr: std::net::SocketAddr,
) -> std::io::Result<()> {
    let name = format!(
        "serve-{}-{}",
        coldpatch_jobs::worker::hostname(),
        std::process::id()
    );
    let worker = catalog.acting_as(&name);
    let wopts = coldpatch_jobs::worker::WorkerOptions {
        name,
        roots: opts.roots.clone(),
        slots: opts.workers,
        appliances: opts.appliances,
        batch: 8,
        lease: std::time::Duration::from_secs(30),
    };
    eprintln!("serve: its own jobs run as worker {} ({addr})", wopts.name);
    std::thread::Builder::new()
        .name("coldpatch-own-worker".into())
        .spawn(move || {
            let never = Arc::new(std::sync::atomic::AtomicBool::new(false));
            if let Err(e) = coldpatch_jobs::worker::run(Arc::new(worker), wopts, never) {
                eprintln!("serve: its worker stopped: {e}");
            }
        })?;
    Ok(())
}

/// `coldpatch serve`: opens the catalog, takes back queued runs, starts the workers and
/// the scheduler (which first catches up on what was missed), then serves.
pub fn serve(catalog: Catalog, opts: Options) -> std::io::Result<()> {
    let catalog = Arc::new(catalog);
    let state = web::Data::new(AppState::new(
        catalog.clone(),
        opts.secure_cookies,
        opts.appliances,
        opts.roots.clone(),
    ));
    let tls = opts
        .tls
        .as_ref()
        .map(|(cert, key)| tls::config(cert, key))
        .transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = TcpListener::bind(&opts.listen)?;
    let addr = listener.local_addr()?;
    let server_state = catalog.state().clone();
    server_state.write_server(&ServerInfo {
        pid: std::process::id(),
        listen: addr.to_string(),
    })?;
    if let Some(local) = &state.local {
        match local.resume_queued() {
            Ok(n) if n > 0 => {
                eprintln!("serve: {n} run(s) left queued by the last server queued again")
            }
            Ok(_) => {}
            Err(e) => eprintln!("serve: cannot read queued runs: {e}"),
        }
        local.spawn_workers(opts.workers)?;
    } else if opts.workers > 0 && !opts.roots.images().is_empty() {
        own_worker(&catalog, &opts, addr)?;
    }
    if opts.roots.images().is_empty() {
        eprintln!(
            "serve: no --image-root: requests and schedules can name no image file (only \
             what the catalog holds is shown)"
        );
    }
    scheduler::spawn(catalog.clone(), state.jobs.clone())?;
    eprintln!(
        "serve: console and API on {scheme}://{addr}/ ({})",
        catalog.describe()
    );
    let res = actix_web::rt::System::new().block_on(async move {
        run(
            state,
            listener,
            std::thread::available_parallelism().map_or(2, |n| n.get()),
            tls,
        )?
        .await
    });
    server_state.clear_server();
    res
}
