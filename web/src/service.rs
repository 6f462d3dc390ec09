//! What a request does, whichever way it arrives: the REST API (`api.rs`) and the
//! console (`console.rs`) both call these, so a filter, a page, a patch run or a schedule
//! means the same in both. Nothing here knows HTTP beyond the status of an error; every
//! function that touches the catalog is synchronous and runs off the async threads (see
//! [`blocking`]).

use actix_web::web;
use coldpatch_catalog::{Action, PlanPolicy, RunState, Schedule};
use coldpatch_jobs::JobSpec;
use coldpatch_vuln::Severity;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::fleet::ImageSummary;
use crate::AppState;

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

pub fn severity(s: Option<&str>) -> ApiResult<Option<Severity>> {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(Default)]
pub struct ImagesQ {
    /// Name or path contains.
    #[serde(default, deserialize_with = "blank")]
    pub q: Option<String>,
    #[serde(default, deserialize_with = "blank")]
    pub os: Option<String>,
    #[serde(default, deserialize_with = "blank")]
    pub vulnerable: Option<bool>,
    #[serde(default, deserialize_with = "blank")]
    pub min_severity: Option<String>,
    /// A label selector (`env=prod,owner!=web`).
    #[serde(default, deserialize_with = "blank")]
    pub label: Option<String>,
    /// Only images with (true) or without (false) a finding that has a fix.
    #[serde(default, deserialize_with = "blank")]
    pub fixable: Option<bool>,
    /// A column: name, os, version, packages, findings, critical, high, fixable, scanned.
    #[serde(default, deserialize_with = "blank")]
    pub sort: Option<String>,
    /// asc or desc [default: asc for name and os, desc for the counts].
    #[serde(default, deserialize_with = "blank")]
    pub order: Option<String>,
    /// On the dashboard: the label key to group the fleet by.
    #[serde(default, deserialize_with = "blank")]
    pub group: Option<String>,
    #[serde(default, deserialize_with = "blank")]
    pub limit: Option<usize>,
    #[serde(default, deserialize_with = "blank")]
    pub offset: Option<usize>,
}

/// A query parameter left empty (a form's empty field or "any" choice) is absent; any
/// other is parsed as its type, or the request is refused naming it.
fn blank<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// Every image, or those a `label` query parameter picks.
pub fn labelled(label: Option<&str>) -> ApiResult<coldpatch_catalog::Scope> {
    let all = coldpatch_catalog::Scope::all();
    Ok(match coldpatch_catalog::Selector::optional(label)? {
        Some(s) => all.labelled(s),
        None => all,
    })
}

/// What a person types to find files: a glob as it is, else a part of the path.
pub fn path_glob(f: &str) -> String {
    if f.contains(['*', '?', '[']) {
        f.to_string()
    } else {
        format!("*{f}*")
    }
}

/// The columns an image list sorts by.
pub const IMAGE_SORTS: [&str; 9] = [
    "name", "os", "version", "packages", "findings", "critical", "high", "fixable", "scanned",
];

/// The images a filter selects, from the fleet view, in the order it asks for.
pub fn filter_images<'v>(v: &'v [ImageSummary], q: &ImagesQ) -> ApiResult<Vec<&'v ImageSummary>> {
    let min = severity(q.min_severity.as_deref())?;
    let sel = coldpatch_catalog::Selector::optional(q.label.as_deref())?;
    let mut out: Vec<&ImageSummary> = v
        .iter()
        .filter(|i| {
            q.q.as_ref()
                .is_none_or(|s| i.name.contains(s.as_str()) || i.path.contains(s.as_str()))
        })
        .filter(|i| sel.as_ref().is_none_or(|s| s.matches(&i.labels)))
        .filter(|i| q.fixable.is_none_or(|want| want == (i.fixable > 0)))
        .filter(|i| {
            q.os.as_ref()
                .is_none_or(|o| i.os.as_deref().is_some_and(|x| x.contains(o.as_str())))
        })
        .filter(|i| {
            q.vulnerable
                .is_none_or(|want| want != i.findings.is_empty())
        })
        .filter(|i| min.is_none_or(|m| i.findings.iter().any(|f| f.severity >= m)))
        .collect();
    sort_images(&mut out, q.sort.as_deref(), q.order.as_deref())?;
    Ok(out)
}

