//! What an attacker tried on the server, each one reproduced: host paths named by
//! requests, an unbounded fleet query, an open redirect, API mutations with only the
//! console's cookie, a stream outliving its token, token hashes, unthrottled guessing,
//! one global session cap, cacheable pages, inline scripts, and https.

use std::time::{Duration, Instant};

use coldpatch_catalog::Role;

use crate::{agent, call, catalog_with, image_dir, json, session_cookie, start, start_with};

/// The error field of a JSON error answer.
fn error_of(body: &str) -> String {
    json(body)["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"))
        .to_string()
}

#[test]
fn host_paths_outside_the_roots_are_refused_with_one_message() {
    let (dir, catalog, keys) = catalog_with(&["debian-12-min"]);
    let root = dir
        .path()
        .canonicalize()
        .expect("canonical")
        .display()
        .to_string();
    std::os::unix::fs::symlink("/etc", dir.path().join("etc")).expect("symlink");
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("pw.qcow2")).expect("symlink");
    let s = start(dir, catalog, 0);
    let op = s.token(Role::Operator).to_string();
    let api = |p: &str| format!("{}/api/v1{p}", s.base);
    let runs = s.state.catalog.runs().expect("runs").len();
    for bad in [
        "/etc/shadow".to_string(),
        "/proc/self/environ".into(),
        "/no/such/file".into(),
        format!("{root}/etc/passwd"),
        format!("{root}/pw.qcow2"),
        format!("{root}/etc"),
        format!("{root}/../../etc/passwd"),
        "a/../../etc/passwd".into(),
        root.clone(),
    ] {
        let (st, t) = call(
            "post",
            &api("/scans"),
            Some(&op),
            Some(&serde_json::json!({ "images": [bad] })),
        );
        assert_eq!(st, 400, "{bad}: {t}");
        assert_eq!(
            error_of(&t),
            format!("{bad:?}: refused: not an image file under this server's image roots"),
            "{bad}"
        );
    }
    for bad in ["/usr", "/etc", "/", root.as_str()] {
        let (st, t) = call(
            "post",
            &api("/plans"),
            Some(&op),
            Some(&serde_json::json!({"image": "1", "repo": bad, "policy": "all_fixable"})),
        );
        assert_eq!(st, 400, "{bad}: {t}");
        assert_eq!(
            error_of(&t),
            format!(
                "{bad:?}: refused: not a repository directory under this server's repository roots"
            )
        );
    }
    assert_eq!(s.state.catalog.runs().expect("runs").len(), runs);
    // The image under the root is taken, by id or by path, once however often it is named.
    let (st, t) = call(
        "post",
        &api("/scans"),
        Some(&op),
        Some(&serde_json::json!({ "images": ["1", keys[0], keys[0]] })),
    );
    assert_eq!(st, 202, "{t}");
    assert_eq!(json(&t)["images"].as_array().map(Vec::len), Some(1), "{t}");

    // A server started without roots accepts no path at all and says how to get one.
    let (dir2, catalog2, keys2) = catalog_with(&["debian-12-min"]);
    let bare = start_with(dir2, catalog2, 0, coldpatch_jobs::Roots::default(), None);
    let (st, t) = call(
        "post",
        &format!("{}/api/v1/scans", bare.base),
        Some(bare.token(Role::Operator)),
        Some(&serde_json::json!({ "images": [keys2[0]] })),
    );
    assert_eq!(st, 400, "{t}");
    assert!(
        error_of(&t).contains("restart it with --image-root DIR"),
        "{t}"
    );
}

