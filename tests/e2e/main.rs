//! End to end: the `coldpatch` binary on real images and a real catalog: a directory, or
//! for the tests written with `on_both!`, once more a database on the test run's
//! PostgreSQL server.

use coldpatch_testkit as util;

use std::path::Path;
use std::process::{Command, Output};

use util::image_dir;
use util::pg::Kind;

mod alpine;
mod apply;
mod harvest;
mod patch;
mod replay;
mod repo;
mod sbom;
mod scan;
mod serve;
mod shared;
mod versions;
mod workers;

/// Points a `coldpatch` command at the catalog of a test's data directory: `data`
/// itself (sled), or, when `data` holds `catalog.url`, that PostgreSQL catalog with
/// `data/state` as its state directory.
fn catalog_env<'a>(cmd: &'a mut Command, data: &Path) -> &'a mut Command {
    match std::fs::read_to_string(data.join("catalog.url")) {
        Ok(url) => cmd
            .env_remove("COLDPATCH_DATA_DIR")
            .env("COLDPATCH_CATALOG", url.trim())
            .env("COLDPATCH_STATE_DIR", data.join("state")),
        Err(_) => cmd
            .env_remove("COLDPATCH_CATALOG")
            .env_remove("COLDPATCH_STATE_DIR")
            .env("COLDPATCH_DATA_DIR", data),
    }
}

/// A fresh data directory whose catalog is on `kind`; `None` after a skip.
fn data_dir(kind: Kind) -> Option<tempfile::TempDir> {
    let d = tempfile::tempdir().expect("tempdir");
    if kind == Kind::Postgres {
        let s = util::pg::server()?;
        std::fs::write(d.path().join("catalog.url"), s.url(&s.database())).expect("write");
    }
    Some(d)
}

/// A test run once on each backend: `on_both! { fn name(data: &Path) { … } }` makes
/// `name::sled` and `name::postgres`, each with its own fresh data directory.
macro_rules! on_both {
    (fn $name:ident($d:ident: &Path) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($d: &std::path::Path) $body
            #[test]
            fn sled() {
                let d = crate::data_dir(coldpatch_testkit::pg::Kind::Sled).expect("sled");
                body(d.path())
            }
            #[test]
            fn postgres() {
                if let Some(d) = crate::data_dir(coldpatch_testkit::pg::Kind::Postgres) {
                    body(d.path())
                }
            }
        }
    };
}
pub(crate) use on_both;

/// A path as a command argument.
/// A path as the host's filesystem has it: mode, owner, and the content's SHA-256, a
/// symlink's target or "dir"; `None` if it is not there.
fn lstat(p: &Path) -> Option<String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::symlink_metadata(p).ok()?;
    let what = if m.file_type().is_symlink() {
        format!("-> {}", std::fs::read_link(p).ok()?.display())
    } else if m.is_dir() {
        "dir".to_string()
    } else {
        coldpatch_disk::hash::sha256_file(p).ok()?
    };
    let mode = if m.file_type().is_symlink() {
        0
    } else {
        m.permissions().mode() & 0o7777
    };
    Some(format!("{mode:o} {}:{} {what}", m.uid(), m.gid()))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// The output of a command that must succeed (its output is shown when it did not).
fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    out
}