/// Sorts by a column of [`IMAGE_SORTS`]; ties by name, so pages never shuffle.
pub fn sort_images(
    v: &mut [&ImageSummary],
    sort: Option<&str>,
    order: Option<&str>,
) -> ApiResult<()> {
    let sort = sort.unwrap_or("name");
    let desc = match order {
        None => !matches!(sort, "name" | "os"),
        Some("asc") => false,
        Some("desc") => true,
        Some(o) => return Err(ApiError::bad(format!("order {o:?} is asc or desc"))),
    };
    // Compared in place: a key made per comparison would copy names n log n times.
    let by: fn(&ImageSummary, &ImageSummary) -> std::cmp::Ordering = match sort {
        "name" => |a, b| a.name.cmp(&b.name),
        "os" => |a, b| a.os.cmp(&b.os),
        "version" => |a, b| a.version.cmp(&b.version),
        "packages" => |a, b| a.packages.cmp(&b.packages),
        "findings" => |a, b| {
            let t = |i: &ImageSummary| i.by_severity.iter().sum::<usize>();
            t(a).cmp(&t(b))
        },
        "critical" => |a, b| a.by_severity[0].cmp(&b.by_severity[0]),
        "high" => |a, b| a.by_severity[1].cmp(&b.by_severity[1]),
        "fixable" => |a, b| a.fixable.cmp(&b.fixable),
        "scanned" => |a, b| a.scanned.cmp(&b.scanned),
        s => {
            return Err(ApiError::bad(format!(
                "cannot sort by {s:?}: one of {}",
                IMAGE_SORTS.join(", ")
            )))
        }
    };
    v.sort_by(|a, b| {
        let o = by(a, b);
        let o = if desc { o.reverse() } else { o };
        o.then_with(|| a.name.cmp(&b.name))
    });
    Ok(())
}

