//! The console: server-rendered pages (maud: compiled, every interpolation escaped). The
//! only script is the run page's few lines that append server-sent events to the log as
//! text. Forms post with the session's CSRF value.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use coldpatch_catalog::{Action, PlanPolicy, Role, RunState};
use maud::html;
use serde::Deserialize;

use crate::auth::{PageCaller, COOKIE};
use crate::charts;
use crate::error::{ApiError, ApiResult};
use crate::layout::{self, Viewer};
use crate::service::{self, blocking, PatchReq, ScheduleReq};
use crate::AppState;

type St = web::Data<AppState>;

/// Routes of the console (outside `/api/v1`); their errors are HTML pages.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(crate::error::html_pages())
            .configure(routes)
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::not_found("no such page"))
            })),
    );
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/live.js", web::get().to(live_js))
        .route("/login", web::get().to(login_page))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/", web::get().to(crate::dashboard::dashboard))
        .route("/search", web::get().to(crate::dashboard::search))
        .route("/report", web::get().to(crate::dashboard::report))
        .route("/images/{id}", web::get().to(image_page))
        .route("/images/{id}/patch", web::post().to(patch_form))
        .route("/advisories/{id}", web::get().to(advisory_page))
        .route("/runs", web::get().to(runs_page))
        .route("/runs/{id}", web::get().to(run_page))
        .route("/runs/{id}/cancel", web::post().to(cancel_form))
        .route("/workers", web::get().to(workers_page))
        .route("/schedules", web::get().to(schedules_page))
        .route("/schedules", web::post().to(schedule_form))
        .route(
            "/schedules/{id}/delete",
            web::post().to(schedule_delete_form),
        )
        .route("/shared", web::get().to(shared_page));
}

/// A console page in the shared frame, with the caller's name and log-out form.
pub(crate) fn page(
    title: &str,
    who: Option<&crate::auth::Caller>,
    body: maud::Markup,
) -> HttpResponse {
    let viewer = who.map(|c| Viewer {
        name: &c.name,
        role: c.role.as_str(),
        csrf: c.csrf(),
    });
    layout::page(title, viewer, body)
}

/// A value as compact JSON for a table cell (what failed to encode says so).
fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("(cannot show: {e})"))
}

fn see(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .finish()
}

pub(crate) fn when(secs: u64) -> String {
    coldpatch_catalog::clock::rfc3339(secs)
}

#[derive(Deserialize)]
struct NextQ {
    next: Option<String>,
    error: Option<String>,
}

/// Only a local path may be a redirect target after login: one leading `/`, then no
/// `/` or `\` (`//host` and `/\host` name another host), no backslash or control
/// character anywhere (browsers drop tabs and newlines: `/\t/evil.example` is
/// `//evil.example` to them).
pub fn local(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n[1..].starts_with(['/', '\\'])
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n
        }
        _ => "/",
    }
}

async fn login_page(q: web::Query<NextQ>) -> HttpResponse {
    page(
        "Log in",
        None,
        html! {
            @if q.error.is_some() { p.err { "That token is not valid." } }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(local(q.next.as_deref()));
                label { "API token " input type="password" name="token" autocomplete="off" size="60"; }
                " " button type="submit" { "Log in" }
            }
            p { "Make a token with " code { "coldpatch token create --role viewer|operator|admin" } "." }
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn login(
    st: St,
    req: actix_web::HttpRequest,
    form: web::Form<LoginForm>,
) -> ApiResult<HttpResponse> {
    let addr = crate::auth::client_addr(&req);
    crate::auth::throttled(&st, addr)?;
    let (st2, secret) = (st.clone(), form.token.trim().to_string());
    let Some(t) = blocking(move || Ok(st2.catalog.check_token(&secret)?)).await? else {
        st.throttle.failed(addr, "login");
        return Ok(see("/login?error=1"));
    };
    let Some(cookie) = st.sessions.create(&t) else {
        return Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "the server holds as many sessions as it keeps; try again later",
        ));
    };
    let c = actix_web::cookie::Cookie::build(COOKIE, cookie)
        .path("/")
        .http_only(true)
        .secure(st.secure_cookies)
        .same_site(actix_web::cookie::SameSite::Strict)
        .finish();
    eprintln!(
        "console: token {} ({}) logged in",
        t.id,
        coldpatch_catalog::text::clean(&t.name)
    );
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, local(form.next.as_deref()).to_string()))
        .cookie(c)
        .finish())
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    st: St,
    req: HttpRequest,
    who: PageCaller,
    form: web::Form<CsrfForm>,
) -> ApiResult<HttpResponse> {
    who.0.check_csrf(&form.csrf)?;
    if let Some(c) = req.cookie(COOKIE) {
        st.sessions.remove(c.value());
    }
    let mut gone = actix_web::cookie::Cookie::build(COOKIE, "")
        .path("/")
        .finish();
    gone.make_removal();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .cookie(gone)
        .finish())
}

