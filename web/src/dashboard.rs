//! The fleet at a glance (`/`) and the fleet search (`/search`): exposure grouped by a
//! label, findings over time, the advisories that hit the most images, the images
//! scanned longest ago, and the image list, filtered, sorted and paged on the server
//! from the fleet view (`fleet.rs`), so a page costs the same for ten images or ten
//! thousand.

use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;

use crate::auth::PageCaller;
use crate::charts;
use crate::console::{sev_class, when};
use crate::error::ApiResult;
use crate::fleet::{FleetView, SEVERITIES};
use crate::service::{self, blocking, ImagesQ};
use crate::AppState;

type St = web::Data<AppState>;

/// Rows of the image list per page unless asked.
pub const PAGE: usize = 50;

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// The dashboard's query string for `q` with some parameters replaced, so links keep
/// the filters the page was asked with.
fn link(q: &ImagesQ, set: &[(&str, String)]) -> String {
    let get = |k: &str| set.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    let mut parts = Vec::new();
    let cur: [(&str, Option<String>); 10] = [
        ("q", q.q.clone()),
        ("label", q.label.clone()),
        ("os", q.os.clone()),
        ("min_severity", q.min_severity.clone()),
        ("fixable", q.fixable.map(|b| b.to_string())),
        ("vulnerable", q.vulnerable.map(|b| b.to_string())),
        ("group", q.group.clone()),
        ("sort", q.sort.clone()),
        ("order", q.order.clone()),
        ("offset", q.offset.map(|o| o.to_string())),
    ];
    for (k, v) in cur {
        if let Some(v) = get(k).or(v).filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", enc(&v)));
        }
    }
    if let Some(l) = q.limit {
        parts.push(format!("limit={l}"));
    }
    format!("/?{}", parts.join("&"))
}

/// A column header that sorts by `col`: the other way round when it already does.
fn sort_header(q: &ImagesQ, col: &str, label: &str) -> Markup {
    let on = q.sort.as_deref().unwrap_or("name") == col;
    let default_desc = !matches!(col, "name" | "os");
    let desc_now = match q.order.as_deref() {
        Some(o) => o == "desc",
        None => default_desc,
    };
    let next = if on {
        if desc_now {
            "asc"
        } else {
            "desc"
        }
    } else if default_desc {
        "desc"
    } else {
        "asc"
    };
    let arrow = match (on, desc_now) {
        (false, _) => "",
        (true, true) => " ▼",
        (true, false) => " ▲",
    };
    html! {
        th aria-sort=(if !on { "none" } else if desc_now { "descending" } else { "ascending" }) {
            a.sort href=(link(q, &[("sort", col.into()), ("order", next.into()), ("offset", String::new())])) { (label) (arrow) }
        }
    }
}

pub async fn dashboard(
    st: St,
    who: PageCaller,
    req: actix_web::HttpRequest,
    q: web::Query<ImagesQ>,
) -> ApiResult<HttpResponse> {
    let who = who.0;
    let view = blocking({
        let st = st.clone();
        move || Ok(st.fleet.view(&st.catalog)?)
    })
    .await?;
    let q = q.into_inner();
    // Nothing of the caller is in the body (the frame has that), so one rendering serves
    // every request with the same question of the same view within the minute (feeds
    // turn stale by the clock, not by a change).
    let now = coldpatch_catalog::clock::now();
    let key = format!("dashboard {} {}", now / 60, req.query_string());
    let body = view.rendered(key, |view| {
        Ok::<_, crate::error::ApiError>(body(view, &q, now)?.into_string())
    })?;
    Ok(crate::console::page(
        "Fleet",
        Some(&who),
        maud::PreEscaped(body.to_string()),
    ))
}

