//! The console in real headless Chromium (Debian's chromium and chromium-driver, driven
//! over WebDriver by fantoccini): log in, go from the dashboard to an image, search a
//! package, open a finding, start a patch run on a real image and watch it finish over
//! server-sent events. Screenshots are kept in target/screenshots/.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coldpatch_catalog::Role;
use fantoccini::{ClientBuilder, Locator};

use crate::{catalog_with, image_dir, start};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn shots() -> PathBuf {
    let d = crate::repo_root().join("target/screenshots");
    std::fs::create_dir_all(&d).expect("screenshots dir");
    d
}

/// A headless Chromium under chromedriver, its profile and the driver process; all go
/// when it is dropped.
struct Browser {
    c: fantoccini::Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

async fn browser() -> Browser {
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: run images/install-deps.sh (Debian's chromium and chromium-driver)"
        );
    }
    let port = free_port();
    let driver = Driver(
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver"),
    );
    let profile = tempfile::tempdir().expect("profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--window-size=1280,1600",
                     format!("--user-data-dir={}", profile.path().display())]
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let c = loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver: {e}"),
        }
    };
    Browser {
        c,
        _driver: driver,
        _profile: profile,
    }
}

/// Logs in with a token from the login page the console sends a stranger to.
async fn log_in(c: &fantoccini::Client, base: &str, token: &str) {
    c.goto(base).await.expect("goto");
    assert!(c
        .current_url()
        .await
        .expect("url")
        .path()
        .starts_with("/login"));
    c.find(Locator::Css("input[name=token]"))
        .await
        .expect("token field")
        .send_keys(token)
        .await
        .expect("type");
    click(c, Locator::Css("button[type=submit]")).await;
}

async fn shot(c: &fantoccini::Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(shots().join(name), png).expect("write screenshot");
}

