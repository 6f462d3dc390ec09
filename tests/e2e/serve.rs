//! `coldpatch serve` holds the catalog: the CLI refuses, naming the server, instead of
//! touching the store; the server answers on the address it wrote down; after it stops,
//! the CLI works again.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{coldpatch, json, stderr};

pub(crate) fn get(addr: &str, path: &str, token: Option<&str>) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn the_cli_refuses_while_a_server_holds_the_catalog() {
    let data = tempfile::tempdir().expect("tempdir");
    let made = json(&coldpatch(
        data.path(),
        &[
            "token", "create", "--role", "viewer", "--name", "e2e", "--json",
        ],
    ));
    let secret = made["secret"].as_str().expect("secret").to_string();
    let listed = coldpatch(data.path(), &["token", "list", "--json"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&secret));
    let mut server = Command::new(env!("CARGO_BIN_EXE_coldpatch"))
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "0"])
        .env("COLDPATCH_DATA_DIR", data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let file = data.path().join("server.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !file.exists() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    let addr = info["listen"].as_str().expect("listen").to_string();
    let out = coldpatch(data.path(), &["images"]);
    assert_eq!(out.status.code(), Some(1));
    let says = stderr(&out);
    assert!(
        says.contains(&format!(
            "is held by `coldpatch serve` (pid {}, http://{addr}/)",
            server.id()
        )),
        "{says}"
    );
    let health = get(&addr, "/api/v1/health", None);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(get(&addr, "/api/v1/images", None).starts_with("HTTP/1.1 401"));
    let imgs = get(&addr, "/api/v1/images", Some(&secret));
    assert!(
        imgs.starts_with("HTTP/1.1 200") && imgs.contains("\"total\":0"),
        "{imgs}"
    );
    // SIGTERM: the server stops and gives the catalog back.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(server.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    server.wait().expect("wait");
    assert!(!file.exists());
    let out = coldpatch(data.path(), &["images", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