/// The dashboard's body for a question of a view.
fn body(view: &FleetView, q: &ImagesQ, now: u64) -> ApiResult<Markup> {
    let list = service::filter_images(&view.images, q)?;
    let limit = q.limit.unwrap_or(PAGE).clamp(1, service::MAX_LIMIT);
    let shown = service::paged(list, Some(limit), q.offset)?;
    let stale = coldpatch_catalog::feeds::stale(&view.feeds, 7 * 86400, now);
    let keys = view.label_keys();
    let group = q.group.clone().filter(|g| !g.is_empty()).or_else(|| {
        keys.iter()
            .max_by_key(|(_, n)| **n)
            .map(|(k, _)| k.to_string())
    });
    Ok(html! {
        div.cards {
            div.card { b { (view.images.len()) } "images" }
            div.card { b { (view.by_severity().iter().sum::<usize>()) } "findings" }
            div.card { b { (view.images.iter().filter(|i| i.fixable_critical > 0).count()) } "images with fixable criticals" }
            div.card { b { (view.feeds.len()) } "feeds, " (stale.len()) " stale" }
        }
        form.search method="get" action="/search" {
            "Search the fleet: "
            input type="search" name="package" placeholder="package name" aria-label="Package name";
            " " input type="search" name="path" placeholder="file path or glob" aria-label="File path";
            " " button type="submit" { "Search" }
        }
        (overview(view, group.as_deref(), &keys, q))
        h2 #images-heading { "Images" }
        (filters(q))
        table #images {
            tr {
                (sort_header(q, "name", "Image"))
                (sort_header(q, "os", "OS"))
                th { "Labels" }
                (sort_header(q, "version", "Version"))
                (sort_header(q, "packages", "Packages"))
                (sort_header(q, "critical", "critical"))
                (sort_header(q, "high", "high"))
                (sort_header(q, "findings", "all findings"))
                (sort_header(q, "fixable", "fixable"))
                (sort_header(q, "scanned", "Scanned"))
            }
            @for i in &shown.items {
                tr {
                    td { a href=(format!("/images/{}", i.id)) title=(i.path) { (i.name) } }
                    td { (i.os.clone().unwrap_or_else(|| "unknown".into())) }
                    td.labels { @for (k, v) in &i.labels { span.label { (k) "=" (v) } " " } }
                    td { (i.version) }
                    td { (i.packages) }
                    td.sev-critical { (i.by_severity[0]) }
                    td.sev-high { (i.by_severity[1]) }
                    td { (i.by_severity.iter().sum::<usize>()) }
                    td { (i.fixable) }
                    td { (i.scanned.map(when).unwrap_or_else(|| "never".into())) }
                }
            }
        }
        (pager(q, shown.total, shown.offset, limit))
        p #report-links {
            "Report on these images' labels: "
            @let l = enc(q.label.as_deref().unwrap_or(""));
            a href=(format!("/report?label={l}")) { "HTML" } " · "
            a href=(format!("/report?label={l}&format=csv")) { "CSV" }
        }
        @if !stale.is_empty() {
            h2 { "Stale feeds (data older than 7 days)" }
            table { @for f in &stale { tr { td { (f.name) } td { "as of " (when(f.as_of)) } } } }
        }
    })
}

/// The charts and short lists above the image list.
fn overview(
    view: &FleetView,
    group: Option<&str>,
    keys: &std::collections::BTreeMap<&str, usize>,
    q: &ImagesQ,
) -> Markup {
    let mut top: Vec<&(String, coldpatch_vuln::Severity, usize)> =
        view.advisories_hit().iter().collect();
    top.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)).then(a.0.cmp(&b.0)));
    html! {
        div.overview {
            section {
                h2 { "Findings by severity" }
                (charts::severity_bars(view.by_severity()))
            }
            section {
                h2 { "Findings over time" }
                (charts::findings_over_time(&view.trend))
            }
        }
        h2 { "Exposure by label" }
        @if keys.is_empty() {
            p { "No image carries a label yet: " code { "coldpatch label IMAGE... owner=web" } " or PUT /api/v1/images/{id}/labels." }
        } @else {
            form method="get" action="/" {
                label { "Group by " select name="group" {
                    @for (k, n) in keys {
                        option value=(k) selected[Some(*k) == group] { (k) " (" (n) ")" }
                    }
                } }
                " " button type="submit" { "Group" }
            }
            @if let Some(g) = group {
                @let groups = view.groups(g);
                (charts::group_bars(g, &groups))
                table #groups {
                    tr { th { (g) } th { "Images" } @for s in SEVERITIES.iter().take(4) { th { (s.as_str()) } } th { "fixable" } }
                    @for gr in &groups {
                        tr {
                            td {
                                @match &gr.value {
                                    Some(v) => a href=(link(q, &[("label", format!("{g}={v}")), ("offset", String::new())])) { (v) },
                                    None => a href=(link(q, &[("label", format!("!{g}")), ("offset", String::new())])) { "(none)" },
                                }
                            }
                            td { (gr.images) }
                            @for (k, n) in gr.by_severity.iter().take(4).enumerate() { td class=(sev_class(SEVERITIES[k].as_str())) { (n) } }
                            td { (gr.fixable) }
                        }
                    }
                }
            }
        }
        div.overview {
            section {
                h2 { "Top advisories by images affected" }
                table #advisories {
                    tr { th { "Advisory" } th { "Worst" } th { "Images" } }
                    @for (id, s, n) in top.iter().take(10).map(|t| (&t.0, t.1, t.2)) {
                        tr { td { a href=(format!("/advisories/{}", enc(id))) { (id) } } td class=(sev_class(s.as_str())) { (s.as_str()) } td { (n) } }
                    }
                }
            }
            section {
                h2 { "Oldest scans" }
                table #oldest {
                    tr { th { "Image" } th { "Scanned" } }
                    @for i in view.oldest_scans(10) {
                        tr { td { a href=(format!("/images/{}", i.id)) { (i.name) } } td { (i.scanned.map(when).unwrap_or_else(|| "never".into())) } }
                    }
                }
            }
        }
    }
}