#[test]
fn requests_are_bounded_sessions_checked_and_guessing_throttled() {
    let (dir, catalog, keys) = catalog_with(&["debian-12-min"]);
    let s = start(dir, catalog, 0);
    let (v, a) = (
        s.token(Role::Viewer).to_string(),
        s.token(Role::Admin).to_string(),
    );
    let api = |p: &str| format!("{}/api/v1{p}", s.base);
    let ag = agent();

    // A fleet query names each image once and at most 100 of them.
    let many = vec!["1"; 5000].join(",");
    let t0 = Instant::now();
    let (st, t) = call(
        "get",
        &api(&format!("/shared?images={many}")),
        Some(&v),
        None,
    );
    assert_eq!(st, 200, "{t}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let once = json(&t);
    let (_, t1) = call("get", &api("/shared?images=1"), Some(&v), None);
    assert_eq!(once, json(&t1));
    let distinct: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    let (st, t) = call(
        "get",
        &api(&format!("/shared?images={}", distinct.join(","))),
        Some(&v),
        None,
    );
    assert_eq!(st, 400, "{t}");
    assert!(error_of(&t).contains("at most 100"), "{t}");

    // Login sends a browser only to a local path.
    let login = |token: &str, next: &str| {
        ag.post(&format!("{}/login", s.base))
            .send_form([("token", token), ("next", next)])
            .expect("login")
    };
    for (next, to) in [
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        ("/runs?state=failed", "/runs?state=failed"),
    ] {
        let r = login(&v, next);
        assert_eq!(r.headers()["location"], to, "{next:?}");
    }

    // The console's cookie alone changes nothing through the API: it needs the CSRF value.
    let cookie = session_cookie(&login(&a, "/"));
    let mut page = ag
        .get(&format!("{}/runs", s.base))
        .header("cookie", &cookie)
        .call()
        .expect("page");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    let scripts = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .expect("script-src");
    assert!(!scripts.contains("unsafe-inline"), "{csp}");
    let html = page.body_mut().read_to_string().expect("body");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("csrf")
        .to_string();
    let scan = serde_json::json!({ "images": [keys[0]] });
    let with_cookie = |csrf: Option<&str>| {
        let mut r = ag.post(&api("/scans")).header("cookie", &cookie);
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        let mut resp = r.send_json(&scan).expect("post");
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    let runs = s.state.catalog.runs().expect("runs").len();
    let (st, t) = with_cookie(None);
    assert_eq!(st, 403, "{t}");
    assert!(t.contains("X-CSRF-Token"), "{t}");
    assert_eq!(with_cookie(Some("forged")).0, 403);
    let mut up = ag
        .post(&api("/feeds"))
        .header("cookie", &cookie)
        .content_type("text/plain")
        .send("{}")
        .expect("upload");
    assert_eq!(up.status().as_u16(), 403);
    let _ = up.body_mut().read_to_string();
    assert_eq!(s.state.catalog.runs().expect("runs").len(), runs);
    let (st, t) = with_cookie(Some(&csrf));
    assert_eq!(st, 202, "{t}");
    let queued = json(&t)["id"].as_str().expect("id").to_string();

    // Token listings hold no hash.
    let (st, t) = call("get", &api("/tokens"), Some(&a), None);
    assert_eq!(st, 200);
    let items = json(&t)["items"].as_array().expect("items").clone();
    assert!(!items.is_empty());
    assert!(items.iter().all(|i| i.get("hash").is_none()), "{t}");
    let stored = s.state.catalog.tokens().expect("tokens");
    assert!(stored.iter().all(|r| !t.contains(&r.hash)), "{t}");

    // A live stream ends within seconds of its token's revocation. The run stays queued
    // (no job workers), so only the revocation can end it.
    let (_, made) = call(
        "post",
        &api("/tokens"),
        Some(&a),
        Some(&serde_json::json!({"name": "watcher", "role": "viewer"})),
    );
    let made = json(&made);
    let secret = made["secret"].as_str().expect("secret").to_string();
    let tid = made["token"]["id"].as_str().expect("id").to_string();
    let url = api(&format!("/runs/{queued}/events"));
    let (tx, rx) = std::sync::mpsc::channel();
    let sec = secret.clone();
    std::thread::spawn(move || {
        let mut r = agent()
            .get(&url)
            .header("authorization", &format!("Bearer {sec}"))
            .call()
            .expect("stream");
        let body = r.body_mut().read_to_string().unwrap_or_default();
        let _ = tx.send(body);
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(rx.try_recv().is_err(), "the stream ended by itself");
    assert_eq!(
        call("delete", &api(&format!("/tokens/{tid}")), Some(&a), None).0,
        204
    );
    let revoked = Instant::now();
    let body = rx
        .recv_timeout(coldpatch_web::events::RECHECK + Duration::from_secs(5))
        .expect("the stream went on after its token was revoked");
    assert!(body.contains("\"queued\""), "{body}");
    assert!(revoked.elapsed() <= coldpatch_web::events::RECHECK + Duration::from_secs(2));

    // Sessions are capped per token: the 17th login of one token ends its oldest session
    // only; another token's session lives on.
    let first = session_cookie(&login(&v, "/"));
    let mut last = String::new();
    for _ in 0..coldpatch_web::auth::MAX_SESSIONS_PER_TOKEN {
        last = session_cookie(&login(&v, "/"));
    }
    let dash = |c: &str| {
        ag.get(&format!("{}/", s.base))
            .header("cookie", c)
            .call()
            .expect("dash")
            .status()
            .as_u16()
    };
    assert_eq!(dash(&first), 303, "the oldest session of the token ended");
    assert_eq!(dash(&last), 200);
    assert_eq!(dash(&cookie), 200, "the admin's session is untouched");

    // Guessing: after 10 failures from one address it is refused for a while, even with
    // a good token, and the good token is not even looked at.
    for _ in 0..coldpatch_web::throttle::MAX_FAILURES {
        let r = login("cp_bad_guess", "/");
        assert_eq!(r.headers()["location"], "/login?error=1");
    }
    let r = login(&v, "/");
    assert_eq!(r.status().as_u16(), 429);
    let (st, t) = call("get", &api("/images"), Some(&v), None);
    assert_eq!(st, 429, "{t}");
    assert!(error_of(&t).contains("try again in"), "{t}");
}

/// `--tls-cert/--tls-key`: the same app over https, with a certificate made here.
#[test]
fn the_console_serves_https_with_a_certificate_and_key() {
    let (dir, catalog, _) = catalog_with(&["debian-12-min"]);
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A key that is not the certificate's is refused when the server starts.
    let other = dir.path().join("other.pem");
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&other)
        .output()
        .expect("openssl");
    assert!(out.status.success());
    let e = coldpatch_web::tls::config(&cert, &other).expect_err("a foreign key");
    assert!(e.to_string().contains("does not fit"), "{e}");
    assert!(
        coldpatch_web::tls::config(&key, &key).is_err(),
        "a key is no certificate"
    );
    let tls = coldpatch_web::tls::config(&cert, &key).expect("tls");
    let roots = coldpatch_jobs::Roots::new(
        &[dir.path().to_path_buf()],
        &[image_dir("repo-bullseye-security")],
    )
    .expect("roots");
    let s = start_with(dir, catalog, 0, roots, Some(tls));
    let https = s.base.replace("http://", "https://");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .args(["--resolve"])
        .arg(format!(
            "localhost:{}:127.0.0.1",
            s.base.rsplit(':').next().expect("port")
        ))
        .arg(format!(
            "https://localhost:{}/api/v1/health",
            s.base.rsplit(':').next().expect("port")
        ))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&String::from_utf8_lossy(&out.stdout))["status"], "ok");
    // Plain http on the https port gets no answer from the app.
    let plain = agent().get(&format!("{}/api/v1/health", s.base)).call();
    assert!(
        plain.as_ref().map_or(true, |r| r.status().as_u16() != 200),
        "{https}: plain http answered"
    );
}
