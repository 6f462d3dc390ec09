//! The REST API under `/api/v1`: how requests arrive (routes, extractors, JSON); what
//! they do is `service.rs`. Every route is declared once, in [`routes!`]: the same table
//! registers the handlers and writes the OpenAPI document (`openapi.rs`), so the document
//! cannot drift from the routes. Viewer routes take a [`Caller`] (being authenticated is
//! being at least a viewer); operator and admin routes take `Need<ROLE>`. Lists page with
//! `limit` (default 50, at most 500) and `offset` and answer `{items, total, limit,
//! offset}`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use std::path::Path;

use coldpatch_catalog::{Role, Scope, Selector, Versions};
use coldpatch_vuln::Severity;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Need, ADMIN, OPERATOR};
use crate::error::{ApiError, ApiResult};
use crate::fleet::SEVERITIES;
use crate::openapi::RouteDoc;
use crate::service::{
    blocking, check_policy, filter_images, hits, image_id, import_upload, list_runs, paged,
    repo_dir, schedule_from, severity, shared_report, start_patch, start_scan, version_findings,
    ImagesQ, PageQ, PatchReq, RunsQ, ScanReq, ScheduleReq,
};
use crate::AppState;

type St = web::Data<AppState>;

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
    get "/openapi.json" Viewer [] false => openapi_doc, "This document";
    get "/images" Viewer ["q", "os", "vulnerable", "min_severity", "label", "fixable", "sort", "order", "limit", "offset"] false => images, "Images, with their current version's summary: filtered, sorted and paged";
    get "/images/{id}" Viewer [] false => image, "One image: record, versions, summary";
    put "/images/{id}/labels" Operator [] true => image_labels, "Set and remove an image's labels and display name; answers its name and labels";
    get "/groups" Viewer ["by"] false => groups, "The fleet's exposure grouped by one label's value";
    get "/trend" Viewer [] false => trend, "Findings over time, one point per day, by severity";
    get "/images/{id}/packages" Viewer ["q", "limit", "offset"] false => image_packages, "Packages of an image's current version";
    get "/images/{id}/files" Viewer ["q", "path", "limit", "offset"] false => image_files, "Files of an image's current version";
    get "/images/{id}/findings" Viewer ["min_severity", "fixable", "limit", "offset"] false => image_findings, "Findings of an image's current version";
    get "/images/{id}/versions" Viewer [] false => image_versions, "Versions of an image with their findings counts";
    get "/packages" Viewer ["name", "older_than", "label", "limit", "offset"] false => packages, "Packages across the fleet";
    get "/files" Viewer ["path", "sha256", "label", "limit", "offset"] false => files, "Files across the fleet by path glob or SHA-256";
    get "/advisories" Viewer ["q", "min_severity", "limit", "offset"] false => advisories, "Advisories that hit the fleet";
    get "/advisories/{id}" Viewer [] false => advisory, "One advisory and the images it hits";
    get "/affected/{cve}" Viewer ["label", "limit", "offset"] false => affected, "Images affected by an advisory or CVE";
    get "/shared" Viewer ["images"] false => shared, "Content the images share";
    get "/feeds" Viewer ["limit", "offset"] false => feeds, "Imported feeds";
    post "/feeds" Admin ["name", "format"] true => feed_upload, "Import a feed file (OSV record or zip, Debian tracker JSON, Alpine secdb)";
    post "/scans" Operator [] true => scan_start, "Queue a collect-and-match run";
    post "/plans" Operator [] true => plan_preview, "Preview a patch plan (writes nothing)";
    get "/runs" Viewer ["state", "kind", "image", "limit", "offset"] false => runs, "Runs, newest first";
    post "/runs" Operator [] true => run_start, "Queue a patch run";
    get "/runs/{id}" Viewer [] false => run, "One run with its images and events";
    post "/runs/{id}/cancel" Operator [] false => run_cancel, "Cancel a queued or running run";
    get "/runs/{id}/events" Viewer [] false => crate::events::run_events, "A run's events as server-sent events, live until it finishes";
    get "/workers" Viewer ["limit", "offset"] false => workers, "Workers on a shared catalog's queue: host, roots, slots, heartbeat, jobs held, alive or lost";
    get "/schedules" Viewer ["limit", "offset"] false => schedules, "Schedules";
    post "/schedules" Admin [] true => schedule_create, "Create a schedule";
    get "/schedules/{id}" Viewer [] false => schedule, "One schedule";
    put "/schedules/{id}" Admin [] true => schedule_update, "Replace a schedule";
    delete "/schedules/{id}" Admin [] false => schedule_delete, "Delete a schedule";
    get "/tokens" Admin ["limit", "offset"] false => tokens, "API tokens (never their secrets)";
    post "/tokens" Admin [] true => token_create, "Create a token; the answer holds its secret, shown once";
    delete "/tokens/{id}" Admin [] false => token_revoke, "Revoke a token and end its sessions";
}