pub(crate) fn sev_class(s: &str) -> String {
    format!("sev-{s}")
}

#[derive(Deserialize)]
struct ImageQ {
    pkg: Option<String>,
    files: Option<String>,
}

async fn image_page(
    st: St,
    who: PageCaller,
    id: web::Path<String>,
    q: web::Query<ImageQ>,
) -> ApiResult<HttpResponse> {
    let who = who.0;
    let st2 = st.clone();
    let files_q = q.files.clone();
    let (img, scan, versions, inv, files, summary) = blocking(move || {
        let st = st2;
        let img = service::image_id(&st, &id)?;
        let scan = img.current_scan.map(|s| st.catalog.scan(s)).transpose()?;
        let versions = service::version_findings(&st, &img)?;
        let inv = match img.current_scan {
            Some(s) => Some(st.catalog.inventory(s, false)?),
            None => None,
        };
        let files = match files_q.as_deref().filter(|f| !f.is_empty()) {
            Some(f) => {
                let glob = service::path_glob(f);
                Some(st.catalog.files(
                    &coldpatch_catalog::Scope::image(Some(&img.path)),
                    coldpatch_catalog::Versions::Current,
                    Some(&glob),
                    None,
                )?)
            }
            None => None,
        };
        let summary = st.fleet.view(&st.catalog)?.image(img.id).cloned();
        Ok((img, scan, versions, inv, files, summary))
    })
    .await?;
    let pkg_q = q.pkg.clone().unwrap_or_default();
    let pkgs: Vec<_> = inv
        .as_ref()
        .map(|i| {
            i.packages
                .iter()
                .filter(|p| p.name.contains(pkg_q.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let mut findings = summary
        .as_ref()
        .map(|s| s.findings.clone())
        .unwrap_or_default();
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.of.advisory.cmp(&b.of.advisory))
    });
    let points: Vec<(u32, [usize; 6])> = versions
        .iter()
        .filter_map(|v| v.by_severity.map(|c| (v.version.number, c)))
        .collect();
    let repos = crate::service::offered_repos(&st)?;
    let title = summary
        .as_ref()
        .map_or(img.path.as_str(), |s| s.name.as_str());
    Ok(page(
        title,
        Some(&who),
        html! {
            p #image-path { code { (img.path) }
                @if let Some(s) = &summary { @for (k, v) in &s.labels { " " span.label { (k) "=" (v) } } } }
            p {
                "OS: " strong { (scan.as_ref().and_then(|s| s.os.clone()).unwrap_or_else(|| "unknown".into())) }
                " · format " (img.format) " · current version " (img.current_version)
                @if let Some(s) = &scan { " · collected " (when(s.time)) ", " (s.packages) " packages, " (s.files) " files" }
            }
            h2 { "Findings over versions" }
            (charts::findings_over_versions(&points))
            h2 { "Versions" }
            table #versions {
                tr { th { "Version" } th { "Parent" } th { "Made by run" } th { "Created" } th { "Findings" } th { "Check" } }
                @for v in &versions {
                    tr {
                        td { (v.version.number) @if v.version.number == img.current_version { " (current)" } @if v.version.rolled_back { " (rolled back)" } }
                        td { (v.version.parent.map_or("-".to_string(), |p| p.to_string())) }
                        td { @if let Some(r) = &v.version.run { a href=(format!("/runs/{r}")) { (r) } } @else { "-" } }
                        td { (when(v.version.created)) }
                        td { (v.by_severity.map_or("-".to_string(), |c| c.iter().sum::<usize>().to_string())) }
                        td { code { (v.version.check.clone().unwrap_or_default().get(..16).unwrap_or("")) } }
                    }
                }
            }
            @if who.role >= Role::Operator {
                h2 { "Patch" }
                form #patch method="post" action=(format!("/images/{}/patch", img.id)) {
                    input type="hidden" name="csrf" value=(who.csrf());
                    label { "Repository " input type="text" name="repo" size="50" list="repos" required value=(repos.first().cloned().unwrap_or_default()); }
                    datalist id="repos" { @for r in &repos { option value=(r) {} } }
                    " "
                    select name="policy" {
                        option value="all_fixable" { "all fixable findings" }
                        option value="critical" { "critical and worse" }
                        option value="high" { "high and worse" }
                        option value="medium" { "medium and worse" }
                    }
                    " " button type="submit" { "Start patch run" }
                }
            }
            h2 { "Findings (" (findings.len()) ")" }
            table #findings {
                tr { th { "Advisory" } th { "Severity" } th { "Package" } th { "Installed" } th { "Fixed in" } }
                @for f in &findings {
                    tr {
                        td { a href=(format!("/advisories/{}", f.of.advisory)) { (f.of.advisory) } }
                        td class=(sev_class(f.severity.as_str())) { (f.severity.as_str()) }
                        td { (f.package.as_ref()) } td { (f.installed.as_ref()) }
                        td { (f.fixed.clone().unwrap_or_else(|| "no fix yet".into())) }
                    }
                }
            }
            h2 { "Packages" }
            form #pkgsearch method="get" {
                input type="search" name="pkg" placeholder="name contains" value=(pkg_q);
                " " button type="submit" { "Search packages" }
            }
            table #packages {
                tr { th { "Name" } th { "Version" } th { "Arch" } th { "Source" } }
                @for p in pkgs.iter().take(500) {
                    tr { td { (p.name) } td { (p.full_version()) } td { (p.arch) } td { (p.source_name) } }
                }
            }
            p { (pkgs.len()) " package(s)" @if pkgs.len() > 500 { ", first 500 shown" } }
            h2 { "Files" }
            form #filesearch method="get" {
                input type="search" name="files" placeholder="path contains, or a glob" value=(q.files.clone().unwrap_or_default());
                " " button type="submit" { "Search files" }
            }
            @if let Some(f) = &files {
                table #files {
                    tr { th { "Path" } th { "Type" } th { "Mode" } th { "Owner" } th { "Size" } th { "SHA-256" } }
                    @for h in f.iter().take(500) {
                        tr {
                            td { (h.file.path) } td { (format!("{:?}", h.file.kind).to_lowercase()) }
                            td { (format!("{:o}", h.file.mode)) } td { (h.file.uid) ":" (h.file.gid) }
                            td { (h.file.size) } td { code { (h.file.sha256.clone().unwrap_or_default().get(..16).unwrap_or("")) } }
                        }
                    }
                }
                p { (f.len()) " file(s)" @if f.len() > 500 { ", first 500 shown" } }
            }
        },
    ))
}

