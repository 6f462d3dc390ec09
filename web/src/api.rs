//! The REST API under `/api/v1`. Every route is declared once, in [`routes!`]: the same
//! table registers the handlers and writes the OpenAPI document (`openapi.rs`), so the
//! document cannot drift from the routes. Viewer routes take a [`Caller`] (being
//! authenticated is being at least a viewer); operator and admin routes take `Need<ROLE>`.
//! Lists page with `limit` (default 50, at most 500) and `offset` and answer
//! `{items, total, limit, offset}`.

use std::path::Path;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use coldpatch_catalog::{Action, PlanPolicy, Role, RunState, Schedule, Versions};
use coldpatch_vuln::distro::from_os_release;
use coldpatch_vuln::Severity;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Need, ADMIN, OPERATOR};
use crate::error::{ApiError, ApiResult};
use crate::fleet::{ImageSummary, SEVERITIES};
use crate::jobs::JobSpec;
use crate::AppState;

type St = web::Data<AppState>;

/// One documented route.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    pub method: &'static str,
    /// Relative to `/api/v1`.
    pub path: &'static str,
    /// `None`: no authentication (the health check only).
    pub role: Option<Role>,
    pub summary: &'static str,
    pub query: &'static [&'static str],
    /// A JSON (or, for feeds, file) request body.
    pub body: bool,
}

macro_rules! role {
    (none) => {
        None
    };
    ($r:ident) => {
        Some(Role::$r)
    };
}

macro_rules! routes {
    ($( $method:ident $path:literal $role:ident [$($q:literal),*] $body:literal => $handler:path, $summary:literal; )*) => {
        pub const ROUTES: &[RouteDoc] = &[ $( RouteDoc {
            method: stringify!($method),
            path: $path,
            role: role!($role),
            summary: $summary,
            query: &[$($q),*],
            body: $body,
        } ),* ];

        /// Registers every route of [`ROUTES`] (paths relative to `/api/v1`).
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $( cfg.route($path, web::$method().to($handler)); )*
        }
    };
}

routes! {
    get "/health" none [] false => health, "Liveness: no authentication";
    get "/openapi.json" Viewer [] false => crate::openapi::serve, "This document";
    get "/images" Viewer ["q", "os", "vulnerable", "min_severity", "limit", "offset"] false => images, "Images, with their current version's summary";
    get "/images/{id}" Viewer [] false => image, "One image: record, versions, summary";
    get "/images/{id}/packages" Viewer ["q", "limit", "offset"] false => image_packages, "Packages of an image's current version";
    get "/images/{id}/files" Viewer ["q", "path", "limit", "offset"] false => image_files, "Files of an image's current version";
    get "/images/{id}/findings" Viewer ["min_severity", "fixable", "limit", "offset"] false => image_findings, "Findings of an image's current version";
    get "/images/{id}/versions" Viewer [] false => image_versions, "Versions of an image with their findings counts";
    get "/packages" Viewer ["name", "older_than", "limit", "offset"] false => packages, "Packages across the fleet";
    get "/files" Viewer ["path", "sha256", "limit", "offset"] false => files, "Files across the fleet by path glob or SHA-256";
    get "/advisories" Viewer ["q", "min_severity", "limit", "offset"] false => advisories, "Advisories that hit the fleet";
    get "/advisories/{id}" Viewer [] false => advisory, "One advisory and the images it hits";
    get "/affected/{cve}" Viewer ["limit", "offset"] false => affected, "Images affected by an advisory or CVE";
    get "/shared" Viewer ["images"] false => shared, "Content the images share";
    get "/feeds" Viewer ["limit", "offset"] false => feeds, "Imported feeds";
    post "/feeds" Admin ["name", "format"] true => feed_upload, "Import a feed file (OSV record or zip, Debian tracker JSON, Alpine secdb)";
    post "/scans" Operator [] true => scan_start, "Queue a collect-and-match run";
    post "/plans" Operator [] true => plan_preview, "Preview a patch plan (writes nothing)";
    get "/runs" Viewer ["state", "kind", "image", "limit", "offset"] false => runs, "Runs, newest first";
    post "/runs" Operator [] true => run_start, "Queue a patch run";
    get "/runs/{id}" Viewer [] false => run, "One run with its images and events";
    post "/runs/{id}/cancel" Operator [] false => run_cancel, "Cancel a queued or running run";
    get "/runs/{id}/events" Viewer [] false => crate::console::run_events, "A run's events as server-sent events, live until it finishes";
    get "/schedules" Viewer ["limit", "offset"] false => schedules, "Schedules";
    post "/schedules" Admin [] true => schedule_create, "Create a schedule";
    get "/schedules/{id}" Viewer [] false => schedule, "One schedule";
    put "/schedules/{id}" Admin [] true => schedule_update, "Replace a schedule";
    delete "/schedules/{id}" Admin [] false => schedule_delete, "Delete a schedule";
    get "/tokens" Admin ["limit", "offset"] false => tokens, "API tokens (never their secrets)";
    post "/tokens" Admin [] true => token_create, "Create a token; the answer holds its secret, shown once";
    delete "/tokens/{id}" Admin [] false => token_revoke, "Revoke a token and end its sessions";
}