#[test]
fn console_from_login_to_a_finished_patch_run() {
    let (dir, catalog, keys) = catalog_with(&["debian-11-old"]);
    let repo = image_dir("repo-bullseye-security").join("repo");
    coldpatch_patcher::repository(&catalog, &repo).expect("index the repository");
    let s = start(dir, catalog, 1);
    let base = s.base.replace("127.0.0.1", "localhost");
    let token = s.token(Role::Operator).to_string();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let b = browser().await;
        let c = b.c.clone();
        let shot = |name: &'static str| {
            let c = c.clone();
            async move { shot(&c, name).await }
        };
        // Not logged in: the console sends the browser to the login page.
        log_in(&c, &base, &token).await;
        c.wait()
            .for_element(Locator::Css("table#images"))
            .await
            .expect("dashboard");
        let dash = c.source().await.expect("source");
        assert!(dash.contains("Findings by severity") && dash.contains("<svg"));
        shot("1-dashboard.png").await;

        // Dashboard -> the image.
        click(&c, Locator::Css("table#images td a")).await;
        c.wait()
            .for_element(Locator::Css("table#packages"))
            .await
            .expect("image page");
        assert!(c.source().await.expect("src").contains(keys[0].as_str()));
        // Search a package.
        c.find(Locator::Css("form#pkgsearch input[name=pkg]"))
            .await
            .expect("pkg field")
            .send_keys("libc")
            .await
            .expect("type");
        click(&c, Locator::Css("form#pkgsearch button")).await;
        let searched = Instant::now() + Duration::from_secs(30);
        while !c
            .current_url()
            .await
            .expect("url")
            .query()
            .is_some_and(|q| q.contains("pkg=libc"))
        {
            assert!(Instant::now() < searched, "the package search did not load");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c.wait()
            .for_element(Locator::Css("table#packages"))
            .await
            .expect("results");
        let rows = c
            .find_all(Locator::Css("table#packages tr td:first-child"))
            .await
            .expect("rows");
        assert!(!rows.is_empty());
        for r in &rows {
            assert!(r.text().await.expect("text").contains("libc"));
        }
        shot("2-image-packages.png").await;

        // Open a finding: its advisory page lists this image.
        let link = c
            .find(Locator::Css("table#findings a"))
            .await
            .expect("finding");
        let adv = link.text().await.expect("id");
        link.click().await.expect("click");
        c.wait()
            .for_element(Locator::Css("table#affected"))
            .await
            .expect("advisory page");
        let page = c.source().await.expect("src");
        assert!(page.contains(&adv) && page.contains(keys[0].as_str()));
        shot("3-advisory.png").await;

        // Start a patch run from the image page and watch it finish live.
        c.back().await.expect("back");
        let repo_field = c
            .wait()
            .for_element(Locator::Css("form#patch input[name=repo]"))
            .await
            .expect("patch form");
        repo_field.clear().await.expect("clear");
        repo_field
            .send_keys(&repo.display().to_string())
            .await
            .expect("type");
        click(&c, Locator::Css("form#patch button")).await;
        c.wait()
            .for_element(Locator::Css("ol#events"))
            .await
            .expect("run page");
        let run_url = c.current_url().await.expect("url");
        let run_id = run_url.path().trim_start_matches("/runs/").to_string();
        shot("4-run-started.png").await;
        let deadline = Instant::now() + Duration::from_secs(1500);
        // The stages the page showed while it ran, as the live events moved them.
        let mut stages = Vec::new();
        loop {
            if let Ok(cell) = c.find(Locator::Css("#stages td.stage")).await {
                let st = cell.text().await.expect("stage");
                if stages.last() != Some(&st) {
                    stages.push(st);
                }
            }
            let state = c
                .find(Locator::Css("#state"))
                .await
                .expect("state")
                .text()
                .await
                .expect("text");
            if state == "succeeded" || state == "failed" {
                assert_eq!(state, "succeeded");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the run did not finish; state {state}"
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        // The log grew in place, from the event stream, up to the commit.
        let items = c
            .find_all(Locator::Css("ol#events li"))
            .await
            .expect("events");
        let mut log = Vec::new();
        for i in &items {
            log.push(i.text().await.expect("text"));
        }
        assert!(log.iter().any(|l| l.contains(" committed ")), "{log:#?}");
        assert!(
            log.last().is_some_and(|l| l.contains("finished")),
            "{log:#?}"
        );
        // The bar went to the end and the image's stage to committed, live.
        let bar = c
            .execute("return document.getElementById('bar').value", Vec::new())
            .await
            .expect("bar");
        assert_eq!(bar, serde_json::json!(1));
        assert_eq!(text(&c, "#done").await, "1");
        assert_eq!(
            stages.last().map(String::as_str),
            Some("committed"),
            "{stages:?}"
        );
        assert!(
            stages.iter().any(|s| s == "installing" || s == "verifying"),
            "the stage moved through the run: {stages:?}"
        );
        // The image's own log is behind a click.
        click(&c, Locator::Css("#stages details summary")).await;
        let own = c
            .find(Locator::Css("#stages ol.image-log"))
            .await
            .expect("image log")
            .text()
            .await
            .expect("text");
        assert!(own.contains("committed: version 1"), "{own}");
        shot("5-run-finished.png").await;
        // The report says what this run fixed, from the run's own before and after.
        c.goto(&format!("{base}/report")).await.expect("report");
        let fixed = c
            .find(Locator::Css("table#report-fixed"))
            .await
            .expect("fixed table")
            .text()
            .await
            .expect("text");
        for cve in ["CVE-2024-12133", "CVE-2025-69418", "CVE-2022-1304"] {
            assert!(
                fixed.contains(cve) && fixed.contains(&run_id),
                "{cve}: {fixed}"
            );
        }
        shot("6-report.png").await;
        c.close().await.expect("close");
        assert_eq!(
            s.state.catalog.run(&run_id).expect("run").state,
            coldpatch_catalog::RunState::Succeeded
        );
        assert_eq!(
            s.state
                .catalog
                .image(&keys[0])
                .expect("image")
                .current_version,
            1
        );
    });
}

async fn click(c: &fantoccini::Client, at: Locator<'_>) {
    c.find(at)
        .await
        .unwrap_or_else(|e| panic!("{at:?}: {e}"))
        .click()
        .await
        .expect("click");
}