/// The image list's filter form; the sort and group it was shown with are kept.
fn filters(q: &ImagesQ) -> Markup {
    html! {
        form #filters method="get" action="/" {
            input type="search" name="q" placeholder="name or path contains" aria-label="Name or path" value=(q.q.clone().unwrap_or_default());
            " " input type="text" name="label" placeholder="label: env=prod,owner!=web" aria-label="Label selector" value=(q.label.clone().unwrap_or_default());
            " " input type="text" name="os" placeholder="OS" aria-label="OS" value=(q.os.clone().unwrap_or_default());
            " " select name="min_severity" aria-label="Minimum severity" {
                option value="" { "any severity" }
                @for s in SEVERITIES.iter().take(4) {
                    option value=(s.as_str()) selected[q.min_severity.as_deref() == Some(s.as_str())] { "≥ " (s.as_str()) }
                }
            }
            " " select name="fixable" aria-label="Has a fix" {
                option value="" { "fix or not" }
                option value="true" selected[q.fixable == Some(true)] { "has a fix" }
                option value="false" selected[q.fixable == Some(false)] { "no fix" }
            }
            @if let Some(s) = &q.sort { input type="hidden" name="sort" value=(s); }
            @if let Some(o) = &q.order { input type="hidden" name="order" value=(o); }
            @if let Some(g) = &q.group { input type="hidden" name="group" value=(g); }
            " " button type="submit" { "Filter" }
            " " a href="/" { "clear" }
        }
    }
}

