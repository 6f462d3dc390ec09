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

#[test]
fn console_from_login_to_a_finished_patch_run() {
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: run images/install-deps.sh (Debian's chromium and chromium-driver)"
        );
    }
    let (dir, catalog, keys) = catalog_with(&["debian-11-old"]);
    let repo = image_dir("repo-bullseye-security").join("repo");
    coldpatch_patcher::repository(&catalog, &repo).expect("index the repository");
    let s = start(dir, catalog, 1);
    let port = free_port();
    let _driver = Driver(
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver"),
    );
    let profile = tempfile::tempdir().expect("profile");
    let base = s.base.replace("127.0.0.1", "localhost");
    let token = s.token(Role::Operator).to_string();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
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
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver: {e}"),
            }
        };
        let shot = |name: &'static str| {
            let c = c.clone();
            async move {
                let png = c.screenshot().await.expect("screenshot");
                std::fs::write(shots().join(name), png).expect("write screenshot");
            }
        };
        // Not logged in: the console sends the browser to the login page.
        c.goto(&base).await.expect("goto");
        assert!(c
            .current_url()
            .await
            .expect("url")
            .path()
            .starts_with("/login"));
        c.find(Locator::Css("input[name=token]"))
            .await
            .expect("token field")
            .send_keys(&token)
            .await
            .expect("type");
        c.find(Locator::Css("button[type=submit]"))
            .await
            .expect("login")
            .click()
            .await
            .expect("click");
        c.wait()
            .for_element(Locator::Css("table#images"))
            .await
            .expect("dashboard");
        let dash = c.source().await.expect("source");
        assert!(dash.contains("Findings by severity") && dash.contains("<svg"));
        shot("1-dashboard.png").await;

        // Dashboard -> the image.
        c.find(Locator::Css("table#images a"))
            .await
            .expect("image link")
            .click()
            .await
            .expect("click");
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
        c.find(Locator::Css("form#pkgsearch button"))
            .await
            .expect("search")
            .click()
            .await
            .expect("click");
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
        c.find(Locator::Css("form#patch button"))
            .await
            .expect("start")
            .click()
            .await
            .expect("click");
        c.wait()
            .for_element(Locator::Css("ol#events"))
            .await
            .expect("run page");
        let run_url = c.current_url().await.expect("url");
        let run_id = run_url.path().trim_start_matches("/runs/").to_string();
        shot("4-run-started.png").await;
        let deadline = Instant::now() + Duration::from_secs(1500);
        loop {
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
        shot("5-run-finished.png").await;
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
