//! Version ordering on the vectors of dpkg, rpm, apk-tools and their ports (read from
//! ../shared/testdata/peers/vercmp), and differentially against dpkg --compare-versions.

use std::cmp::Ordering;
use std::path::PathBuf;

use coldpatch_vuln::version::{
    apk_compare, apk_valid, dpkg_compare, dpkg_valid, rpm_evr_compare, rpmvercmp,
};

fn peers() -> Option<PathBuf> {
    Some(coldpatch_testkit::peers()?.join("vercmp"))
}

fn load(name: &str) -> Option<serde_json::Value> {
    let p = peers()?.join(name);
    Some(serde_json::from_str(&std::fs::read_to_string(&p).expect("read vectors")).expect("json"))
}

fn ord(n: i64) -> Ordering {
    n.cmp(&0)
}

fn s(v: &serde_json::Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

#[test]
fn dpkg_vectors() {
    let Some(d) = load("dpkg-version.json") else {
        return;
    };
    let mut n = 0;
    for c in d["cases"].as_array().expect("cases") {
        assert_eq!(
            dpkg_compare(&s(c, "a"), &s(c, "b")),
            ord(c["expect"].as_i64().expect("expect")),
            "{c}"
        );
        n += 1;
    }
    let Some(g) = load("go-deb-version.json") else {
        return;
    };
    for c in g["compare"].as_array().expect("compare") {
        // The real dpkg's answer where go-deb-version's own differs.
        let truth = c
            .get("dpkg_1_21_22")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(c["expect"].as_bool().unwrap_or(false));
        let got = dpkg_compare(&s(c, "a"), &s(c, "b"));
        let holds = match s(c, "relation").as_str() {
            "lt" => got == Ordering::Less,
            "gt" => got == Ordering::Greater,
            "eq" => got == Ordering::Equal,
            r => panic!("relation {r}"),
        };
        assert_eq!(holds, truth, "{c}");
        n += 1;
    }
    assert!(n > 40);
}

#[test]
fn rpm_vectors() {
    let Some(d) = load("rpmvercmp.json") else {
        return;
    };
    for c in d["cases"].as_array().expect("cases") {
        assert_eq!(
            rpmvercmp(&s(c, "a"), &s(c, "b")),
            ord(c["expect"].as_i64().expect("expect")),
            "{c}"
        );
    }
    let Some(g) = load("go-rpm-version.json") else {
        return;
    };
    let mut n = 0;
    for c in g["rpmvercmp_cases"].as_array().expect("cases") {
        assert_eq!(
            rpmvercmp(&s(c, "a"), &s(c, "b")),
            ord(c["expect"].as_i64().expect("expect")),
            "{c}"
        );
        n += 1;
    }
    for c in g["evr_cases"].as_array().expect("cases") {
        assert_eq!(
            rpm_evr_compare(&s(c, "a"), &s(c, "b")),
            ord(c["expect"].as_i64().expect("expect")),
            "{c}"
        );
        n += 1;
    }
    let Some(cc) = load("claircore-rpmver.json") else {
        return;
    };
    for c in cc["rpmvercmp"].as_array().expect("cases") {
        assert_eq!(
            rpmvercmp(&s(c, "a"), &s(c, "b")),
            ord(c["expect"].as_i64().expect("expect")),
            "{c}"
        );
        n += 1;
    }
    assert!(n > 4500, "{n}");
}

#[test]
fn apk_vectors() {
    let Some(d) = load("apk-version.json") else {
        return;
    };
    let mut n = 0;
    for c in d["cases"].as_array().expect("cases") {
        if s(c, "kind") != "compare" {
            continue;
        }
        let op = s(c, "op");
        // '~' is apk's fuzzy (prefix) constraint, not an ordering; it belongs to matching.
        if op.contains('~') {
            continue;
        }
        let got = apk_compare(&s(c, "a"), &s(c, "b"));
        let holds = match op.as_str() {
            "<" => got == Ordering::Less,
            ">" => got == Ordering::Greater,
            "=" => got == Ordering::Equal,
            "<=" => got != Ordering::Greater,
            ">=" => got != Ordering::Less,
            o => panic!("op {o}"),
        };
        assert_eq!(holds, c["expect"].as_bool().expect("expect"), "{c}");
        n += 1;
    }
    assert!(n > 600, "{n}");
}

/// Pairs made from the real images' own versions, ordered by the real dpkg.
#[test]
fn dpkg_agrees_with_dpkg_compare_versions() {
    if std::process::Command::new("dpkg")
        .arg("--version")
        .output()
        .is_err()
    {
        coldpatch_testkit::skip("no dpkg on this machine");
        return;
    }
    let versions = [
        "1.0",
        "1.0-1",
        "1.0-1~bpo1",
        "1:0.9",
        "1.0~rc1",
        "1.0+dfsg-2",
        "2.36-9+deb12u7",
        "2.36-9+deb12u10",
        "3.0.11-1~deb12u2",
        "3.0.15-1~deb12u1",
        "1.2.3a",
        "1.2.3-0ubuntu1",
        "0",
        "0:0",
        "10",
        "9.9.9",
        "1.0.0~~",
        "1.0.0~",
        "2:1",
        "1.0-1.1",
        "1.0-1a",
    ];
    for a in versions {
        for b in versions {
            let mut expected = Ordering::Equal;
            for (op, o) in [("lt", Ordering::Less), ("gt", Ordering::Greater)] {
                let st = std::process::Command::new("dpkg")
                    .args(["--compare-versions", a, op, b])
                    .status()
                    .expect("dpkg");
                if st.success() {
                    expected = o;
                }
            }
            assert_eq!(dpkg_compare(a, b), expected, "{a} vs {b}");
        }
    }
}

/// Validity as apk-tools (test/unit/version.data) and dpkg (Dpkg_Version.t, t-version.c)
/// decide it: feeds with versions the package manager rejects are refused at import.
#[test]
fn validity_vectors() {
    let Some(apk) = load("apk-version.json") else {
        return;
    };
    let mut n = 0;
    for c in apk["cases"].as_array().expect("cases") {
        if s(c, "kind") == "validate" {
            let v = s(c, "version");
            assert_eq!(
                apk_valid(&v),
                c["expect_valid"].as_bool().expect("bool"),
                "{v}"
            );
            n += 1;
        }
    }
    assert_eq!(n, 31);
    let Some(dpkg) = load("dpkg-version.json") else {
        return;
    };
    for v in dpkg["validity_tests"]["invalid"]
        .as_array()
        .expect("invalid")
    {
        let v = v.as_str().expect("s");
        assert!(!dpkg_valid(v), "{v:?} should be invalid");
    }
    for v in dpkg["parse_tests"]["valid"].as_array().expect("valid") {
        let v = v[0].as_str().expect("s");
        assert!(dpkg_valid(v), "{v:?} should be valid");
    }
    for c in dpkg["cases"].as_array().expect("cases") {
        for k in ["a", "b"] {
            assert!(dpkg_valid(&s(c, k)), "{}", s(c, k));
        }
    }
}

/// Deterministic generated versions from the characters that matter to both orderings.
fn generated(n: usize, seed: u64) -> Vec<String> {
    const PARTS: [&str; 14] = [
        "0", "1", "2", "10", "01", ".", ".", "a", "b", "~", "^", "+", "rc", "_",
    ];
    let mut x = seed;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    (0..n)
        .map(|_| {
            let len = 1 + next() % 5;
            let mut v = String::from("1");
            for _ in 0..len {
                v.push_str(PARTS[next() % PARTS.len()]);
            }
            v
        })
        .collect()
}

/// rpmvercmp against the real rpm (its Lua rpm.vercmp) on generated pairs.
#[test]
fn rpmvercmp_agrees_with_rpm_on_generated_pairs() {
    let versions = generated(60, 7);
    let mut lua = String::new();
    for a in &versions {
        for b in &versions {
            lua.push_str(&format!("io.write(rpm.vercmp('{a}', '{b}'), '\\n')\n"));
        }
    }
    let dir = tempfile::tempdir().expect("tmp");
    let script = dir.path().join("pairs.lua");
    std::fs::write(&script, lua).expect("write");
    let out = match std::process::Command::new("rpm")
        .arg("--eval")
        .arg(format!("%{{lua: dofile('{}')}}", script.display()))
        .output()
    {
        Ok(o) if o.status.success() => o,
        _ => {
            coldpatch_testkit::skip("no working rpm on this machine");
            return;
        }
    };
    let results: Vec<i64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().parse().expect("number"))
        .collect();
    assert_eq!(results.len(), versions.len() * versions.len());
    let mut i = 0;
    for a in &versions {
        for b in &versions {
            assert_eq!(rpmvercmp(a, b), ord(results[i]), "{a} vs {b}");
            i += 1;
        }
    }
}

/// dpkg_compare against dpkg --compare-versions on generated pairs (one process per
/// pair, so fewer pairs than for rpm).
#[test]
fn dpkg_agrees_with_dpkg_on_generated_pairs() {
    if std::process::Command::new("dpkg")
        .arg("--version")
        .output()
        .is_err()
    {
        coldpatch_testkit::skip("no dpkg on this machine");
        return;
    }
    let versions: Vec<String> = generated(24, 11)
        .into_iter()
        .map(|v| v.replace(['^', '_'], "+"))
        .collect();
    for a in &versions {
        for b in &versions {
            let lt = std::process::Command::new("dpkg")
                .args(["--compare-versions", a, "lt", b])
                .status()
                .expect("dpkg")
                .success();
            let gt = std::process::Command::new("dpkg")
                .args(["--compare-versions", a, "gt", b])
                .status()
                .expect("dpkg")
                .success();
            let want = if lt {
                Ordering::Less
            } else if gt {
                Ordering::Greater
            } else {
                Ordering::Equal
            };
            assert_eq!(dpkg_compare(a, b), want, "{a} vs {b}");
        }
    }
}
