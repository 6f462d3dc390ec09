//! Fleet scan benchmark: 10,000 catalogued images against 100,000 advisories, with the
//! catalog in a sled store on disk. Run: `cargo bench -p coldpatch-catalog --bench scan`
//! (BENCH_IMAGES / BENCH_ADVISORIES change the sizes, BENCH_DIR the store's place).
//! `bench/catalog.sh` uses it to build the same fleet in any catalog: BENCH_CATALOG (a
//! directory or a PostgreSQL URL) is filled and kept, BENCH_FILES gives each image that
//! many files (half of them the same in every image, half its own), and the scan is left
//! to the CLI.
//!
//! The fleet is generated, deterministically: every image carries the 261 packages of the
//! real debian-12-server image (names, sources, versions from its dpkg oracle when
//! images/ has built it; generated names otherwise), half of them as Debian 11 images,
//! and about one package in five held back to an older revision, so no two images carry
//! the same set. Advisories: one in 100 names a source the fleet carries (several per
//! source, as the Debian tracker has for glibc or openssl), the rest name packages no
//! image has; each has a Debian 11 and a Debian 12 entry, mostly fixed long before the
//! installed version (as in a real tracker), some fixed after it, some not fixed yet,
//! some not affected. That gives a few hundred findings per image, the order real
//! scanners report for a Debian server image. Prints setup and scan times, images/s, findings/s and the
//! peak memory of the process.

use std::time::Instant;

use coldpatch_catalog::{Catalog, Fingerprint, ScanOptions};
use coldpatch_collector::{Inventory, OsInfo, Package, PackageKind};
use coldpatch_vuln::{
    Advisory, Affected, Distro, FeedData, Format, NameKind, Range, Severity, Status,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn template() -> Vec<(String, String, String, String)> {
    let oracle = std::fs::read_dir(dirs_cache().join("coldpatch/images"))
        .ok()
        .and_then(|rd| {
            rd.flatten().map(|e| e.path()).find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("debian-12-server-"))
                    && p.join("packages.tsv").exists()
            })
        })
        .and_then(|d| std::fs::read_to_string(d.join("packages.tsv")).ok());
    match oracle {
        Some(text) => text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() == 5).then(|| (f[0].into(), f[1].into(), f[3].into(), f[4].into()))
            })
            .collect(),
        None => {
            eprintln!("debian-12-server not built; using generated package names");
            (0..261)
                .map(|i| {
                    let v = format!("{}.{}-{}", 1 + i % 7, i % 13, 1 + i % 3);
                    (format!("pkg{i}"), v.clone(), format!("src{}", i / 2), v)
                })
                .collect()
        }
    }
}