#[derive(Debug, Deserialize)]
pub struct PageQ {
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

pub const MAX_LIMIT: usize = 500;

#[derive(Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
}

pub fn paged<T>(
    mut items: Vec<T>,
    limit: Option<usize>,
    offset: Option<usize>,
) -> ApiResult<Paged<T>> {
    let limit = limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad(format!("limit must be 1..={MAX_LIMIT}")));
    }
    let offset = offset.unwrap_or(0);
    let total = items.len();
    let items = if offset >= total {
        Vec::new()
    } else {
        items.drain(offset..total.min(offset + limit)).collect()
    };
    Ok(Paged {
        items,
        total,
        limit,
        offset,
    })
}

/// A JSON answer (a `Value`, which unlike a response may cross threads).
pub type Reply = web::Json<serde_json::Value>;

fn ok<T: Serialize>(v: &T) -> Reply {
    web::Json(serde_json::to_value(v).unwrap_or_default())
}

fn severity(s: Option<&str>) -> ApiResult<Option<Severity>> {
    s.map(|s| {
        s.parse::<Severity>().map_err(|_| {
            ApiError::bad(format!(
                "unknown severity {s:?} (critical, high, medium, low, negligible, unknown)"
            ))
        })
    })
    .transpose()
}

/// Runs catalog work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    web::block(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker: {e}")))?
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesQ {
    pub q: Option<String>,
    pub os: Option<String>,
    pub vulnerable: Option<bool>,
    pub min_severity: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

/// The images a filter selects, from the fleet view.
pub fn filter_images<'v>(v: &'v [ImageSummary], q: &ImagesQ) -> ApiResult<Vec<&'v ImageSummary>> {
    let min = severity(q.min_severity.as_deref())?;
    Ok(v.iter()
        .filter(|i| q.q.as_ref().is_none_or(|s| i.path.contains(s.as_str())))
        .filter(|i| {
            q.os.as_ref()
                .is_none_or(|o| i.os.as_deref().is_some_and(|x| x.contains(o.as_str())))
        })
        .filter(|i| {
            q.vulnerable
                .is_none_or(|want| want != i.findings.is_empty())
        })
        .filter(|i| min.is_none_or(|m| i.findings.iter().any(|f| f.severity >= m)))
        .collect())
}

async fn images(st: St, _: Caller, q: web::Query<ImagesQ>) -> ApiResult<Reply> {
    let view = blocking(move || Ok(st.fleet.view(&st.catalog)?)).await?;
    let list = filter_images(&view.images, &q)?;
    Ok(ok(&paged(list, q.limit, q.offset)?))
}

pub fn image_id(st: &AppState, id: &str) -> ApiResult<coldpatch_catalog::ImageRecord> {
    if id.parse::<u64>().is_err() {
        return Err(ApiError::bad(format!("image id {id:?} is not a number")));
    }
    Ok(st.catalog.image(id)?)
}