/// A policy as the console's forms name it: `all_fixable`, or the lowest severity.
fn policy_of(form_value: &str) -> ApiResult<PlanPolicy> {
    match form_value {
        "all_fixable" => Ok(PlanPolicy::AllFixable),
        s => Ok(PlanPolicy::MinSeverity {
            severity: s
                .parse()
                .map_err(|_| ApiError::bad(format!("unknown policy {s:?}")))?,
        }),
    }
}

#[derive(Deserialize)]
struct PatchForm {
    csrf: String,
    repo: String,
    policy: String,
}

async fn patch_form(
    st: St,
    who: PageCaller,
    id: web::Path<String>,
    form: web::Form<PatchForm>,
) -> ApiResult<HttpResponse> {
    let who = who.0;
    who.check_csrf(&form.csrf)?;
    who.need(Role::Operator)?;
    let policy = policy_of(&form.policy)?;
    let run = blocking(move || {
        let img = service::image_id(&st, &id)?;
        service::start_patch(
            &st,
            &PatchReq {
                images: vec![img.path],
                image: None,
                label: None,
                repo: form.repo.clone(),
                policy,
                no_replay: false,
            },
        )
    })
    .await?;
    Ok(see(&format!("/runs/{}", run.id)))
}

async fn advisory_page(st: St, who: PageCaller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let view = blocking({
        let st = st.clone();
        move || Ok(st.fleet.view(&st.catalog)?)
    })
    .await?;
    let hits = service::hits(&view, &id);
    let first = hits.first().and_then(|h| h.findings.first()).cloned();
    Ok(page(
        &id,
        Some(&who.0),
        html! {
            @if let Some(f) = &first {
                p { "Feed " (f.of.feed) @if !f.of.aliases.is_empty() { " · aliases " (f.of.aliases.join(", ")) } }
            }
            h2 { "Affected images (" (hits.len()) ")" }
            @if hits.is_empty() { p { "No image in the catalog is affected." } }
            table #affected {
                tr { th { "Image" } th { "Version" } th { "Package" } th { "Installed" } th { "Severity" } th { "Fixed in" } }
                @for h in &hits {
                    @for f in &h.findings {
                        tr {
                            td { a href=(format!("/images/{}", h.image)) { (h.path) } }
                            td { (h.version) } td { (f.package.as_ref()) } td { (f.installed.as_ref()) }
                            td class=(sev_class(f.severity.as_str())) { (f.severity.as_str()) }
                            td { (f.fixed.clone().unwrap_or_else(|| "no fix yet".into())) }
                        }
                    }
                }
            }
        },
    ))
}

