//! Every route under every role, bad input, and the flows users rely on, over HTTP.

use coldpatch_catalog::Role;
use coldpatch_web::api::ROUTES;

use crate::{call, catalog_with, image_dir, json, start};

const ROLES: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

/// What the catalog holds that bad requests must not change.
fn counts(s: &crate::Server) -> (usize, usize, usize, usize) {
    let c = &s.state.catalog;
    (
        c.feeds().expect("feeds").len(),
        c.schedules().expect("schedules").len(),
        c.tokens().expect("tokens").len(),
        c.runs().expect("runs").len(),
    )
}

#[test]
fn every_route_answers_every_role_as_documented() {
    let (dir, catalog, keys) = catalog_with(&["debian-11-old"]);
    let s = start(dir, catalog, 0);
    let admin = s.token(Role::Admin).to_string();
    // Things for the path parameters to name.
    let (_, adv) = call(
        "get",
        &format!("{}/api/v1/advisories?limit=1", s.base),
        Some(&admin),
        None,
    );
    let adv = json(&adv)["items"][0]["id"]
        .as_str()
        .expect("an advisory hits the image")
        .to_string();
    let run = s
        .state
        .jobs
        .submit(
            &coldpatch_jobs::JobSpec::Collect {
                images: keys.clone(),
                rescan: false,
            },
            None,
        )
        .expect("queue");
    let sched = coldpatch_catalog::Schedule {
        id: "s1".into(),
        name: "nightly".into(),
        cron: "0 3 * * *".into(),
        images: Vec::new(),
        action: coldpatch_catalog::Action::Collect,
        enabled: true,
        created: 0,
        labels: None,
        last_fired: None,
        last_run: None,
    };
    s.state.catalog.put_schedule(&sched).expect("schedule");
    let before = counts(&s);
    for r in ROUTES {
        let path = r.path.replace("{cve}", &adv).replace(
            "{id}",
            match r.path {
                p if p.starts_with("/images/") => "1",
                p if p.starts_with("/advisories/") => &adv,
                p if p.starts_with("/runs/") => &run.id,
                // Deleting must find nothing, so the matrix leaves the store as it was.
                _ if r.method == "delete" => "no-such-id",
                p if p.starts_with("/schedules/") => "s1",
                _ => "",
            },
        );
        let url = format!("{}/api/v1{path}", s.base);
        // A body no route accepts: unknown fields, not a feed.
        let bad = serde_json::json!({"bogus": 1});
        let body = r.body.then_some(&bad);
        let (st, text) = call(r.method, &url, None, body);
        match r.role {
            None => assert_eq!(st, 200, "{} {path}: {text}", r.method),
            Some(_) => {
                assert_eq!(st, 401, "{} {path} without a token: {text}", r.method);
                assert!(json(&text)["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("authentication required")));
            }
        }
        let Some(need) = r.role else { continue };
        for role in ROLES {
            // The events stream of a queued run stays open: read it only as a viewer
            // once the run is cancelled (below).
            if path.ends_with("/events") {
                continue;
            }
            let (st, text) = call(r.method, &url, Some(s.token(role)), body);
            if role < need {
                assert_eq!(st, 403, "{} {path} as {role:?}: {text}", r.method);
                assert!(
                    json(&text)["error"]
                        .as_str()
                        .is_some_and(|e| e.contains(need.as_str())),
                    "{text}"
                );
            } else {
                assert!(
                    st != 401 && st != 403,
                    "{} {path} as {role:?}: {st} {text}",
                    r.method
                );
                assert!(
                    !text.contains("no such API route"),
                    "{} {path}: {text}",
                    r.method
                );
                if r.body {
                    assert_eq!(
                        st, 400,
                        "{} {path} as {role:?} with a bad body: {text}",
                        r.method
                    );
                    assert!(json(&text)["error"].is_string(), "{text}");
                }
                if r.method == "delete" {
                    assert_eq!(st, 404, "{text}");
                }
            }
        }
    }
    // The cancel route (operator) cancelled the queued run; nothing else was stored.
    assert_eq!(counts(&s), before);
    assert_eq!(
        s.state.catalog.run(&run.id).expect("run").state,
        coldpatch_catalog::RunState::Cancelled
    );
    let (st, text) = call(
        "get",
        &format!("{}/api/v1/runs/{}/events", s.base, run.id),
        Some(s.token(Role::Viewer)),
        None,
    );
    assert_eq!(st, 200);
    let kinds: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| json(d)["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(kinds, ["queued", "cancelled", "finished"], "{text}");

    // The OpenAPI document lists exactly the routes, with their roles.
    let (st, text) = call(
        "get",
        &format!("{}/api/v1/openapi.json", s.base),
        Some(s.token(Role::Viewer)),
        None,
    );
    assert_eq!(st, 200);
    let doc = json(&text);
    let mut documented: Vec<(String, String, String)> = Vec::new();
    for (p, ops) in doc["paths"].as_object().expect("paths") {
        for (m, op) in ops.as_object().expect("ops") {
            documented.push((
                m.clone(),
                p.clone(),
                op["x-role"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    let mut routes: Vec<(String, String, String)> = ROUTES
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.path.to_string(),
                r.role.map_or("none", |x| x.as_str()).to_string(),
            )
        })
        .collect();
    documented.sort();
    routes.sort();
    assert_eq!(documented, routes);
    // A path that is no route is a JSON 404.
    let (st, text) = call(
        "get",
        &format!("{}/api/v1/nope", s.base),
        Some(&admin),
        None,
    );
    assert_eq!(st, 404);
    assert!(text.contains("no such API route"));
    // Bad query values are 400s that say what is wrong.
    for (q, says) in [
        ("/images?limit=0", "limit"),
        ("/images?limit=501", "limit"),
        ("/images?colour=red", "unknown field `colour`"),
        ("/images?min_severity=huge", "unknown severity"),
        ("/images/abc", "not a number"),
        ("/files", "give path"),
        ("/runs?state=sleeping", "unknown run state"),
    ] {
        let (st, text) = call("get", &format!("{}/api/v1{q}", s.base), Some(&admin), None);
        assert_eq!(st, 400, "{q}: {text}");
        assert!(
            json(&text)["error"]
                .as_str()
                .is_some_and(|e| e.contains(says)),
            "{q}: {text}"
        );
    }
    let (st, _) = call(
        "get",
        &format!("{}/api/v1/images/999", s.base),
        Some(&admin),
        None,
    );
    assert_eq!(st, 404);
}

#[test]
fn fleet_questions_uploads_jobs_schedules_and_tokens() {
    let (dir, catalog, keys) = catalog_with(&["debian-11-old"]);
    let s = start(dir, catalog, 0);
    let (v, o, a) = (
        s.token(Role::Viewer).to_string(),
        s.token(Role::Operator).to_string(),
        s.token(Role::Admin).to_string(),
    );
    let api = |p: &str| format!("{}/api/v1{p}", s.base);
    let get = |p: &str| {
        let (st, t) = call("get", &api(p), Some(&v), None);
        assert_eq!(st, 200, "{p}: {t}");
        json(&t)
    };
    // Images and their findings agree with the catalog's own matching.
    let want = s.state.catalog.scan_images(&keys).expect("scan").images[0]
        .findings
        .clone();
    assert!(!want.is_empty());
    let imgs = get("/images?vulnerable=true&os=Debian");
    assert_eq!(imgs["total"], 1);
    assert_eq!(imgs["items"][0]["path"], keys[0].as_str());
    assert_eq!(get("/images?q=no-such-image")["total"], 0);
    let f = get("/images/1/findings?limit=500");
    assert_eq!(f["total"], want.len());
    let fixable = want.iter().filter(|x| x.fixed.is_some()).count();
    assert_eq!(
        get("/images/1/findings?fixable=true&limit=500")["total"],
        fixable
    );
    let cve = want[0].of.advisory.clone();
    let hit = get(&format!("/affected/{cve}"));
    assert_eq!(hit["total"], 1);
    assert_eq!(hit["items"][0]["path"], keys[0].as_str());
    assert_eq!(get(&format!("/advisories/{cve}"))["images"][0]["image"], 1);
    // Packages: search, fleet query; files by path.
    let (_, inv) = s
        .state
        .catalog
        .current_inventory(&keys[0])
        .expect("inventory");
    let libs = inv
        .packages
        .iter()
        .filter(|p| p.name.contains("lib"))
        .count();
    let p = get("/images/1/packages?q=lib&limit=500");
    assert_eq!(p["total"], libs);
    assert!(p["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|x| x["name"].as_str().is_some_and(|n| n.contains("lib"))));
    let page2 = get("/images/1/packages?q=lib&limit=5&offset=5");
    assert_eq!(page2["items"][0]["name"], p["items"][5]["name"]);
    assert_eq!(get("/packages?name=libc6")["total"], 1);
    let osr = get("/images/1/files?path=/etc/os-release");
    assert_eq!(osr["total"], 1);
    assert_eq!(get("/files?path=/etc/os-release")["total"], 1);
    let vers = get("/images/1/versions");
    assert_eq!(
        vers["items"][0]["by_severity"]
            .as_array()
            .expect("counts")
            .iter()
            .map(|n| n.as_u64().unwrap_or(0))
            .sum::<u64>(),
        want.len() as u64
    );
    assert!(
        get("/shared?images=1")["images"][0]["files"]
            .as_u64()
            .unwrap_or(0)
            > 1000
    );

    // Feed uploads: validated before anything is stored; too large is refused.
    let feeds = s.state.catalog.feeds().expect("feeds").len();
    let upload = |body: &[u8], token: &str| {
        let mut r = crate::agent()
            .post(&api("/feeds?name=uploaded"))
            .header("authorization", &format!("Bearer {token}"))
            .send(body)
            .expect("upload");
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    let (st, t) = upload(b"{\"not\": \"a feed\"}", &a);
    assert_eq!(st, 400, "{t}");
    assert!(t.contains("nothing stored"), "{t}");
    let (st, _) = upload(&vec![b' '; coldpatch_web::service::MAX_FEED_UPLOAD + 1], &a);
    assert_eq!(st, 413);
    let (st, _) = upload(b"{}", &o);
    assert_eq!(st, 403);
    assert_eq!(s.state.catalog.feeds().expect("feeds").len(), feeds);
    let osv =
        std::fs::read(crate::repo_root().join("tests/data/feeds/osv/DEBIAN-CVE-2025-6020.json"))
            .expect("osv");
    let (st, t) = upload(&osv, &a);
    assert_eq!(st, 200, "{t}");
    assert_eq!(json(&t)["imported"], 1);
    let stored = s.state.catalog.feeds().expect("feeds");
    assert_eq!(stored.len(), feeds + 1);
    let up = stored
        .iter()
        .find(|f| f.name == "uploaded")
        .expect("uploaded feed");
    assert!(
        up.source.starts_with("upload by token ") && up.source.ends_with("(admin)"),
        "{}",
        up.source
    );

    // A scan is queued, runs as one step, and every event carries its run id.
    let (st, t) = call(
        "post",
        &api("/scans"),
        Some(&o),
        Some(&serde_json::json!({"images": [keys[0]], "rescan": true})),
    );
    assert_eq!(st, 202, "{t}");
    let id = json(&t)["id"].as_str().expect("id").to_string();
    assert_eq!(json(&t)["state"], "queued");
    assert_eq!(
        s.state
            .local
            .as_ref()
            .expect("a local queue")
            .run_next()
            .as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        s.state.local.as_ref().expect("a local queue").run_next(),
        None
    );
    let r = get(&format!("/runs/{id}"));
    assert_eq!(r["run"]["state"], "succeeded", "{r}");
    let ev = r["events"].as_array().expect("events");
    let kinds: Vec<&str> = ev.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["queued", "started", "collected", "finished"]);
    assert!(ev.iter().all(|e| e["run"] == id.as_str()));
    assert_eq!(get("/runs?state=succeeded&kind=collect")["total"], 1);
    let (st, t) = call("post", &api(&format!("/runs/{id}/cancel")), Some(&o), None);
    assert_eq!(st, 409, "{t}");
    let (st, t) = call(
        "post",
        &api("/scans"),
        Some(&o),
        Some(&serde_json::json!({"images": ["/no/such/file"]})),
    );
    assert_eq!(st, 400);
    assert!(t.contains("/no/such/file"), "{t}");

    // A plan preview from the real bullseye-security repository writes no run.
    let repo = image_dir("repo-bullseye-security").join("repo");
    let runs = s.state.catalog.runs().expect("runs").len();
    let (st, t) = call(
        "post",
        &api("/plans"),
        Some(&o),
        Some(&serde_json::json!({"image": "1", "repo": repo, "policy": "all_fixable"})),
    );
    assert_eq!(st, 200, "{t}");
    assert!(!json(&t)["steps"].as_array().expect("steps").is_empty());
    let (st, t) = call(
        "post",
        &api("/plans"),
        Some(&o),
        Some(&serde_json::json!({"image": "1", "repo": "/no/repo", "policy": "all_fixable"})),
    );
    assert_eq!(st, 400, "{t}");
    let (st, t) = call(
        "post",
        &api("/runs"),
        Some(&o),
        Some(&serde_json::json!({"images": ["1"], "repo": repo, "policy": "cves", "ids": []})),
    );
    assert_eq!(st, 400, "{t}");
    assert_eq!(s.state.catalog.runs().expect("runs").len(), runs);

    // Schedules: bad cron refused and not stored; create, read, replace, delete.
    let sched = |cron: &str| serde_json::json!({"name": "weekly", "cron": cron, "action": {"kind": "collect"}});
    for bad in ["0 3 * *", "61 3 * * *", "every day"] {
        let (st, t) = call("post", &api("/schedules"), Some(&a), Some(&sched(bad)));
        assert_eq!(st, 400, "{bad}: {t}");
        assert!(t.contains("cron"), "{t}");
    }
    assert!(s.state.catalog.schedules().expect("schedules").is_empty());
    let (st, t) = call(
        "post",
        &api("/schedules"),
        Some(&a),
        Some(&sched("0 3 * * 0")),
    );
    assert_eq!(st, 201, "{t}");
    let sid = json(&t)["id"].as_str().expect("id").to_string();
    let (st, t) = call(
        "put",
        &api(&format!("/schedules/{sid}")),
        Some(&a),
        Some(&sched("30 4 * * *")),
    );
    assert_eq!(st, 200, "{t}");
    assert_eq!(get(&format!("/schedules/{sid}"))["cron"], "30 4 * * *");
    let (st, _) = call("delete", &api(&format!("/schedules/{sid}")), Some(&a), None);
    assert_eq!(st, 204);
    let (st, _) = call("get", &api(&format!("/schedules/{sid}")), Some(&v), None);
    assert_eq!(st, 404);

    // Tokens: made by an admin, stored hashed, revoked at once.
    let (st, t) = call(
        "post",
        &api("/tokens"),
        Some(&a),
        Some(&serde_json::json!({"name": "ci", "role": "viewer"})),
    );
    assert_eq!(st, 201, "{t}");
    let made = json(&t);
    let secret = made["secret"].as_str().expect("secret").to_string();
    let tid = made["token"]["id"].as_str().expect("id").to_string();
    let stored = serde_json::to_string(&s.state.catalog.tokens().expect("tokens")).expect("json");
    assert!(!stored.contains(&secret));
    assert_eq!(call("get", &api("/images"), Some(&secret), None).0, 200);
    assert_eq!(
        call("delete", &api(&format!("/tokens/{tid}")), Some(&a), None).0,
        204
    );
    assert_eq!(call("get", &api("/images"), Some(&secret), None).0, 401);
    let (st, _) = call(
        "post",
        &api("/tokens"),
        Some(&a),
        Some(&serde_json::json!({"name": "x", "role": "root"})),
    );
    assert_eq!(st, 400);
}

#[test]
fn console_login_cookies_csrf_and_escaping() {
    let (dir, catalog, _) = catalog_with(&["debian-12-min"]);
    let s = start(dir, catalog, 0);
    let ag = crate::agent();
    let mut r = ag.get(&format!("{}/", s.base)).call().expect("get");
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/login?next=/");
    let _ = r.body_mut().read_to_string();
    let login = |token: &str| {
        ag.post(&format!("{}/login", s.base))
            .send_form([("token", token), ("next", "/schedules")])
            .expect("login")
    };
    let bad = login("cp_nope_nope");
    assert_eq!(bad.headers()["location"], "/login?error=1");
    assert!(bad.headers().get("set-cookie").is_none());
    let ok = login(s.token(Role::Admin));
    assert_eq!(ok.headers()["location"], "/schedules");
    let set = ok.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    let cookie = set.split(';').next().expect("pair").to_string();
    let page = |path: &str| {
        let mut r = ag
            .get(&format!("{}{path}", s.base))
            .header("cookie", &cookie)
            .call()
            .expect("page");
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    let (st, html) = page("/schedules");
    assert_eq!(st, 200);
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("csrf field")
        .to_string();
    let form = |csrf: &str| {
        let mut r = ag
            .post(&format!("{}/schedules", s.base))
            .header("cookie", &cookie)
            .send_form([
                ("csrf", csrf),
                ("name", "<script>alert(1)</script>"),
                ("cron", "0 3 * * *"),
                ("images", ""),
                ("kind", "collect"),
                ("policy", "all_fixable"),
                ("repo", ""),
            ])
            .expect("post");
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    let (st, t) = form("forged");
    assert_eq!(st, 403, "{t}");
    assert!(t.contains("CSRF"));
    assert!(s.state.catalog.schedules().expect("schedules").is_empty());
    let (st, _) = form(&csrf);
    assert_eq!(st, 303);
    let (_, html) = page("/schedules");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<script>alert(1)"));
    // A viewer's session sees the fleet but may not post an operator's form.
    let vcookie = crate::session_cookie(&login(s.token(Role::Viewer)));
    let mut r = ag
        .get(&format!("{}/", s.base))
        .header("cookie", &vcookie)
        .call()
        .expect("dash");
    assert_eq!(r.status().as_u16(), 200);
    let dash = r.body_mut().read_to_string().expect("body");
    assert!(dash.contains("Findings by severity") && dash.contains("<svg"));
    assert!(!dash.contains("New schedule"));
    // The image page's patch form and its CSRF value are the caller's own: the admin's
    // page has them, a viewer's page of the same image has neither.
    let (st, mine) = page("/images/1");
    assert_eq!(st, 200);
    assert!(
        mine.contains("id=\"patch\"") && mine.contains(&csrf),
        "the admin's form"
    );
    let mut r = ag
        .get(&format!("{}/images/1", s.base))
        .header("cookie", &vcookie)
        .call()
        .expect("image page");
    let theirs = r.body_mut().read_to_string().expect("body");
    assert!(theirs.contains("id=\"packages\""), "the same page");
    assert!(
        !theirs.contains("id=\"patch\"") && !theirs.contains(&csrf),
        "no form for a viewer"
    );
    // A console page that fails is a page for a person, with what went wrong and a way
    // back; the same failure through the API stays JSON.
    for (path, status, says) in [
        ("/images/999999", 404, "no image 999999"),
        ("/no/such/page", 404, "no such page"),
    ] {
        let mut r = ag
            .get(&format!("{}{path}", s.base))
            .header("cookie", &vcookie)
            .call()
            .expect("page");
        assert_eq!(r.status().as_u16(), status, "{path}");
        let ty = r.headers()["content-type"]
            .to_str()
            .expect("type")
            .to_string();
        assert!(ty.starts_with("text/html"), "{path}: {ty}");
        let html = r.body_mut().read_to_string().expect("body");
        assert!(
            html.contains(says) && html.contains(r#"href="/""#),
            "{path}: {html}"
        );
    }
    let (st, text) = call(
        "get",
        &format!("{}/api/v1/images/999999", s.base),
        Some(s.token(Role::Viewer)),
        None,
    );
    assert_eq!(st, 404);
    assert!(json(&text)["error"]
        .as_str()
        .is_some_and(|e| e.contains("no image 999999")));
}

#[test]
fn on_a_shared_catalog_runs_wait_for_workers_and_the_workers_are_listed() {
    use coldpatch_catalog::queue::WorkerSpec;
    use coldpatch_testkit::pg::{Kind, TestCatalog};
    let Some(tc) = TestCatalog::new(Kind::Postgres) else {
        return;
    };
    let (catalog, keys) = coldpatch_testkit::catalog_on(&tc, &["debian-12-min"]);
    // A worker on another host, whose root covers nothing here.
    catalog
        .register_worker(&WorkerSpec {
            name: "far".into(),
            host: "elsewhere".into(),
            pid: 1,
            roots: vec!["/nowhere/".into()],
            slots: 2,
            version: "test".into(),
            lease_ms: 60_000,
        })
        .expect("register");
    let roots = coldpatch_jobs::Roots::new(&[tc.scratch().to_path_buf()], &[]).expect("roots");
    let s = crate::start_with(
        tempfile::tempdir().expect("tempdir"),
        catalog,
        0,
        roots,
        None,
    );
    assert!(
        s.state.local.is_none(),
        "a shared catalog's jobs go to the database"
    );
    let op = s.token(Role::Operator).to_string();
    let viewer = s.token(Role::Viewer).to_string();
    let api = |p: &str| format!("{}/api/v1{p}", s.base);
    let (st, body) = call(
        "post",
        &api("/scans"),
        Some(&op),
        Some(&serde_json::json!({ "images": keys })),
    );
    assert_eq!(st, 202, "{body}");
    let run = json(&body);
    assert_eq!(run["shared"], true, "{run}");
    let id = run["id"].as_str().expect("id").to_string();
    let (st, body) = call("get", &api(&format!("/runs/{id}")), Some(&viewer), None);
    assert_eq!(st, 200, "{body}");
    let r = json(&body);
    assert_eq!(r["run"]["state"], "queued");
    assert_eq!(r["jobs"][0]["state"], "queued");
    assert_eq!(r["jobs"][0]["waiting_for_root"], true, "{r}");
    let (st, body) = call("get", &api("/workers"), Some(&viewer), None);
    assert_eq!(st, 200, "{body}");
    let w = &json(&body)["items"][0];
    assert_eq!(w["name"], "far");
    assert_eq!(w["host"], "elsewhere");
    assert_eq!(w["status"], "alive");
    assert_eq!(w["roots"][0], "/nowhere/");
    // Cancel takes it off the database's queue.
    let (st, body) = call("post", &api(&format!("/runs/{id}/cancel")), Some(&op), None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(json(&body)["how"], "dequeued");
    let (_, body) = call("get", &api(&format!("/runs/{id}")), Some(&viewer), None);
    let r = json(&body);
    assert_eq!(r["run"]["state"], "cancelled", "{r}");
    assert_eq!(r["jobs"][0]["outcome"], "cancelled", "{r}");
}

/// The report as a security team downloads it: CSV with every open finding of the
/// picked images, counted as the fleet view counts them; a selector that picks nothing
/// gives an empty report, a bad one a 400.
#[test]
fn the_exposure_report_downloads_as_csv_and_html() {
    let (dir, catalog, keys) = crate::catalog_with(&["debian-11-old", "debian-12-min"]);
    let s = crate::start(dir, catalog, 0);
    let op = s.token(Role::Operator).to_string();
    let id = s.state.catalog.image(&keys[0]).expect("image").id;
    let (st, body) = crate::call(
        "put",
        &format!("{}/api/v1/images/{id}/labels", s.base),
        Some(&op),
        Some(&serde_json::json!({"set": {"tier": "gold"}, "name": "old-gold"})),
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = crate::call(
        "put",
        &format!("{}/api/v1/images/{id}/labels", s.base),
        Some(&op),
        Some(&serde_json::json!({"set": {"bad key": "x"}})),
    );
    assert_eq!(st, 400, "{body}");
    let view = s.state.fleet.view(&s.state.catalog).expect("view");
    let old = view.image(id).expect("summary");
    assert_eq!(old.name, "old-gold");
    let r = coldpatch_web::report::build(
        &s.state.catalog,
        &view,
        Some(&"tier=gold".parse().expect("selector")),
    )
    .expect("report");
    let csv = coldpatch_web::report::csv(&r);
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("section,image,path,labels"));
    let open = rows.iter().filter(|l| l.starts_with("open,")).count();
    assert_eq!(open, old.findings.len());
    assert!(open > 0);
    assert!(rows
        .iter()
        .filter(|l| l.starts_with("image,"))
        .all(|l| l.contains("old-gold")));
    let with_fix = rows
        .iter()
        .filter(|l| l.starts_with("open,") && !l.contains(",no fix,"))
        .count();
    assert_eq!(with_fix, old.fixable);
    let html = coldpatch_web::report::html(&r);
    assert!(html.contains("id=\"report-open\"") && html.contains("old-gold"));
    assert!(!html.contains("debian-12-min"), "only the picked image");
}