async fn image(st: St, _: Caller, id: web::Path<String>) -> ApiResult<Reply> {
    blocking(move || {
        let img = image_id(&st, &id)?;
        let versions = st.catalog.versions_of(&img)?;
        let scan = img.current_scan.map(|s| st.catalog.scan(s)).transpose()?;
        let view = st.fleet.view(&st.catalog)?;
        let summary = view.image(img.id).cloned();
        Ok(ok(&serde_json::json!({
            "image": img, "versions": versions, "scan": scan, "summary": summary,
        })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQ {
    pub q: Option<String>,
    pub path: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

async fn image_packages(
    st: St,
    _: Caller,
    id: web::Path<String>,
    q: web::Query<SearchQ>,
) -> ApiResult<Reply> {
    blocking(move || {
        let img = image_id(&st, &id)?;
        let (_, inv) = st.catalog.current_inventory(&img.path)?;
        let list: Vec<_> = inv
            .packages
            .into_iter()
            .filter(|p| q.q.as_ref().is_none_or(|s| p.name.contains(s.as_str())))
            .collect();
        Ok(ok(&paged(list, q.limit, q.offset)?))
    })
    .await
}

async fn image_files(
    st: St,
    _: Caller,
    id: web::Path<String>,
    q: web::Query<SearchQ>,
) -> ApiResult<Reply> {
    blocking(move || {
        let img = image_id(&st, &id)?;
        let hits = st
            .catalog
            .files(Some(&img.path), Versions::Current, q.path.as_deref(), None)?;
        let list: Vec<_> = hits
            .into_iter()
            .map(|h| h.file)
            .filter(|f| q.q.as_ref().is_none_or(|s| f.path.contains(s.as_str())))
            .collect();
        Ok(ok(&paged(list, q.limit, q.offset)?))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingsQ {
    pub min_severity: Option<String>,
    pub fixable: Option<bool>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

async fn image_findings(
    st: St,
    _: Caller,
    id: web::Path<String>,
    q: web::Query<FindingsQ>,
) -> ApiResult<Reply> {
    let min = severity(q.min_severity.as_deref())?;
    blocking(move || {
        let img = image_id(&st, &id)?;
        let view = st.fleet.view(&st.catalog)?;
        let mut list: Vec<_> = view
            .image(img.id)
            .map(|i| i.findings.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|f| min.is_none_or(|m| f.severity >= m))
            .filter(|f| q.fixable.is_none_or(|w| w == f.fixed.is_some()))
            .collect();
        list.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.of.advisory.cmp(&b.of.advisory))
        });
        Ok(ok(&paged(list, q.limit, q.offset)?))
    })
    .await
}

/// Each version of an image with its findings by severity (matched now, against the
/// stored feeds): what the findings-over-versions chart draws.
#[derive(Debug, Clone, Serialize)]
pub struct VersionFindings {
    pub version: coldpatch_catalog::VersionRecord,
    pub by_severity: Option<[usize; 6]>,
}

pub fn version_findings(
    st: &AppState,
    img: &coldpatch_catalog::ImageRecord,
) -> ApiResult<Vec<VersionFindings>> {
    let view = st.fleet.view(&st.catalog)?;
    let current = view
        .image(img.id)
        .filter(|s| s.version == img.current_version);
    let mut out = Vec::new();
    for v in st.catalog.versions_of(img)? {
        let by_severity = match v.scan {
            // The current version's counts are in the fleet view already.
            Some(_) if v.number == img.current_version && current.is_some() => {
                current.map(|c| c.by_severity)
            }
            Some(s) => {
                let inv = st.catalog.inventory(s, false)?;
                let found = inv
                    .os
                    .as_ref()
                    .and_then(|o| from_os_release(&o.id, &o.version_id, &o.version_codename))
                    .map(|d| view.index.findings(&d, &inv.packages))
                    .unwrap_or_default();
                let mut t = [0; 6];
                for f in &found {
                    t[crate::fleet::severity_slot(f.severity)] += 1;
                }
                Some(t)
            }
            None => None,
        };
        out.push(VersionFindings {
            version: v,
            by_severity,
        });
    }
    Ok(out)
}

async fn image_versions(st: St, _: Caller, id: web::Path<String>) -> ApiResult<Reply> {
    blocking(move || {
        let img = image_id(&st, &id)?;
        Ok(ok(&serde_json::json!({
            "severities": SEVERITIES,
            "items": version_findings(&st, &img)?,
        })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackagesQ {
    name: Option<String>,
    older_than: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn packages(st: St, _: Caller, q: web::Query<PackagesQ>) -> ApiResult<Reply> {
    blocking(move || {
        let hits = st.catalog.packages(
            None,
            Versions::Current,
            q.name.as_deref(),
            q.older_than.as_deref(),
        )?;
        Ok(ok(&paged(hits, q.limit, q.offset)?))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesQ {
    path: Option<String>,
    sha256: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn files(st: St, _: Caller, q: web::Query<FilesQ>) -> ApiResult<Reply> {
    if q.path.is_none() && q.sha256.is_none() {
        return Err(ApiError::bad(
            "give path (a glob) or sha256: the fleet's every file is too long a list",
        ));
    }
    blocking(move || {
        let hits = st.catalog.files(
            None,
            Versions::Current,
            q.path.as_deref(),
            q.sha256.as_deref(),
        )?;
        Ok(ok(&paged(hits, q.limit, q.offset)?))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvisoriesQ {
    q: Option<String>,
    min_severity: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

#[derive(Serialize)]
struct AdvisoryRow {
    id: String,
    severity: Severity,
    images: usize,
}

async fn advisories(st: St, _: Caller, q: web::Query<AdvisoriesQ>) -> ApiResult<Reply> {
    let min = severity(q.min_severity.as_deref())?;
    let view = blocking(move || Ok(st.fleet.view(&st.catalog)?)).await?;
    let mut rows: Vec<AdvisoryRow> = view
        .advisories_hit()
        .iter()
        .filter(|(id, s, _)| {
            q.q.as_ref()
                .is_none_or(|x| id.to_ascii_lowercase().contains(&x.to_ascii_lowercase()))
                && min.is_none_or(|m| *s >= m)
        })
        .map(|(id, severity, images)| AdvisoryRow {
            id: id.clone(),
            severity: *severity,
            images: *images,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.images.cmp(&a.images))
            .then(a.id.cmp(&b.id))
    });
    Ok(ok(&paged(rows, q.limit, q.offset)?))
}

/// One image an advisory hits, with the packages it is found in.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub image: u64,
    pub path: String,
    pub version: u32,
    pub findings: Vec<coldpatch_vuln::Finding>,
}

/// Images an advisory (or an alias of it) hits, from the fleet view.
pub fn hits(view: &crate::fleet::FleetView, id: &str) -> Vec<Hit> {
    view.images
        .iter()
        .filter_map(|i| {
            let f: Vec<_> = i
                .findings
                .iter()
                .filter(|f| f.of.names(id))
                .cloned()
                .collect();
            (!f.is_empty()).then(|| Hit {
                image: i.id,
                path: i.path.clone(),
                version: i.version,
                findings: f,
            })
        })
        .collect()
}

async fn advisory(st: St, _: Caller, id: web::Path<String>) -> ApiResult<Reply> {
    let view = blocking(move || Ok(st.fleet.view(&st.catalog)?)).await?;
    let h = hits(&view, &id);
    let Some(first) = h.first().and_then(|x| x.findings.first()) else {
        return Err(ApiError::not_found(format!(
            "advisory {id} hits no image in the catalog (or no imported feed holds it)"
        )));
    };
    let worst = h.iter().flat_map(|x| &x.findings).map(|f| f.severity).max();
    Ok(ok(&serde_json::json!({
        "id": first.of.advisory, "aliases": first.of.aliases, "feed": first.of.feed,
        "severity": worst, "images": h,
    })))
}

async fn affected(
    st: St,
    _: Caller,
    id: web::Path<String>,
    q: web::Query<PageQ>,
) -> ApiResult<Reply> {
    let view = blocking(move || Ok(st.fleet.view(&st.catalog)?)).await?;
    Ok(ok(&paged(hits(&view, &id), q.limit, q.offset)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedQ {
    /// Comma-separated image ids; none: every image.
    images: Option<String>,
}

async fn shared(st: St, _: Caller, q: web::Query<SharedQ>) -> ApiResult<Reply> {
    blocking(move || Ok(ok(&shared_report(&st, q.images.as_deref())?))).await
}

pub fn shared_report(
    st: &AppState,
    ids: Option<&str>,
) -> ApiResult<coldpatch_catalog::shared::SharedReport> {
    let keys: Vec<String> = match ids.filter(|s| !s.trim().is_empty()) {
        Some(s) => s
            .split(',')
            .map(|i| image_id(st, i.trim()).map(|r| r.path))
            .collect::<ApiResult<_>>()?,
        None => st.catalog.images()?.into_iter().map(|i| i.path).collect(),
    };
    Ok(st.catalog.shared(&keys)?)
}

async fn feeds(st: St, _: Caller, q: web::Query<PageQ>) -> ApiResult<Reply> {
    Ok(ok(&paged(st.catalog.feeds()?, q.limit, q.offset)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedQ {
    name: Option<String>,
    format: Option<String>,
}

/// Largest feed file accepted by upload (the Debian tracker JSON is under 100 MiB).
pub const MAX_FEED_UPLOAD: usize = 128 << 20;

async fn feed_upload(
    Need(who): Need<ADMIN>,
    st: St,
    q: web::Query<FeedQ>,
    body: web::Bytes,
) -> ApiResult<Reply> {
    let report = blocking(move || {
        let source = format!("upload by token {} ({})", who.token, who.name);
        import_upload(&st, q.name.as_deref(), q.format.as_deref(), &source, &body)
    })
    .await?;
    Ok(ok(&report))
}

/// Validates an uploaded feed fully (parsed with the same limits as `feed import`) and
/// only then stores it.
pub fn import_upload(
    st: &AppState,
    name: Option<&str>,
    format: Option<&str>,
    source: &str,
    body: &[u8],
) -> ApiResult<coldpatch_catalog::ImportReport> {
    if body.is_empty() {
        return Err(ApiError::bad("the feed upload is empty"));
    }
    if let Some(n) = name {
        if n.is_empty()
            || n.len() > 100
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(ApiError::bad(
                "a feed name is 1-100 characters of letters, digits and - _ . :",
            ));
        }
    }
    let format = format
        .map(|f| {
            f.parse::<coldpatch_vuln::feed::Format>()
                .map_err(ApiError::bad)
        })
        .transpose()?;
    let dir = st.catalog.dir().join("uploads");
    std::fs::create_dir_all(&dir)
        .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
    let tmp = tempfile::Builder::new()
        .prefix("feed-")
        .tempfile_in(&dir)
        .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
    std::fs::write(tmp.path(), body).map_err(|e| ApiError::internal(e.to_string()))?;
    let data = coldpatch_vuln::feed::read(tmp.path(), format).map_err(|e| {
        ApiError::bad(format!(
            "not a valid feed; nothing stored: {}",
            e.to_string()
                .replace(&tmp.path().display().to_string(), "upload")
        ))
    })?;
    if data.advisories.is_empty() {
        return Err(ApiError::bad(format!(
            "the upload holds no usable advisory ({} rejected); nothing stored",
            data.rejected.len()
        )));
    }
    let name = name.map_or_else(|| data.suggested_name.clone(), str::to_string);
    let report = st
        .catalog
        .import_feed(&name, source, st.catalog.now(), data)?;
    st.fleet.changed();
    Ok(report)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanReq {
    /// Image files on the server; none: every image in the catalog.
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default)]
    pub rescan: bool,
}

/// Image files a request names: each must be a regular file (or an image already in the
/// catalog, by id or path); none: every image.
pub fn image_files_of(st: &AppState, images: &[String]) -> ApiResult<Vec<String>> {
    if images.is_empty() {
        return Ok(st.catalog.images()?.into_iter().map(|i| i.path).collect());
    }
    images
        .iter()
        .map(|i| {
            if let Ok(r) = st.catalog.image(i) {
                return Ok(r.path);
            }
            let p = Path::new(i);
            match std::fs::metadata(p) {
                Ok(m) if m.is_file() => p
                    .canonicalize()
                    .map(|c| c.display().to_string())
                    .map_err(|e| ApiError::bad(format!("{i}: {e}"))),
                Ok(_) => Err(ApiError::bad(format!("{i} is not a regular file"))),
                Err(e) => Err(ApiError::bad(format!("{i}: {e}"))),
            }
        })
        .collect()
}

async fn scan_start(
    Need(_): Need<OPERATOR>,
    st: St,
    body: web::Json<ScanReq>,
) -> ApiResult<HttpResponse> {
    let run = blocking(move || {
        let images = image_files_of(&st, &body.images)?;
        st.jobs.submit(
            &JobSpec::Collect {
                images,
                rescan: body.rescan,
            },
            None,
        )
    })
    .await?;
    Ok(HttpResponse::Accepted().json(run))
}

/// (Unknown fields cannot be refused here: serde does not combine that with the
/// flattened policy.)
#[derive(Debug, Deserialize)]
pub struct PatchReq {
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default)]
    pub image: Option<String>,
    pub repo: String,
    #[serde(flatten)]
    pub policy: PlanPolicy,
}

/// A repository directory a request names: it must exist.
pub fn repo_dir(repo: &str) -> ApiResult<String> {
    let p = Path::new(repo);
    if !p.is_dir() {
        return Err(ApiError::bad(format!(
            "repository {repo} is not a directory on the server"
        )));
    }
    p.canonicalize()
        .map(|c| c.display().to_string())
        .map_err(|e| ApiError::bad(format!("{repo}: {e}")))
}

pub fn check_policy(p: &PlanPolicy) -> ApiResult<()> {
    if let PlanPolicy::Cves { ids } = p {
        if ids.is_empty() || ids.iter().any(|i| i.trim().is_empty()) {
            return Err(ApiError::bad(
                "policy cves needs at least one advisory or CVE id",
            ));
        }
    }
    Ok(())
}

async fn plan_preview(
    Need(_): Need<OPERATOR>,
    st: St,
    body: web::Json<PatchReq>,
) -> ApiResult<Reply> {
    blocking(move || {
        check_policy(&body.policy)?;
        let image = body
            .image
            .clone()
            .or_else(|| body.images.first().cloned())
            .ok_or_else(|| ApiError::bad("name the image to plan"))?;
        let repo = repo_dir(&body.repo)?;
        let (img, inv) = st.catalog.current_inventory(&image)?;
        let (_, index) = coldpatch_patcher::repository(&st.catalog, Path::new(&repo))?;
        let view = st.fleet.view(&st.catalog)?;
        let findings = view
            .image(img.id)
            .map(|i| i.findings.clone())
            .unwrap_or_default();
        match coldpatch_patcher::plan(
            &img.path,
            &inv.packages,
            &findings,
            &index,
            &crate::jobs::request(&body.policy),
        ) {
            Ok(p) => Ok(ok(&p)),
            Err(r) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("cannot plan {}: {r}", img.path),
            )),
        }
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQ {
    pub state: Option<String>,
    pub kind: Option<String>,
    pub image: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

pub fn list_runs(st: &AppState, q: &RunsQ) -> ApiResult<Vec<coldpatch_catalog::RunRecord>> {
    if let Some(s) = &q.state {
        serde_json::from_value::<RunState>(serde_json::Value::String(s.clone()))
            .map_err(|_| ApiError::bad(format!("unknown run state {s:?}")))?;
    }
    Ok(st
        .catalog
        .runs()?
        .into_iter()
        .filter(|r| q.state.as_ref().is_none_or(|s| r.state.as_str() == s))
        .filter(|r| q.kind.as_ref().is_none_or(|k| &r.kind == k))
        .filter(|r| {
            q.image
                .as_ref()
                .is_none_or(|i| r.images.iter().any(|x| x.contains(i.as_str())))
        })
        .collect())
}

async fn runs(st: St, _: Caller, q: web::Query<RunsQ>) -> ApiResult<Reply> {
    blocking(move || Ok(ok(&paged(list_runs(&st, &q)?, q.limit, q.offset)?))).await
}

/// Queues a patch run from a request.
pub fn start_patch(st: &AppState, body: &PatchReq) -> ApiResult<coldpatch_catalog::RunRecord> {
    check_policy(&body.policy)?;
    let repo = repo_dir(&body.repo)?;
    let mut names = body.images.clone();
    names.extend(body.image.clone());
    if names.is_empty() {
        return Err(ApiError::bad("name at least one image to patch"));
    }
    let images = names
        .iter()
        .map(|i| Ok(st.catalog.image(i)?.path))
        .collect::<ApiResult<Vec<_>>>()?;
    st.jobs.submit(
        &JobSpec::Patch {
            images,
            policy: body.policy.clone(),
            repo,
        },
        None,
    )
}

async fn run_start(
    Need(_): Need<OPERATOR>,
    st: St,
    body: web::Json<PatchReq>,
) -> ApiResult<HttpResponse> {
    let run = blocking(move || start_patch(&st, &body)).await?;
    Ok(HttpResponse::Accepted().json(run))
}

async fn run(st: St, _: Caller, id: web::Path<String>) -> ApiResult<Reply> {
    blocking(move || {
        let run = st.catalog.run(&id)?;
        let images = st.catalog.run_images(&id)?;
        let events = st.catalog.events(&id)?;
        Ok(ok(
            &serde_json::json!({"run": run, "images": images, "events": events}),
        ))
    })
    .await
}

async fn run_cancel(Need(_): Need<OPERATOR>, st: St, id: web::Path<String>) -> ApiResult<Reply> {
    let c = blocking(move || st.jobs.cancel(&id)).await?;
    Ok(ok(&c))
}

async fn schedules(st: St, _: Caller, q: web::Query<PageQ>) -> ApiResult<Reply> {
    Ok(ok(&paged(st.catalog.schedules()?, q.limit, q.offset)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleReq {
    pub name: String,
    pub cron: String,
    #[serde(default)]
    pub images: Vec<String>,
    pub action: Action,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Checks a schedule request and makes it a schedule (id and times from `old`, if any).
pub fn schedule_from(st: &AppState, r: ScheduleReq, old: Option<&Schedule>) -> ApiResult<Schedule> {
    if r.name.trim().is_empty() || r.name.len() > 200 {
        return Err(ApiError::bad("a schedule's name is 1-200 characters"));
    }
    crate::scheduler::parse(&r.cron)?;
    let images = if r.images.is_empty() {
        Vec::new()
    } else {
        image_files_of(st, &r.images)?
    };
    let action = match r.action {
        Action::Patch { policy, repo } => {
            check_policy(&policy)?;
            Action::Patch {
                policy,
                repo: repo_dir(&repo)?,
            }
        }
        a => a,
    };
    Ok(Schedule {
        id: match old {
            Some(o) => o.id.clone(),
            None => st.catalog.new_schedule_id()?,
        },
        name: r.name.trim().to_string(),
        cron: r.cron.trim().to_string(),
        images,
        action,
        enabled: r.enabled,
        created: old.map_or_else(|| st.catalog.now(), |o| o.created),
        last_fired: old.and_then(|o| o.last_fired),
        last_run: old.and_then(|o| o.last_run.clone()),
    })
}

async fn schedule_create(
    Need(_): Need<ADMIN>,
    st: St,
    body: web::Json<ScheduleReq>,
) -> ApiResult<HttpResponse> {
    let s = blocking(move || {
        let s = schedule_from(&st, body.into_inner(), None)?;
        st.catalog.put_schedule(&s)?;
        Ok(s)
    })
    .await?;
    Ok(HttpResponse::Created().json(s))
}

async fn schedule(st: St, _: Caller, id: web::Path<String>) -> ApiResult<Reply> {
    Ok(ok(&st.catalog.schedule(&id)?))
}

async fn schedule_update(
    Need(_): Need<ADMIN>,
    st: St,
    id: web::Path<String>,
    body: web::Json<ScheduleReq>,
) -> ApiResult<Reply> {
    blocking(move || {
        let old = st.catalog.schedule(&id)?;
        let s = schedule_from(&st, body.into_inner(), Some(&old))?;
        st.catalog.put_schedule(&s)?;
        Ok(ok(&s))
    })
    .await
}

async fn schedule_delete(
    Need(_): Need<ADMIN>,
    st: St,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    st.catalog.delete_schedule(&id)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn tokens(Need(_): Need<ADMIN>, st: St, q: web::Query<PageQ>) -> ApiResult<Reply> {
    Ok(ok(&paged(st.catalog.tokens()?, q.limit, q.offset)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenReq {
    name: String,
    role: Role,
}

async fn token_create(
    Need(_): Need<ADMIN>,
    st: St,
    body: web::Json<TokenReq>,
) -> ApiResult<HttpResponse> {
    if body.name.trim().is_empty() || body.name.len() > 100 {
        return Err(ApiError::bad("a token's name is 1-100 characters"));
    }
    let (rec, secret) = st.catalog.create_token(body.name.trim(), body.role)?;
    Ok(HttpResponse::Created().json(serde_json::json!({"token": rec, "secret": secret})))
}

async fn token_revoke(
    Need(_): Need<ADMIN>,
    st: St,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let rec = st.catalog.revoke_token(&id)?;
    st.sessions.revoke_token(&rec.id);
    Ok(HttpResponse::NoContent().finish())
}