fn dirs_cache() -> std::path::PathBuf {
    std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_default()
        .join(".cache")
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

fn main() {
    if let Some(dir) = std::env::var_os("BENCH_SCAN_ONLY") {
        measure(std::path::Path::new(&dir));
        return;
    }
    let n_images: usize = std::env::var("BENCH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let n_adv: usize = std::env::var("BENCH_ADVISORIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let base = std::env::var_os("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    let keep = std::env::var_os("BENCH_KEEP").is_some();
    let target = std::env::var("BENCH_CATALOG").ok();
    let n_files: usize = std::env::var("BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let tpl = template();
    let mut rng = Rng(42);

    let t = Instant::now();
    let catalog = match &target {
        Some(at) => Catalog::connect(
            &coldpatch_catalog::Location::parse(at).expect("BENCH_CATALOG"),
            None,
        )
        .expect("catalog"),
        None => Catalog::open(dir.path()).expect("catalog"),
    };
    for i in 0..n_images {
        let release = if i % 2 == 0 { "12" } else { "11" };
        let mut inv = Inventory::default();
        inv.image.path = format!("/fleet/image-{i:05}.qcow2");
        inv.image.format = "qcow2".into();
        inv.os = Some(OsInfo {
            id: "debian".into(),
            version_id: release.into(),
            ..OsInfo::default()
        });
        inv.packages = tpl
            .iter()
            .map(|(name, version, source, source_version)| {
                let held = (rng.below(5) == 0).then(|| rng.below(3));
                let bump = |v: &str| match held {
                    Some(k) => format!("{v}~old{k}"),
                    None => v.to_string(),
                };
                let (v, sv) = (bump(version), bump(source_version));
                Package {
                    arch: "amd64".into(),
                    source_name: source.clone(),
                    source_version: sv,
                    // As dpkg records them: a few relation groups per package.
                    depends: vec![
                        "libc6 (>= 2.34)".into(),
                        "libgcc-s1 (>= 3.0)".into(),
                        "zlib1g (>= 1:1.1.4)".into(),
                        "debconf (>= 0.5) | debconf-2.0".into(),
                    ],
                    db: "/var/lib/dpkg/status".into(),
                    ..Package::new(PackageKind::Deb, name, &v)
                }
            })
            .collect();
        inv.files = (0..n_files)
            .map(|f| {
                let shared = f % 2 == 0;
                let content = if shared {
                    f as u64
                } else {
                    ((i as u64) << 20) | f as u64
                };
                coldpatch_collector::FileRecord {
                    path: format!("/usr/lib/bench/{f}"),
                    kind: coldpatch_collector::FileType::File,
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    size: 4096,
                    mtime: 0,
                    ctime: None,
                    target: None,
                    sha256: Some(format!("{content:064x}")),
                }
            })
            .collect();
        catalog
            .record(
                &inv,
                Fingerprint(Vec::new()),
                ScanOptions {
                    files: n_files > 0,
                    hash: n_files > 0,
                },
            )
            .expect("record");
    }
    let t_images = t.elapsed();

    let t = Instant::now();
    let sources: Vec<(&String, &String)> = tpl.iter().map(|(_, _, s, v)| (s, v)).collect();
    let mut advisories = Vec::with_capacity(n_adv);
    for i in 0..n_adv {
        let (package, installed) = if rng.below(100) == 0 {
            let (s, v) = sources[rng.below(sources.len() as u64) as usize];
            (s.clone(), v.clone())
        } else {
            (format!("absent-{}", rng.below(30_000)), "1.0-1".to_string())
        };
        let entry = |rel: &str, rng: &mut Rng| {
            let status = match rng.below(20) {
                // Fixed after what the fleet carries: a finding with a fix.
                0 => Status::Affected {
                    ranges: vec![Range {
                        fixed: Some(format!("{installed}+deb{rel}u9")),
                        ..Range::default()
                    }],
                    versions: Vec::new(),
                },
                // Not fixed yet.
                1..=2 => Status::Affected {
                    ranges: vec![Range::default()],
                    versions: Vec::new(),
                },
                3 => Status::NotAffected,
                // Fixed long before: no finding.
                _ => Status::Affected {
                    ranges: vec![Range {
                        fixed: Some("0.1-1".into()),
                        ..Range::default()
                    }],
                    versions: Vec::new(),
                },
            };
            Affected {
                distro: Distro::new("debian", rel),
                package: package.clone(),
                name_kind: NameKind::Source,
                status,
                severity: Some(Severity::ALL[rng.below(6) as usize]),
                arches: Vec::new(),
                module: None,
            }
        };
        let affected = vec![entry("11", &mut rng), entry("12", &mut rng)];
        advisories.push(Advisory {
            id: format!("CVE-2026-{i:06}"),
            aliases: Vec::new(),
            summary: format!("generated advisory {i} for {package}"),
            severity: Severity::Unknown,
            modified: None,
            published: None,
            affected,
        });
    }
    let data = FeedData {
        format: Some(Format::DebianTracker),
        suggested_name: "bench".into(),
        advisories,
        ..FeedData::default()
    };
    catalog
        .import_feed("bench", "generated", 0, data)
        .expect("import");
    let t_feed = t.elapsed();
    drop(catalog);
    if let Some(at) = target {
        println!(
            "  built {}: {n_images} images ({n_files} files each) in {:.1} s, {n_adv} advisories in {:.1} s",
            coldpatch_catalog::location::redact(&at),
            t_images.as_secs_f64(),
            t_feed.as_secs_f64()
        );
        return;
    }

    // The measured part runs in a fresh process, so that its peak memory is its own.
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .env("BENCH_SCAN_ONLY", dir.path())
        .output()
        .expect("run the scan");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    println!(
        "  setup: {n_images} images recorded in {:.1} s, {n_adv} advisories imported in {:.1} s",
        t_images.as_secs_f64(),
        t_feed.as_secs_f64()
    );
    if keep {
        println!("  store kept at {}", dir.keep().display());
    }
}

/// Open the store as `coldpatch scan` does, load the feeds, match every image's current
/// inventory; findings are counted as they stream out.
fn measure(dir: &std::path::Path) {
    let t = Instant::now();
    let catalog = Catalog::open(dir).expect("catalog");
    let (mut images, mut findings) = (0usize, 0usize);
    let summary = catalog
        .scan_each(
            &coldpatch_catalog::Scope::all(),
            coldpatch_catalog::Versions::Current,
            |i| {
                images += 1;
                findings += i.findings.len();
                Ok(())
            },
        )
        .expect("scan");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "fleet scan benchmark (sled store on disk at {})",
        dir.display()
    );
    println!(
        "  scan: {images} images x {} advisories in {secs:.2} s (open + load + match; target < 5 s)",
        summary.advisories
    );
    println!(
        "  {:.0} images/s, {:.0} findings/s, {findings} findings ({:.0} per image)",
        images as f64 / secs,
        findings as f64 / secs,
        findings as f64 / images.max(1) as f64
    );
    println!(
        "  peak memory of the scan process (VmHWM): {} MiB (target < 1024)",
        peak_rss_mib()
    );
}
