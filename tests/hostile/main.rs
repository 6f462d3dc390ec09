//! Hostile images (made by `images/hostile.sh` from the real test images) collected one
//! by one by the real CLI, each in its own process: every one must end in a clear error
//! naming it or in an inventory (with its unknowns), within 10 s and 200 MB, without a
//! panic; and what the catalog held before is still there after all of them.
//! A test binary of its own, so the children's peak memory (`RUSAGE_CHILDREN`) is theirs
//! alone.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};

const LIMIT: Duration = Duration::from_secs(10);
const MAX_RSS_KB: i64 = 200 * 1024;

fn coldpatch(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_coldpatch"));
    c.args(args)
        .env("COLDPATCH_DATA_DIR", data)
        .env_remove("COLDPATCH_CATALOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn packages_of(data: &Path, image: &str) -> usize {
    let out = coldpatch(data, &["show", image, "--json"])
        .output()
        .expect("show");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["inventory"]["packages"].as_array().map_or(0, Vec::len)
}

#[test]
fn hostile_images_end_in_clear_errors_or_inventories_within_bounds() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("hostile");
    let made = Command::new("bash")
        .arg(coldpatch_testkit::root().join("images/hostile.sh"))
        .arg(&dir)
        .output()
        .expect("hostile.sh");
    assert!(
        made.status.success(),
        "hostile.sh: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let cases = std::fs::read_to_string(dir.join("cases.tsv")).expect("cases");
    let cases: Vec<(&str, &str)> = cases.lines().filter_map(|l| l.split_once('\t')).collect();
    assert!(cases.len() >= 50, "{} cases", cases.len());

    // A good image first: it must come through all of them untouched.
    let data = work.path().join("data");
    let good = coldpatch_testkit::image_dir("debian-12-min").join("disk.qcow2");
    let good = good.to_str().expect("utf8");
    let out = coldpatch(&data, &["collect", "--no-guestfs", "--no-files", good])
        .output()
        .expect("collect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = packages_of(&data, good);
    // RUSAGE_CHILDREN keeps the largest peak of any child so far: with this first one
    // under the limit, a later child over it raises the figure, and is caught.
    let baseline = getrusage(UsageWho::RUSAGE_CHILDREN)
        .expect("rusage")
        .max_rss();
    assert!(
        baseline < MAX_RSS_KB,
        "collecting a good image took {baseline} KB"
    );
    assert!(before > 50, "{before} packages");

    let root = dir.to_str().expect("utf8");
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for (name, what) in &cases {
        let img = dir.join(name);
        let img_s = img.to_str().expect("utf8");
        let rss_before = getrusage(UsageWho::RUSAGE_CHILDREN)
            .expect("rusage")
            .max_rss();
        let started = Instant::now();
        let mut child = coldpatch(
            &data,
            &[
                "collect",
                "--no-guestfs",
                "--image-root",
                root,
                "--json",
                img_s,
            ],
        )
        .spawn()
        .expect("spawn");
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break Some(s);
            }
            if started.elapsed() > LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let secs = started.elapsed().as_secs_f64();
        let out = child.wait_with_output().expect("output");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let rss = getrusage(UsageWho::RUSAGE_CHILDREN)
            .expect("rusage")
            .max_rss();
        // A rise is this child's peak; otherwise its peak was at most the figure before.
        let peak = rss.max(rss_before);
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        let result = &json[0];
        let verdict = match status {
            None => Err(format!("still running after {LIMIT:?}")),
            Some(s) if s.code().is_none() => Err(format!("killed by a signal: {s}")),
            Some(_) if stderr.contains("panicked") => Err(format!("panicked: {stderr}")),
            Some(s) if !matches!(s.code(), Some(0 | 1)) => Err(format!("exit {s}: {stderr}")),
            Some(_) if peak > MAX_RSS_KB => Err(format!("peak memory {} MB", peak / 1024)),
            Some(_) => match result["ok"].as_bool() {
                Some(true) => Ok(format!(
                    "inventory: {} packages, {} unknowns",
                    result["scan"]["packages"], result["scan"]["unknowns"]
                )),
                Some(false) => {
                    let e = result["error"].as_str().unwrap_or_default().to_string();
                    if e.contains(img_s) || e.contains(root) {
                        Ok(format!("error: {e}"))
                    } else {
                        Err(format!("an error not naming the image: {e}"))
                    }
                }
                None => Err(format!(
                    "no result: {}",
                    String::from_utf8_lossy(&out.stdout)
                )),
            },
        };
        let line = format!(
            "{name:<42} {secs:>5.2} s  peak <= {:>3} MB  {}",
            peak / 1024,
            verdict.as_ref().unwrap_or_else(|e| e)
        );
        report.push(line.replace(root, "OUT"));
        if let Err(e) = verdict {
            failures.push(format!("{name} ({what}): {e}"));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A PRETTY_NAME with a CR and an ANSI escape, and a file name with a newline, forge
    // no line: the CLI shows them escaped.
    let forged = dir.join("os-release-forged.ext4");
    let forged = forged.to_str().expect("utf8");
    for (args, shown) in [
        (
            &["show", forged][..],
            "Debian\\rrun 0000000000000: finished: FORGED\\x1b[2J",
        ),
        (
            &["files", "--path", "/etc/evil*"][..],
            "/etc/evil\\nrun 0000000000000: finished: FORGED",
        ),
    ] {
        let out = coldpatch(&data, args).output().expect("cli");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(shown), "{args:?}: {text}");
        assert!(
            !text.contains('\r') && !text.contains('\x1b') && !text.contains("\nrun "),
            "{args:?}: {text:?}"
        );
    }
    assert_eq!(
        packages_of(&data, good),
        before,
        "the good image's record changed"
    );
}