/// A JSON answer (a `Value`, which unlike a response may cross threads).
pub type Reply = web::Json<serde_json::Value>;

fn ok<T: Serialize>(v: &T) -> ApiResult<Reply> {
    serde_json::to_value(v)
        .map(web::Json)
        .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))
}

/// The OpenAPI document of these routes; it never changes while the process runs, so it
/// is written once, on first request.
async fn openapi_doc(_: Caller) -> Reply {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    web::Json(DOC.get_or_init(|| crate::openapi::document(ROUTES)).clone())
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn images(st: St, _: Caller, q: web::Query<ImagesQ>) -> ApiResult<Reply> {
    let view = blocking(move || Ok(st.fleet.view(&st.catalog)?)).await?;
    let list = filter_images(&view.images, &q)?;
    ok(&paged(list, q.limit, q.offset)?)
}

async fn image(st: St, _: Caller, id: web::Path<String>) -> ApiResult<Reply> {
    blocking(move || {
        let img = image_id(&st, &id)?;
        let versions = st.catalog.versions_of(&img)?;
        let scan = img.current_scan.map(|s| st.catalog.scan(s)).transpose()?;
        let view = st.fleet.view(&st.catalog)?;
        let summary = view.image(img.id).cloned();
        ok(&serde_json::json!({
            "image": img, "versions": versions, "scan": scan, "summary": summary,
        }))
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
        ok(&paged(list, q.limit, q.offset)?)
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
        let hits = st.catalog.files(
            &Scope::image(Some(&img.path)),
            Versions::Current,
            q.path.as_deref(),
            None,
        )?;
        let list: Vec<_> = hits
            .into_iter()
            .map(|h| h.file)
            .filter(|f| q.q.as_ref().is_none_or(|s| f.path.contains(s.as_str())))
            .collect();
        ok(&paged(list, q.limit, q.offset)?)
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
        ok(&paged(list, q.limit, q.offset)?)
    })
    .await
}

async fn image_versions(st: St, _: Caller, id: web::Path<String>) -> ApiResult<Reply> {
    blocking(move || {
        let img = image_id(&st, &id)?;
        ok(&serde_json::json!({
            "severities": SEVERITIES,
            "items": version_findings(&st, &img)?,
        }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackagesQ {
    name: Option<String>,
    older_than: Option<String>,
    label: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn packages(st: St, _: Caller, q: web::Query<PackagesQ>) -> ApiResult<Reply> {
    blocking(move || {
        let hits = st.catalog.packages(
            &crate::service::labelled(q.label.as_deref())?,
            Versions::Current,
            q.name.as_deref(),
            q.older_than.as_deref(),
        )?;
        ok(&paged(hits, q.limit, q.offset)?)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesQ {
    path: Option<String>,
    sha256: Option<String>,
    label: Option<String>,
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
            &crate::service::labelled(q.label.as_deref())?,
            Versions::Current,
            q.path.as_deref(),
            q.sha256.as_deref(),
        )?;
        ok(&paged(hits, q.limit, q.offset)?)
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
    ok(&paged(rows, q.limit, q.offset)?)
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
    ok(&serde_json::json!({
        "id": first.of.advisory, "aliases": first.of.aliases, "feed": first.of.feed,
        "severity": worst, "images": h,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AffectedQ {
    label: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn affected(
    st: St,
    _: Caller,
    id: web::Path<String>,
    q: web::Query<AffectedQ>,
) -> ApiResult<Reply> {
    let sel = Selector::optional(q.label.as_deref())?;
    let view = blocking(move || Ok(st.fleet.view(&st.catalog)?)).await?;
    let mut list = hits(&view, &id);
    if let Some(sel) = sel {
        list.retain(|h| view.image(h.image).is_some_and(|i| sel.matches(&i.labels)));
    }
    ok(&paged(list, q.limit, q.offset)?)
}

/// The body of `PUT /images/{id}/labels`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelsReq {
    /// Labels to set (or replace).
    #[serde(default)]
    set: std::collections::BTreeMap<String, String>,
    /// Keys to remove.
    #[serde(default)]
    unset: Vec<String>,
    /// A display name to give.
    name: Option<String>,
    /// Back to the file name.
    #[serde(default)]
    clear_name: bool,
}

async fn image_labels(
    st: St,
    Need(_): Need<OPERATOR>,
    id: web::Path<String>,
    body: web::Json<LabelsReq>,
) -> ApiResult<Reply> {
    let r = body.into_inner();
    if r.name.is_some() && r.clear_name {
        return Err(ApiError::bad("give name or clear_name, not both"));
    }
    blocking(move || {
        let img = image_id(&st, &id)?;
        let change = coldpatch_catalog::Relabel {
            set: r.set.into_iter().collect(),
            unset: r.unset,
            name: coldpatch_catalog::Relabel::name_change(r.name, r.clear_name),
        };
        let t = st.catalog.relabel(&img.path, &change)?;
        st.fleet.changed();
        let names = st.catalog.names()?;
        ok(&serde_json::json!({
            "id": img.id, "path": img.path, "name": names.get(&img.id), "labels": t.labels,
        }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsQ {
    by: String,
}

async fn groups(st: St, _: Caller, q: web::Query<GroupsQ>) -> ApiResult<Reply> {
    coldpatch_catalog::labels::parse_label(&format!("{}=x", q.by))?;
    let view = blocking(move || Ok(st.fleet.view(&st.catalog)?)).await?;
    ok(&serde_json::json!({ "by": q.by, "groups": view.groups(&q.by) }))
}

async fn trend(st: St, _: Caller) -> ApiResult<Reply> {
    let view = blocking(move || Ok(st.fleet.view(&st.catalog)?)).await?;
    ok(&serde_json::json!({ "severities": SEVERITIES.map(|s| s.as_str()), "points": view.trend }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedQ {
    /// Comma-separated image ids; none: every image.
    images: Option<String>,
}

async fn shared(st: St, _: Caller, q: web::Query<SharedQ>) -> ApiResult<Reply> {
    blocking(move || ok(&shared_report(&st, q.images.as_deref())?)).await
}

async fn workers(st: St, _: Caller, q: web::Query<PageQ>) -> ApiResult<Reply> {
    let list = blocking(move || Ok(st.catalog.workers()?)).await?;
    ok(&paged(list, q.limit, q.offset)?)
}

async fn feeds(st: St, _: Caller, q: web::Query<PageQ>) -> ApiResult<Reply> {
    let list = blocking(move || Ok(st.catalog.feeds()?)).await?;
    ok(&paged(list, q.limit, q.offset)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedQ {
    name: Option<String>,
    format: Option<String>,
}

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
    ok(&report)
}

async fn scan_start(
    Need(_): Need<OPERATOR>,
    st: St,
    body: web::Json<ScanReq>,
) -> ApiResult<HttpResponse> {
    let run = blocking(move || start_scan(&st, &body)).await?;
    Ok(HttpResponse::Accepted().json(run))
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
        let repo = repo_dir(&st, &body.repo)?;
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
            &coldpatch_jobs::request(&body.policy),
        ) {
            Ok(p) => ok(&p),
            Err(r) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("cannot plan {}: {r}", img.path),
            )),
        }
    })
    .await
}

async fn runs(st: St, _: Caller, q: web::Query<RunsQ>) -> ApiResult<Reply> {
    blocking(move || ok(&paged(list_runs(&st, &q)?, q.limit, q.offset)?)).await
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
        let jobs = if run.shared {
            st.catalog.run_jobs(&id)?
        } else {
            Vec::new()
        };
        ok(&serde_json::json!({"run": run, "images": images, "events": events, "jobs": jobs}))
    })
    .await
}

async fn run_cancel(Need(_): Need<OPERATOR>, st: St, id: web::Path<String>) -> ApiResult<Reply> {
    let c = blocking(move || Ok(st.jobs.cancel(&id)?)).await?;
    ok(&c)
}

async fn schedules(st: St, _: Caller, q: web::Query<PageQ>) -> ApiResult<Reply> {
    let list = blocking(move || Ok(st.catalog.schedules()?)).await?;
    ok(&paged(list, q.limit, q.offset)?)
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
    let s = blocking(move || Ok(st.catalog.schedule(&id)?)).await?;
    ok(&s)
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
        ok(&s)
    })
    .await
}

async fn schedule_delete(
    Need(_): Need<ADMIN>,
    st: St,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    blocking(move || Ok(st.catalog.delete_schedule(&id)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn tokens(Need(_): Need<ADMIN>, st: St, q: web::Query<PageQ>) -> ApiResult<Reply> {
    let list = blocking(move || Ok(st.catalog.tokens()?)).await?;
    let shown: Vec<_> = list
        .iter()
        .map(coldpatch_catalog::TokenRecord::info)
        .collect();
    ok(&paged(shown, q.limit, q.offset)?)
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
    let (rec, secret) =
        blocking(move || Ok(st.catalog.create_token(body.name.trim(), body.role)?)).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({"token": rec.info(), "secret": secret})))
}

async fn token_revoke(
    Need(_): Need<ADMIN>,
    st: St,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let st2 = st.clone();
    let rec = blocking(move || Ok(st2.catalog.revoke_token(&id)?)).await?;
    st.sessions.revoke_token(&rec.id);
    Ok(HttpResponse::NoContent().finish())
}