/// The text of the first element `css` finds.
async fn text(c: &fantoccini::Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// The texts of the cells of one column of a table, top to bottom.
async fn column(c: &fantoccini::Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.expect("cells") {
        out.push(e.text().await.expect("text"));
    }
    out
}

#[test]
fn fleet_console_labels_filters_sorts_pages_and_errors_for_people() {
    let (dir, catalog, keys) =
        catalog_with(&["debian-11-old", "debian-12-min", "debian-12-server"]);
    let s = start(dir, catalog, 0);
    let base = s.base.replace("127.0.0.1", "localhost");
    let op = s.token(Role::Operator).to_string();
    // Labels through the API, as an operator's script would set them.
    let owners = [("web", "prod"), ("db", "prod"), ("web", "dev")];
    for (k, (owner, env)) in keys.iter().zip(owners) {
        let id = s.state.catalog.image(k).expect("image").id;
        let (st, body) = crate::call(
            "put",
            &format!("{}/api/v1/images/{id}/labels", s.base),
            Some(&op),
            Some(&serde_json::json!({"set": {"owner": owner, "env": env}})),
        );
        assert_eq!(st, 200, "{body}");
        assert_eq!(crate::json(&body)["labels"]["owner"], owner);
    }
    let (st, _) = crate::call(
        "put",
        &format!("{}/api/v1/images/1/labels", s.base),
        Some(s.token(Role::Viewer)),
        Some(&serde_json::json!({"set": {"owner": "x"}})),
    );
    assert_eq!(st, 403, "a viewer may not label");
    // What the server counts, to check the page against.
    let view = s.state.fleet.view(&s.state.catalog).expect("view");
    let mut by_packages: Vec<(usize, String)> = view
        .images
        .iter()
        .map(|i| (i.packages, i.name.clone()))
        .collect();
    by_packages.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let names: Vec<String> = {
        let mut v: Vec<String> = view.images.iter().map(|i| i.name.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(
        names,
        [
            "debian-11-old.qcow2",
            "debian-12-min.qcow2",
            "debian-12-server.qcow2"
        ]
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let b = browser().await;
        let c = b.c.clone();
        log_in(&c, &base, &op).await;
        c.wait()
            .for_element(Locator::Css("table#images"))
            .await
            .expect("dashboard");
        // Grouped by owner (the key most images carry; env ties and comes first).
        c.goto(&format!("{base}/?group=owner")).await.expect("goto");
        let groups = column(&c, "table#groups td:first-child").await;
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert!(groups.contains(&"web".to_string()) && groups.contains(&"db".to_string()));
        let imgs = column(&c, "table#groups td:nth-child(2)").await;
        let web_row = groups.iter().position(|g| g == "web").expect("web");
        assert_eq!(imgs[web_row], "2");
        let src = c.source().await.expect("source");
        assert!(src.contains("id=\"trend\"") && src.contains("role=\"img\""));
        assert!(src.contains("Top advisories by images affected") && src.contains("Oldest scans"));
        shot(&c, "fleet-1-grouped.png").await;

        // Filter the image list by a label: the form, as a person types it.
        let f = c
            .find(Locator::Css("form#filters input[name=label]"))
            .await
            .expect("label field");
        f.send_keys("owner=web").await.expect("type");
        click(&c, Locator::Css("form#filters button")).await;
        wait_query(&c, "label=owner").await;
        let shown = column(&c, "table#images td:first-child").await;
        assert_eq!(
            shown,
            ["debian-11-old.qcow2", "debian-12-server.qcow2"],
            "filtered"
        );
        assert_eq!(text(&c, "#page-info").await, "page 1 of 1 · 2 image(s)");
        shot(&c, "fleet-2-filtered.png").await;

        // Sort the whole list by packages (most first), then the other way round.
        c.goto(&format!("{base}/")).await.expect("goto");
        click(&c, Locator::LinkText("Packages")).await;
        wait_query(&c, "sort=packages").await;
        let shown = column(&c, "table#images td:first-child").await;
        let want: Vec<String> = by_packages.iter().map(|p| p.1.clone()).collect();
        assert_eq!(shown, want, "most packages first");
        click(&c, Locator::Css("th a.sort[href*='sort=packages']")).await;
        wait_query(&c, "order=asc").await;
        // Ties stay in name order either way.
        let mut asc = by_packages.clone();
        asc.sort();
        let asc: Vec<String> = asc.into_iter().map(|p| p.1).collect();
        assert_eq!(
            column(&c, "table#images td:first-child").await,
            asc,
            "fewest first"
        );
        shot(&c, "fleet-3-sorted.png").await;

        // Page through it one image at a time.
        c.goto(&format!("{base}/?limit=1")).await.expect("goto");
        assert_eq!(
            column(&c, "table#images td:first-child").await,
            [names[0].clone()]
        );
        click(&c, Locator::Css("a[rel=next]")).await;
        wait_query(&c, "offset=1").await;
        assert_eq!(
            column(&c, "table#images td:first-child").await,
            [names[1].clone()]
        );
        assert_eq!(text(&c, "#page-info").await, "page 2 of 3 · 3 image(s)");
        shot(&c, "fleet-4-page-2.png").await;

        // Search a package across the fleet.
        c.goto(&format!("{base}/search?package=libc6"))
            .await
            .expect("goto");
        assert_eq!(column(&c, "table#hits td:first-child").await.len(), 3);

        // A missing image is an HTML page that says so, with a way back.
        c.goto(&format!("{base}/images/999999"))
            .await
            .expect("goto");
        let h1 = c
            .find(Locator::Css("h1"))
            .await
            .expect("h1")
            .text()
            .await
            .expect("t");
        assert_eq!(h1, "Not Found");
        let src = c.source().await.expect("source");
        assert!(
            src.contains("999999") && src.contains("Back to the fleet"),
            "{src}"
        );
        shot(&c, "fleet-5-missing-image.png").await;
        c.close().await.expect("close");
    });
}

/// Waits until the page's query string holds `part`.
async fn wait_query(c: &fantoccini::Client, part: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c
        .current_url()
        .await
        .expect("url")
        .query()
        .is_some_and(|q| q.contains(part))
    {
        assert!(
            Instant::now() < deadline,
            "the page with {part} did not load"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