async fn runs_page(st: St, who: PageCaller) -> ApiResult<HttpResponse> {
    let runs = blocking(move || Ok(st.catalog.runs()?)).await?;
    Ok(page(
        "Runs",
        Some(&who.0),
        html! {
            table #runs {
                tr { th { "Run" } th { "Kind" } th { "State" } th { "Images" } th { "Started" } th { "Schedule" } }
                @for r in runs.iter().take(200) {
                    tr {
                        td { a href=(format!("/runs/{}", r.id)) { (r.id) } }
                        td { (r.kind) } td { (r.state.as_str()) } td { (r.images.len()) }
                        td { (when(r.started)) } td { (r.schedule.clone().unwrap_or_default()) }
                    }
                }
            }
        },
    ))
}

async fn workers_page(st: St, who: PageCaller) -> ApiResult<HttpResponse> {
    let workers = blocking(move || {
        if !st.catalog.has_queue() {
            return Ok(None);
        }
        Ok(Some(st.catalog.workers()?))
    })
    .await?;
    Ok(page(
        "Workers",
        Some(&who.0),
        html! {
            @match &workers {
                None => p { "This catalog is embedded: the server runs its jobs itself. Workers on other hosts need a shared (PostgreSQL) catalog." }
                Some(ws) => {
                    p { (ws.iter().filter(|w| w.alive()).count()) " of " (ws.len()) " worker(s) alive" }
                    table #workers {
                        tr { th { "Name" } th { "Host" } th { "Status" } th { "Last heartbeat" } th { "Jobs held" } th { "Slots" } th { "Roots" } th { "Version" } }
                        @for w in ws {
                            tr {
                                td { (w.spec.name) } td { (w.spec.host) " (pid " (w.spec.pid) ")" }
                                td { @if w.alive() { (w.status) } @else { span.err { (w.status) } } }
                                td { (format!("{:.1} s ago", w.silent_ms as f64 / 1000.0)) }
                                td { (w.held) } td { (w.spec.slots) } td { (w.spec.roots.join(" ")) } td { (w.spec.version) }
                            }
                        }
                    }
                }
            }
        },
    ))
}