pub fn image_id(st: &AppState, id: &str) -> ApiResult<coldpatch_catalog::ImageRecord> {
    if id.parse::<u64>().is_err() {
        return Err(ApiError::bad(format!("image id {id:?} is not a number")));
    }
    Ok(st.catalog.image(id)?)
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
                let (_, found) = view.index.inventory_findings(&inv);
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

/// Most images one shared-content report compares (its work grows with each).
pub const MAX_SHARED: usize = 100;

pub fn shared_report(
    st: &AppState,
    ids: Option<&str>,
) -> ApiResult<coldpatch_catalog::shared::SharedReport> {
    let keys: Vec<String> = match ids.filter(|s| !s.trim().is_empty()) {
        Some(s) => {
            // Distinct ids, at most MAX_SHARED of them, checked before any is looked up.
            let mut want: Vec<&str> = Vec::new();
            for i in s.split(',').map(str::trim) {
                if !want.contains(&i) {
                    if want.len() == MAX_SHARED {
                        return Err(ApiError::bad(format!(
                            "compare at most {MAX_SHARED} distinct images at once"
                        )));
                    }
                    want.push(i);
                }
            }
            want.into_iter()
                .map(|i| image_id(st, i).map(|r| r.path))
                .collect::<ApiResult<_>>()?
        }
        None => {
            let all: Vec<String> = st.catalog.images()?.into_iter().map(|i| i.path).collect();
            if all.len() > MAX_SHARED {
                return Err(ApiError::bad(format!(
                    "the fleet has {} images; name at most {MAX_SHARED} with images=ID,ID,...",
                    all.len()
                )));
            }
            all
        }
    };
    Ok(st.catalog.shared(&keys)?)
}

/// Largest feed file accepted by upload (the Debian tracker JSON is under 100 MiB).
pub const MAX_FEED_UPLOAD: usize = 128 << 20;

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
    let dir = st.catalog.state().ensure(st.catalog.state().uploads())?;
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
        .import_feed(&name, source, coldpatch_catalog::clock::now(), data)?;
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

/// Queues a collect-and-match run on the images a request names.
pub fn start_scan(st: &AppState, body: &ScanReq) -> ApiResult<coldpatch_catalog::RunRecord> {
    let images = image_files_of(st, &body.images)?;
    Ok(st.jobs.submit(
        &JobSpec::Collect {
            images,
            rescan: body.rescan,
        },
        None,
    )?)
}

/// Image files a request names (paths, or images of the catalog by id or path): each must
/// be a regular file under the server's image roots, symlinks resolved; none: every
/// catalog image under them. A refusal reads the same whatever the path is (see
/// [`coldpatch_jobs::roots`]).
pub fn image_files_of(st: &AppState, images: &[String]) -> ApiResult<Vec<String>> {
    if images.is_empty() {
        if st.roots.images().is_empty() {
            return Err(refused(coldpatch_jobs::Refused::NoImageRoots(
                "every image".into(),
            )));
        }
        let all: Vec<String> = st
            .catalog
            .images()?
            .into_iter()
            .map(|i| i.path)
            .filter(|p| st.roots.covers_image(p))
            .collect();
        if all.is_empty() {
            return Err(ApiError::bad(
                "no image of the catalog lies under this server's image roots",
            ));
        }
        return Ok(all);
    }
    distinct_named(images, |i| {
        let path = match st.catalog.image(i) {
            Ok(r) => r.path,
            Err(_) => i.to_string(),
        };
        st.roots.image(&path).map_err(refused)
    })
}

/// The indexed repositories the console offers: those under the repository roots.
pub fn offered_repos(st: &AppState) -> ApiResult<Vec<String>> {
    Ok(st
        .catalog
        .repo_roots()?
        .into_iter()
        .filter(|r| st.roots.repo(r).is_ok())
        .collect())
}

/// Most images (or ids) one request may name.
pub const MAX_NAMED: usize = 1000;

/// The images a request names, each resolved by `resolve`, at most [`MAX_NAMED`] of
/// them, each once (in the order first named).
fn distinct_named(
    names: &[String],
    resolve: impl Fn(&str) -> ApiResult<String>,
) -> ApiResult<Vec<String>> {
    if names.len() > MAX_NAMED {
        return Err(ApiError::bad(format!(
            "a request names at most {MAX_NAMED} images"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        let path = resolve(n)?;
        if !out.contains(&path) {
            out.push(path);
        }
    }
    Ok(out)
}

fn refused(e: coldpatch_jobs::Refused) -> ApiError {
    ApiError::bad(coldpatch_catalog::text::cleaned(&e.to_string()))
}

/// (Unknown fields cannot be refused here: serde does not combine that with the
/// flattened policy.)
#[derive(Debug, Deserialize)]
pub struct PatchReq {
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default)]
    pub image: Option<String>,
    /// A label selector: the images it picks (of those named, if any).
    #[serde(default)]
    pub label: Option<String>,
    pub repo: String,
    #[serde(flatten)]
    pub policy: PlanPolicy,
    /// Run the package tool on every image instead of replaying one image's change set
    /// onto those with the same plan.
    #[serde(default)]
    pub no_replay: bool,
}

/// A repository directory a request names: under the server's repository roots.
pub fn repo_dir(st: &AppState, repo: &str) -> ApiResult<String> {
    st.roots.repo(repo).map_err(refused)
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

/// Queues a patch run from a request.
pub fn start_patch(st: &AppState, body: &PatchReq) -> ApiResult<coldpatch_catalog::RunRecord> {
    check_policy(&body.policy)?;
    let repo = repo_dir(st, &body.repo)?;
    let mut names = body.images.clone();
    names.extend(body.image.clone());
    if let Some(sel) = coldpatch_catalog::Selector::optional(body.label.as_deref())? {
        let l = sel.to_string();
        let scope = coldpatch_catalog::Scope::images(&names).labelled(sel);
        names = st
            .catalog
            .scoped(&scope)?
            .into_iter()
            .map(|i| i.path)
            .collect();
        if names.is_empty() {
            return Err(ApiError::bad(format!(
                "no image matches the label selector {l:?}"
            )));
        }
    }
    if names.is_empty() {
        return Err(ApiError::bad("name at least one image to patch"));
    }
    let images = distinct_named(&names, |i| {
        let path = st.catalog.image(i)?.path;
        st.roots.image(&path).map_err(refused)?;
        Ok(path)
    })?;
    Ok(st.jobs.submit(
        &JobSpec::Patch {
            images,
            policy: body.policy.clone(),
            repo,
            no_replay: body.no_replay,
        },
        None,
    )?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleReq {
    pub name: String,
    pub cron: String,
    #[serde(default)]
    pub images: Vec<String>,
    /// A label selector (`env=prod,owner!=web`), applied when the schedule fires.
    #[serde(default)]
    pub labels: Option<String>,
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
    coldpatch_jobs::scheduler::parse(&r.cron)?;
    let images = if r.images.is_empty() {
        Vec::new()
    } else {
        image_files_of(st, &r.images)?
    };
    let labels = coldpatch_catalog::Selector::optional(r.labels.as_deref())?.map(|s| s.to_string());
    let action = match r.action {
        Action::Patch { policy, repo } => {
            check_policy(&policy)?;
            Action::Patch {
                policy,
                repo: repo_dir(st, &repo)?,
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
        labels,
        action,
        enabled: r.enabled,
        created: old.map_or_else(coldpatch_catalog::clock::now, |o| o.created),
        last_fired: old.and_then(|o| o.last_fired),
        last_run: old.and_then(|o| o.last_run.clone()),
    })
}
