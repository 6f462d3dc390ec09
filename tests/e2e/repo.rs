//! `coldpatch repo` on the real bullseye-security repository: indexed into the catalog,
//! listed, and queried by package.

use crate::util::image_dir;
use crate::{coldpatch, json, stderr};

#[test]
fn repo_index_list_and_packages() {
    let dir = image_dir("repo-bullseye-security");
    let data = tempfile::tempdir().expect("tempdir");
    let repo = dir.join("repo");
    let repo = repo.to_str().expect("utf8");
    let out = coldpatch(data.path(), &["repo", "index", repo, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stored = json(&out);
    let updates = std::fs::read_to_string(dir.join("updates.tsv")).expect("updates");
    assert_eq!(
        stored["index"]["packages"].as_array().map(Vec::len),
        Some(updates.lines().count())
    );
    let list = json(&coldpatch(data.path(), &["repo", "list", "--json"]));
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let ssl = json(&coldpatch(
        data.path(),
        &["repo", "packages", repo, "--name", "libssl1.1", "--json"],
    ));
    let want = updates
        .lines()
        .find_map(|l| l.strip_prefix("libssl1.1\t"))
        .and_then(|l| l.split('\t').nth(1))
        .expect("libssl1.1 update");
    assert_eq!(ssl[0]["version"], want);
    assert_eq!(ssl[0]["source_name"], "openssl");
    // A directory never indexed: a clear refusal.
    let out = coldpatch(data.path(), &["repo", "packages", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("coldpatch repo index"),
        "{}",
        stderr(&out)
    );
}