async fn run_page(st: St, who: PageCaller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let who = who.0;
    let st2 = st.clone();
    let (run, images, events, jobs) = blocking(move || {
        let run = st.catalog.run(&id)?;
        let jobs = if run.shared {
            st.catalog.run_jobs(&id)?
        } else {
            Vec::new()
        };
        Ok((
            run,
            st.catalog.run_images(&id)?,
            st.catalog.events(&id)?,
            jobs,
        ))
    })
    .await?;
    let live = matches!(run.state, RunState::Queued | RunState::Running);
    let prog =
        coldpatch_catalog::progress::progress(&run.images, &events, run.state == RunState::Failed);
    let names = names_of(&st2).await?;
    Ok(page(
        &format!("Run {}", run.id),
        Some(&who),
        html! {
            p { (run.kind) " on " (run.images.len()) " image(s) · state " strong #state { (run.state.as_str()) }
                @if let Some(e) = &run.error { " · " span.err { (e) } } }
            @if live && who.role >= Role::Operator {
                form #cancel method="post" action=(format!("/runs/{}/cancel", run.id)) {
                    input type="hidden" name="csrf" value=(who.csrf());
                    button type="submit" { "Cancel run" }
                }
            }
            @if !jobs.is_empty() {
                h2 { "Jobs" }
                table #run-jobs {
                    tr { th { "Image" } th { "State" } th { "Worker" } th { "Attempts" } th { "Outcome" } }
                    @for j in &jobs {
                        tr {
                            td { (j.job.image) } td { (j.job.state) }
                            td {
                                @if let Some(w) = &j.job.worker { (w) }
                                @else if j.waiting_for_root { span.err { "waiting for a worker with a root over this image" } }
                                @else if j.job.state == "queued" { "waiting for a free worker" }
                            }
                            td { (j.job.attempts) } td { (j.job.outcome.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
            h2 { "Progress" }
            div #progress data-total=(prog.total) {
                progress #bar max=(prog.total.max(1)) value=(prog.done) aria-label="Images done" {}
                " " span #done { (prog.done) } " of " (prog.total) " image(s) done"
                @if prog.failed > 0 { ", " span.err #failed { (prog.failed) " failed" } }
            }
            table #stages {
                tr { th { "Image" } th { "Stage" } th { "Log" } }
                @for (img, stage) in &prog.images {
                    tr data-image=(img) {
                        td { (names.get(img).map_or(img.as_str(), String::as_str)) }
                        td.stage class=(format!("stage-{}", stage.as_str())) { (stage.as_str()) }
                        td {
                            details {
                                summary { "log" }
                                ol.image-log {
                                    @for e in events.iter().filter(|e| e.image.as_deref() == Some(img.as_str())) {
                                        li { (when(e.time_ms / 1000)) " " (e.kind) ": " (e.message) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Images" }
            table #run-images {
                tr { th { "Image" } th { "Outcome" } th { "Findings before" } th { "after" } }
                @for ri in &images {
                    tr { td { (names.get(&ri.image).map_or(ri.image.as_str(), String::as_str)) } td { (json_text(&ri.outcome)) } td { (ri.before.len()) } td { (ri.after.len()) } }
                }
            }
            h2 { "Events" }
            ol #events data-run=(run.id) data-skip=(events.len()) data-live=(live) {
                @for e in &events {
                    li { (when(e.time_ms / 1000)) " " (e.kind) @if let Some(w) = &e.worker { " [" (w) "]" } @if let Some(i) = &e.image { " " (i) } ": " (e.message) }
                }
            }
            @if live {
                script src="/static/live.js" {}
            }
        },
    ))
}

/// Every image's display name by path, for pages that list images by path.
async fn names_of(st: &St) -> ApiResult<std::collections::HashMap<String, String>> {
    let view = blocking({
        let st = st.clone();
        move || Ok(st.fleet.view(&st.catalog)?)
    })
    .await?;
    Ok(view
        .images
        .iter()
        .map(|i| (i.path.clone(), i.name.clone()))
        .collect())
}

/// `/static/live.js`: the run page's script, a file of its own so the pages' CSP allows
/// no inline script.
async fn live_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("x-content-type-options", "nosniff"))
        .body(LIVE_JS)
}

/// Appends each server-sent event to the log as text (never as HTML), moves its image
/// to the stage the event carries and the bar to the images done.
const LIVE_JS: &str = "(function(){var ol=document.getElementById('events');
var done=['committed','unchanged','failed'];
function row(img){var rs=document.querySelectorAll('#stages tr[data-image]');for(var i=0;i<rs.length;i++){if(rs[i].dataset.image===img){return rs[i];}}return null;}
function count(){var n=0,f=0,cs=document.querySelectorAll('#stages td.stage');for(var i=0;i<cs.length;i++){var s=cs[i].textContent;if(done.indexOf(s)>=0){n++;}if(s==='failed'){f++;}}
document.getElementById('bar').value=n;document.getElementById('done').textContent=n;}
var es=new EventSource('/api/v1/runs/'+encodeURIComponent(ol.dataset.run)+'/events?skip='+ol.dataset.skip);
es.onmessage=function(m){var e=JSON.parse(m.data);var li=document.createElement('li');
li.textContent=new Date(e.time_ms).toISOString().slice(0,19)+'Z '+e.kind+(e.worker?' ['+e.worker+']':'')+(e.image?' '+e.image:'')+': '+e.message;
ol.appendChild(li);var r=e.image?row(e.image):null;
if(r){var l=document.createElement('li');l.textContent=new Date(e.time_ms).toISOString().slice(0,19)+'Z '+e.kind+': '+e.message;r.querySelector('ol.image-log').appendChild(l);
var c=r.querySelector('td.stage');if(e.stage&&done.indexOf(c.textContent)<0){c.textContent=e.stage;c.className='stage stage-'+e.stage;}count();}
if(e.kind==='appliance'&&!e.image&&e.message.indexOf('started')===0){var cs=document.querySelectorAll('#stages td.stage');for(var i=0;i<cs.length;i++){if(cs[i].textContent==='launching'){cs[i].textContent='installing';cs[i].className='stage stage-installing';}}}
if(e.kind==='finished'&&!e.image){document.getElementById('state').textContent=e.message;var cf=document.getElementById('cancel');if(cf){cf.remove();}es.close();}};
es.onerror=function(){if(es.readyState===2){return;}};})();";

async fn cancel_form(
    st: St,
    who: PageCaller,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> ApiResult<HttpResponse> {
    who.0.check_csrf(&form.csrf)?;
    who.0.need(Role::Operator)?;
    let id2 = id.clone();
    blocking(move || Ok(st.jobs.cancel(&id2)?)).await?;
    Ok(see(&format!("/runs/{id}")))
}

async fn schedules_page(st: St, who: PageCaller) -> ApiResult<HttpResponse> {
    let who = who.0;
    let (list, repos) =
        blocking(move || Ok((st.catalog.schedules()?, crate::service::offered_repos(&st)?)))
            .await?;
    Ok(page(
        "Schedules",
        Some(&who),
        html! {
            table #schedules {
                tr { th { "Id" } th { "Name" } th { "Cron (UTC)" } th { "Does" } th { "Images" } th { "Enabled" } th { "Last fired" } th { "Last run" } th {} }
                @for s in &list {
                    tr {
                        td { (s.id) } td { (s.name) } td { code { (s.cron) } }
                        td { (match &s.action { Action::Collect => "collect and match".to_string(), Action::Patch { policy, repo } => format!("patch ({}) from {repo}", json_text(policy)) }) }
                        td { @if s.images.is_empty() { "all" } @else { (s.images.len()) } @if let Some(l) = &s.labels { " labelled " code { (l) } } }
                        td { (s.enabled) }
                        td { (s.last_fired.map(when).unwrap_or_else(|| "never".into())) }
                        td { @if let Some(r) = &s.last_run { a href=(format!("/runs/{r}")) { (r) } } }
                        td { @if who.role >= Role::Admin {
                            form method="post" action=(format!("/schedules/{}/delete", s.id)) {
                                input type="hidden" name="csrf" value=(who.csrf());
                                button type="submit" { "Delete" }
                            }
                        } }
                    }
                }
            }
            @if who.role >= Role::Admin {
                h2 { "New schedule" }
                form #new-schedule method="post" action="/schedules" {
                    input type="hidden" name="csrf" value=(who.csrf());
                    p { label { "Name " input type="text" name="name" required; } }
                    p { label { "Cron (minute hour day month weekday, UTC) " input type="text" name="cron" value="0 3 * * 0" required; } }
                    p { label { "Images (one path per line; empty: all) " br; textarea name="images" rows="3" cols="70" {} } }
                    p { label { "Only images labelled (when it fires) " input type="text" name="labels" placeholder="env=prod,owner!=web"; } }
                    p { select name="kind" { option value="collect" { "collect and match" } option value="patch" { "patch" } }
                        " policy " select name="policy" { option value="all_fixable" { "all fixable" } option value="critical" { "critical" } option value="high" { "high and worse" } }
                        " repository " input type="text" name="repo" size="40" value=(repos.first().cloned().unwrap_or_default()); }
                    button type="submit" { "Create" }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
struct ScheduleForm {
    csrf: String,
    name: String,
    cron: String,
    images: String,
    #[serde(default)]
    labels: String,
    kind: String,
    policy: String,
    repo: String,
}

async fn schedule_form(
    st: St,
    who: PageCaller,
    form: web::Form<ScheduleForm>,
) -> ApiResult<HttpResponse> {
    let who = who.0;
    who.check_csrf(&form.csrf)?;
    who.need(Role::Admin)?;
    let f = form.into_inner();
    let action = if f.kind == "patch" {
        Action::Patch {
            policy: policy_of(&f.policy)?,
            repo: f.repo,
        }
    } else {
        Action::Collect
    };
    let req = ScheduleReq {
        name: f.name,
        cron: f.cron,
        images: f
            .images
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        labels: Some(f.labels).filter(|l| !l.trim().is_empty()),
        action,
        enabled: true,
    };
    blocking(move || {
        let s = service::schedule_from(&st, req, None)?;
        st.catalog.put_schedule(&s)?;
        Ok(())
    })
    .await?;
    Ok(see("/schedules"))
}

async fn schedule_delete_form(
    st: St,
    who: PageCaller,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> ApiResult<HttpResponse> {
    who.0.check_csrf(&form.csrf)?;
    who.0.need(Role::Admin)?;
    blocking(move || Ok(st.catalog.delete_schedule(&id)?)).await?;
    Ok(see("/schedules"))
}

#[derive(Deserialize)]
struct SharedQ {
    images: Option<String>,
}

async fn shared_page(st: St, who: PageCaller, q: web::Query<SharedQ>) -> ApiResult<HttpResponse> {
    let st2 = st.clone();
    let ids = q.images.clone();
    let r = blocking(move || service::shared_report(&st2, ids.as_deref())).await?;
    Ok(page(
        "Shared content",
        Some(&who.0),
        html! {
            form method="get" { input type="text" name="images" placeholder="image ids, comma-separated (empty: all)" size="50" value=(q.images.clone().unwrap_or_default()); " " button type="submit" { "Compare" } }
            p { (r.common_files) " files (" (r.common_bytes) " bytes) are common to all " (r.images.len()) " images; a shared base would save " (r.base_saves) " bytes." }
            table #shared {
                tr { th { "Image" } th { "Files" } th { "Private files" } th { "Private bytes" } }
                @for i in &r.images { tr { td { (i.image) } td { (i.files) } td { (i.private_files) } td { (i.private_bytes) } } }
            }
            h2 { "Groups" }
            @for g in &r.groups { p { (g.images.join(", ")) } }
        },
    ))
}