fn pager(q: &ImagesQ, total: usize, offset: usize, limit: usize) -> Markup {
    let pages = total.div_ceil(limit).max(1);
    let page = offset / limit + 1;
    html! {
        nav.pager aria-label="Pages" {
            @if offset > 0 {
                a rel="prev" href=(link(q, &[("offset", offset.saturating_sub(limit).to_string())])) { "← previous" } " "
            }
            span #page-info { "page " (page) " of " (pages) " · " (total) " image(s)" }
            @if offset + limit < total {
                " " a rel="next" href=(link(q, &[("offset", (offset + limit).to_string())])) { "next →" }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQ {
    label: Option<String>,
    format: Option<String>,
}

/// `/report`: the exposure report (`report.rs`) of the images a label selector picks,
/// as a download (`format=csv`) or a page to print or save (`html`, the default).
pub async fn report(st: St, _who: PageCaller, q: web::Query<ReportQ>) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let sel = coldpatch_catalog::Selector::optional(q.label.as_deref())?;
    let csv = match q.format.as_deref() {
        None | Some("" | "html") => false,
        Some("csv") => true,
        Some(f) => {
            return Err(crate::error::ApiError::bad(format!(
                "format {f:?} is html or csv"
            )))
        }
    };
    let r = blocking(move || {
        let view = st.fleet.view(&st.catalog)?;
        Ok(crate::report::build(&st.catalog, &view, sel.as_ref())?)
    })
    .await?;
    let stamp = coldpatch_catalog::clock::rfc3339(r.generated).replace(':', "");
    Ok(if csv {
        HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "content-disposition",
                format!("attachment; filename=\"coldpatch-report-{stamp}.csv\""),
            ))
            .insert_header(("x-content-type-options", "nosniff"))
            .body(crate::report::csv(&r))
    } else {
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header(("content-security-policy", crate::layout::CSP))
            .insert_header(("x-content-type-options", "nosniff"))
            .body(crate::report::html(&r))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQ {
    package: Option<String>,
    path: Option<String>,
    label: Option<String>,
    offset: Option<usize>,
}

/// `/search`: a package (exact name) or files (path contains, or a glob) across the
/// current versions of the fleet, paged.
pub async fn search(st: St, who: PageCaller, q: web::Query<SearchQ>) -> ApiResult<HttpResponse> {
    let who = who.0;
    let q = q.into_inner();
    let package = q.package.clone().filter(|p| !p.trim().is_empty());
    let path = q.path.clone().filter(|p| !p.trim().is_empty());
    let label = q.label.clone();
    let offset = q.offset.unwrap_or(0);
    let (rows, total, names) = blocking({
        let st = st.clone();
        move || {
            let scope = service::labelled(label.as_deref())?;
            let view = st.fleet.view(&st.catalog)?;
            let names: std::collections::HashMap<String, (u64, String)> = view
                .images
                .iter()
                .map(|i| (i.path.clone(), (i.id, i.name.clone())))
                .collect();
            let mut rows: Vec<(String, String, String)> = Vec::new();
            if let Some(p) = &package {
                for h in st.catalog.packages(
                    &scope,
                    coldpatch_catalog::Versions::Current,
                    Some(p.trim()),
                    None,
                )? {
                    rows.push((h.image, h.package.name.clone(), h.package.full_version()));
                }
            }
            if let Some(f) = &path {
                let glob = service::path_glob(f.trim());
                for h in st.catalog.files(
                    &scope,
                    coldpatch_catalog::Versions::Current,
                    Some(&glob),
                    None,
                )? {
                    let what = h.file.sha256.clone().unwrap_or_default();
                    rows.push((h.image, h.file.path.clone(), what));
                }
            }
            let total = rows.len();
            let page = service::paged(rows, Some(PAGE), Some(offset))?;
            Ok((page.items, total, names))
        }
    })
    .await?;
    let more = |o: usize| {
        let mut s = String::from("/search?");
        for (k, v) in [
            ("package", &q.package),
            ("path", &q.path),
            ("label", &q.label),
        ] {
            if let Some(v) = v {
                s.push_str(&format!("{k}={}&", enc(v)));
            }
        }
        format!("{s}offset={o}")
    };
    let body = html! {
        form.search method="get" action="/search" {
            input type="search" name="package" placeholder="package name" aria-label="Package name" value=(q.package.clone().unwrap_or_default());
            " " input type="search" name="path" placeholder="file path or glob" aria-label="File path" value=(q.path.clone().unwrap_or_default());
            " " input type="text" name="label" placeholder="label selector" aria-label="Label selector" value=(q.label.clone().unwrap_or_default());
            " " button type="submit" { "Search" }
        }
        @if total == 0 {
            p { "Nothing found." }
        } @else {
            table #hits {
                tr { th { "Image" } th { "Package or path" } th { "Version or SHA-256" } }
                @for (img, what, detail) in &rows {
                    tr {
                        td { @match names.get(img) { Some((id, n)) => a href=(format!("/images/{id}")) { (n) }, None => (img) } }
                        td { (what) } td { code { (detail) } }
                    }
                }
            }
            nav.pager {
                @if offset > 0 { a rel="prev" href=(more(offset.saturating_sub(PAGE))) { "← previous" } " " }
                span { (offset + 1) "–" (offset + rows.len()) " of " (total) }
                @if offset + PAGE < total { " " a rel="next" href=(more(offset + PAGE)) { "next →" } }
            }
        }
    };
    Ok(crate::console::page("Search the fleet", Some(&who), body))
}