fn coldpatch(data: &Path, args: &[&str]) -> Output {
    catalog_env(
        Command::new(env!("CARGO_BIN_EXE_coldpatch")).args(args),
        data,
    )
    .output()
    .expect("run coldpatch")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

on_both! {
fn collect_query_and_recollect_through_the_cli(data: &Path) {
    let dir = image_dir("debian-12-min");
    let qcow = dir.join("disk.qcow2");
    let overlay = dir.join("overlay.qcow2");
    let out = coldpatch(
        data,
        &[
            "collect",
            qcow.to_str().expect("utf8"),
            overlay.to_str().expect("utf8"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("88 packages, 6679 files"),
        "{}",
        stdout(&out)
    );

    let imgs = json(&coldpatch(data, &["images", "--json"]));
    assert_eq!(imgs.as_array().map(Vec::len), Some(2));

    // A reader that goes away (`| head`) ends a command quietly, as JSON and as a table:
    // the file lists of two images are megabytes, far more than a pipe holds.
    for args in [&["files", "--json"][..], &["files"][..]] {
        use std::io::Read;
        let mut child = catalog_env(Command::new(env!("CARGO_BIN_EXE_coldpatch")).args(args), data)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut head = [0u8; 64];
        child
            .stdout
            .take()
            .expect("stdout")
            .read_exact(&mut head)
            .expect("the first bytes");
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("Broken pipe"),
            "{args:?}: {}",
            stderr(&out)
        );
    }

    let libc = json(&coldpatch(
        data,
        &["packages", "--name", "libc6", "--json"],
    ));
    let want = std::fs::read_to_string(dir.join("packages.tsv")).expect("oracle");
    let version = want
        .lines()
        .find_map(|l| l.strip_prefix("libc6\t"))
        .and_then(|l| l.split('\t').next())
        .expect("libc6 in oracle");
    assert_eq!(libc.as_array().map(Vec::len), Some(2));
    assert_eq!(libc[0]["package"]["version"], version);

    let newer = json(&coldpatch(
        data,
        &[
            "packages",
            "--name",
            "libc6",
            "--older-than",
            "2.36",
            "--json",
        ],
    ));
    assert_eq!(
        newer.as_array().map(Vec::len),
        Some(0),
        "bookworm's libc6 is not older than 2.36"
    );

    let conf = json(&coldpatch(
        data,
        &["files", "--path", "/etc/coldpatch-overlay.conf", "--json"],
    ));
    assert_eq!(
        conf.as_array().map(Vec::len),
        Some(1),
        "only the overlay has the file"
    );
    assert!(conf[0]["image"]
        .as_str()
        .is_some_and(|i| i.ends_with("overlay.qcow2")));

    // Unchanged images are not read again.
    let again = coldpatch(data, &["collect", qcow.to_str().expect("utf8")]);
    assert!(
        stdout(&again).contains("unchanged since scan 1"),
        "{}",
        stdout(&again)
    );

    let show = coldpatch(data, &["show", overlay.to_str().expect("utf8")]);
    assert!(show.status.success());
    let text = stdout(&show);
    assert!(
        text.contains("Debian GNU/Linux 12 (bookworm)")
            && text.contains("88 deb")
            && text.contains("root on partition 3"),
        "{text}"
    );
}
}

#[test]
fn a_bad_image_is_named_and_nothing_stored_is_lost() {
    let dir = image_dir("debian-12-min");
    let data = tempfile::tempdir().expect("tempdir");
    let good = dir.join("disk.qcow2");
    assert!(coldpatch(
        data.path(),
        &["collect", "--no-files", good.to_str().expect("utf8")]
    )
    .status
    .success());

    let junk = tempfile::tempdir().expect("tempdir");
    let garbage = junk.path().join("garbage.img");
    std::fs::write(&garbage, vec![0x5a; 3 << 20]).expect("write");
    let truncated = junk.path().join("truncated.qcow2");
    let bytes = std::fs::read(&good).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).expect("write");
    let vmdk = junk.path().join("disk.vmdk");
    assert!(Command::new("qemu-img")
        .args([
            "create",
            "-q",
            "-f",
            "vmdk",
            vmdk.to_str().expect("utf8"),
            "8M"
        ])
        .status()
        .expect("qemu-img")
        .success());

    let out = coldpatch(
        data.path(),
        &[
            "collect",
            garbage.to_str().expect("utf8"),
            truncated.to_str().expect("utf8"),
            vmdk.to_str().expect("utf8"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for (p, why) in [
        (&garbage, "no root filesystem"),
        (&truncated, "truncated.qcow2"),
        (&vmdk, "qemu-img convert"),
    ] {
        assert!(
            err.contains(p.to_str().expect("utf8")) && err.contains(why),
            "{err}"
        );
    }
    assert!(stdout(&out).contains("3 failed"), "{}", stdout(&out));

    let imgs = json(&coldpatch(data.path(), &["images", "--json"]));
    assert_eq!(
        imgs.as_array().map(Vec::len),
        Some(1),
        "only the good image is stored"
    );
    assert_eq!(imgs[0]["scan"]["packages"], 88);
}

#[test]
fn a_catalog_held_by_another_process_is_refused() {
    let data = tempfile::tempdir().expect("tempdir");
    let _held = coldpatch_catalog::Catalog::open(data.path()).expect("open");
    let out = coldpatch(data.path(), &["images"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("in use by another coldpatch process"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_lists_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_coldpatch"))
        .arg("--help")
        .output()
        .expect("run");
    let text = stdout(&out);
    for c in [
        "collect",
        "images",
        "show",
        "packages",
        "files",
        "diff",
        "export",
        "import-delta",
        "shared",
    ] {
        assert!(text.contains(c), "{text}");
    }
}
