//! What only a shared catalog has: opening refusals that write nothing, writers in
//! several connections racing for one image or feed, a connection killed in the middle
//! of recording a scan, and copying between backends. On the test run's real server.

use coldpatch_catalog::{
    Catalog, CatalogError, Fingerprint, Location, ScanOptions, Scope, Versions,
};
use coldpatch_collector::{FileRecord, FileType, Inventory, Package, PackageKind};
use coldpatch_testkit::pg::{self, Kind, TestCatalog};
use coldpatch_vuln::{Advisory, FeedData};

const FULL: ScanOptions = ScanOptions {
    files: true,
    hash: true,
};

fn fp() -> Fingerprint {
    Fingerprint(vec![("/x".into(), 1, 2, 3)])
}

fn inventory(path: &str, openssl: &str, files: usize) -> Inventory {
    let mut inv = Inventory::default();
    inv.image.path = path.into();
    inv.packages.push(Package {
        kind: PackageKind::Deb,
        name: "openssl".into(),
        version: openssl.into(),
        epoch: None,
        release: None,
        arch: "amd64".into(),
        source_name: "openssl".into(),
        source_version: openssl.into(),
        source_rpm: None,
        license: None,
        provides: Vec::new(),
        depends: Vec::new(),
        module: None,
        db: "/var/lib/dpkg/status".into(),
    });
    inv.files = (0..files)
        .map(|i| FileRecord {
            path: format!("/usr/share/f{i}"),
            kind: FileType::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 1,
            mtime: 0,
            ctime: None,
            target: None,
            sha256: Some(format!("{i:064x}")),
        })
        .collect();
    inv
}

fn open(url: &str) -> Result<Catalog, CatalogError> {
    Catalog::connect(&Location::parse(url).expect("url"), None)
}

fn tables(s: &pg::Server, db: &str) -> Vec<String> {
    s.query(
        db,
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY 1",
    )
}

#[test]
fn opening_refuses_clearly_and_writes_nothing() {
    let Some(s) = pg::server() else { return };
    // Another program's database: refused, and left exactly as it was.
    let db = s.database();
    s.sql(&db, "CREATE TABLE customers (id int)");
    match open(&s.url(&db)) {
        Err(e @ CatalogError::Foreign { .. }) => {
            assert!(e.to_string().contains("customers"), "{e}")
        }
        other => panic!("a foreign database opened: {:?}", other.err()),
    }
    assert_eq!(tables(&s, &db), ["customers"]);

    // A wrong password over TCP: the message names the catalog, never the password.
    let db = s.database();
    match open(&s.tcp_url(&db, "not-the-password")) {
        Err(e @ CatalogError::Connect { .. }) => {
            let text = format!("{:#}", anyhow_chain(&e));
            assert!(text.contains("password authentication failed"), "{text}");
            assert!(!text.contains("not-the-password"), "{text}");
            assert!(
                text.contains(&format!("127.0.0.1:{}/{db}", s.port)),
                "{text}"
            );
        }
        other => panic!("a wrong password opened: {:?}", other.err()),
    }
    assert!(tables(&s, &db).is_empty(), "nothing written");
    // The right one opens.
    open(&s.tcp_url(&db, "coldpatch")).expect("the right password");

    // A server that is down (nothing listens on port 1) and a database that is not there.
    assert!(matches!(
        open("postgres://coldpatch@127.0.0.1:1/x"),
        Err(CatalogError::Connect { .. })
    ));
    assert!(matches!(
        open(&s.url("no_such_database")),
        Err(CatalogError::Connect { .. })
    ));

    // A catalog a newer coldpatch migrated: refused, and not migrated back or further.
    let db = s.database();
    open(&s.url(&db)).expect("a new catalog");
    s.sql(
        &db,
        "INSERT INTO coldpatch_schema_history VALUES (99, 'future', '2030-01-01', '0')",
    );
    match open(&s.url(&db)) {
        Err(CatalogError::Newer { found: 99, .. }) => {}
        other => panic!("a newer schema opened: {:?}", other.err()),
    }
}

fn anyhow_chain(e: &CatalogError) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

#[test]
fn the_schema_is_migrated_once_by_processes_opening_together() {
    let Some(s) = pg::server() else { return };
    let db = s.database();
    let url = s.url(&db);
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || open(&url).map(|c| c.schema_version()))
        })
        .collect();
    for h in handles {
        let v = h.join().expect("thread").expect("open").expect("version");
        assert_eq!(v, coldpatch_catalog::SCHEMA_VERSION);
    }
    assert_eq!(
        s.query(&db, "SELECT count(*)::text FROM coldpatch_schema_history"),
        [coldpatch_catalog::SCHEMA_VERSION.to_string()]
    );
}

#[test]
fn racing_commits_and_feed_imports_have_one_winner() {
    use coldpatch_catalog::{RunImage, VersionFile};
    let Some(tc) = TestCatalog::new(Kind::Postgres) else {
        return;
    };
    let img = "/img/a.qcow2";
    tc.open()
        .record(&inventory(img, "1.1", 0), fp(), FULL)
        .expect("record");
    // Four handles (four pools, as four processes have) commit on version 0 at once.
    // Each passes the catalog's own check before its transaction (nothing is committed
    // yet) and then waits on the image row, held here; released, they meet the check
    // inside their transactions, where exactly one may win.
    let (s, db) = tc.postgres().expect("a PostgreSQL catalog");
    let url = tc.location();
    let mut holder = postgres::Client::connect(&url, postgres::NoTls).expect("holder");
    let mut hold = holder.transaction().expect("begin");
    hold.batch_execute("SELECT 1 FROM images FOR UPDATE")
        .expect("lock the image row");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let c = open(&url).expect("open");
                let image = c.image(img).expect("image");
                let made = c.next_version(&image, 0).expect("next");
                let ri = RunImage {
                    run: format!("r{i}"),
                    image: img.into(),
                    change: serde_json::json!({"kind": "files", "puts": []}),
                    overlay: Some(format!("/v/{i}.qcow2")),
                    base_version: 0,
                    log: String::new(),
                    before: Vec::new(),
                    after: Vec::new(),
                    outcome: coldpatch_catalog::Outcome::Pending,
                };
                barrier.wait();
                c.commit_version(
                    img,
                    VersionFile {
                        file: &format!("/v/{i}.qcow2"),
                        number: made.0,
                        check: made.1,
                    },
                    &inventory(img, &format!("3.{i}"), 0),
                    fp(),
                    FULL,
                    ri,
                )
                .map(|(v, _)| v.number)
            })
        })
        .collect();
    let waiting = s.lock_waiters(db, 4);
    assert_eq!(
        waiting, 4,
        "all four commits wait inside their transactions"
    );
    hold.rollback().expect("release");
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let won: Vec<u32> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .copied()
        .collect();
    eprintln!("RESULTS {results:?}");
    assert_eq!(won, [1], "exactly one commit wins: {results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, CatalogError::Moved { .. }), "{e}");
        }
    }
    let c = tc.open();
    let image = c.image(img).expect("image");
    assert_eq!(image.current_version, 1);
    assert_eq!(
        image.versions.iter().map(|v| v.number).collect::<Vec<_>>(),
        [0, 1]
    );

    // Two imports of one feed with different content: the stored feed is one of them,
    // whole, never a mixture; a loser is told, and nothing of it is written.
    let feed = |prefix: &str| FeedData {
        advisories: (0..200)
            .map(|i| Advisory {
                id: format!("{prefix}-{i}"),
                aliases: Vec::new(),
                summary: String::new(),
                severity: Default::default(),
                modified: None,
                published: None,
                affected: Vec::new(),
            })
            .collect(),
        ..FeedData::default()
    };
    let handles: Vec<_> = ["A", "B"]
        .into_iter()
        .map(|p| {
            let (url, data) = (url.clone(), feed(p));
            std::thread::spawn(move || {
                open(&url)
                    .expect("open")
                    .import_feed("f", p, 0, data)
                    .map(|r| r.imported)
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert!(results.iter().any(Result::is_ok), "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, CatalogError::FeedMoved { .. }), "{e}");
        }
    }
    let stored = c.advisory_index().expect("index");
    let ids: std::collections::BTreeSet<char> = c
        .feeds()
        .expect("feeds")
        .iter()
        .map(|f| f.source.chars().next().expect("source"))
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(stored.len(), 200, "one import's records, whole");
}

#[test]
fn a_connection_killed_while_recording_leaves_the_catalog_as_it_was() {
    let Some(s) = pg::server() else { return };
    let db = s.database();
    let url = s.url(&db);
    let c = open(&url).expect("open");
    c.record(&inventory("/img/a", "1.0", 10), fp(), FULL)
        .expect("first scan");
    let before = (
        c.images().expect("images"),
        c.scans_of(1).expect("scans").len(),
    );
    // Hold the file index so the next recording stops inside its transaction, after the
    // scan and inventory rows are written and before it commits; then kill it there.
    let mut holder = postgres::Client::connect(&url, postgres::NoTls).expect("holder");
    let mut hold = holder.transaction().expect("begin");
    hold.batch_execute("LOCK TABLE scan_files IN ACCESS EXCLUSIVE MODE")
        .expect("lock");
    let writer = {
        let url = url.clone();
        std::thread::spawn(move || {
            open(&url)
                .expect("open")
                .record(&inventory("/img/a", "2.0", 5000), fp(), FULL)
        })
    };
    let mut killed = 0;
    for _ in 0..300 {
        killed = s.query(
            &db,
            "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'coldpatch' \
             AND wait_event_type = 'Lock'",
        )[0]
        .parse::<u32>()
        .expect("count");
        if killed > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(killed, 1, "the recording was found waiting and killed");
    hold.rollback().expect("release");
    let res = writer.join().expect("thread");
    assert!(
        matches!(res, Err(CatalogError::Store { .. })),
        "{:?}",
        res.map(|s| s.id)
    );
    // Nothing of it is visible; the next recording on the same handle succeeds.
    assert_eq!(
        (
            c.images().expect("images"),
            c.scans_of(1).expect("scans").len()
        ),
        before
    );
    assert_eq!(
        s.query(&db, "SELECT count(*)::text FROM scans"),
        ["1"],
        "no half-written scan row"
    );
    let again = c
        .record(&inventory("/img/a", "2.0", 5000), fp(), FULL)
        .expect("the next collect");
    assert_eq!(
        c.image("/img/a").expect("image").current_scan,
        Some(again.id)
    );
}

#[test]
fn a_copy_through_postgres_and_back_reads_the_same() {
    let (Some(a), Some(p), Some(b)) = (
        TestCatalog::new(Kind::Sled),
        TestCatalog::new(Kind::Postgres),
        TestCatalog::new(Kind::Sled),
    ) else {
        return;
    };
    {
        let c = a.open();
        c.record(&inventory("/img/a", "1.0", 3), fp(), FULL)
            .expect("a");
        c.record(&inventory("/img/b", "2.0", 2), fp(), FULL)
            .expect("b");
        c.record(&inventory("/img/a", "1.1", 4), fp(), FULL)
            .expect("a again");
        let (run, _) = c.start_run("apply", &["/img/a".into()], "go").expect("run");
        c.event(&run.id, Some("/img/a"), "planned", "x")
            .expect("event");
        c.create_token("t", coldpatch_catalog::Role::Viewer)
            .expect("token");
    }
    let view = |c: &Catalog| {
        let images = c.images().expect("images");
        let scans: Vec<_> = images
            .iter()
            .map(|i| c.scans_of(i.id).expect("scans"))
            .collect();
        let invs: Vec<_> = scans
            .iter()
            .flatten()
            .map(|s| c.inventory(s.id, true).expect("inventory"))
            .collect();
        let runs = c.runs().expect("runs");
        let events: Vec<_> = runs
            .iter()
            .map(|r| c.events(&r.id).expect("events"))
            .collect();
        let pk = c
            .packages(&Scope::all(), Versions::All, Some("openssl"), None)
            .expect("packages");
        (
            serde_json::to_string(&images).expect("json"),
            serde_json::to_string(&scans).expect("json"),
            serde_json::to_string(&invs).expect("json"),
            serde_json::to_string(&runs).expect("json"),
            serde_json::to_string(&events).expect("json"),
            serde_json::to_string(&pk).expect("json"),
            serde_json::to_string(&c.tokens().expect("tokens")).expect("json"),
        )
    };
    let original = view(&a.open());
    let counts = a.open().copy_to(&p.open()).expect("to postgres");
    assert_eq!(
        (counts.images, counts.scans, counts.runs, counts.tokens),
        (2, 3, 1, 1)
    );
    assert_eq!(view(&p.open()), original);
    p.open().copy_to(&b.open()).expect("back to sled");
    assert_eq!(view(&b.open()), original);
    // New records continue the copied numbering.
    let c = b.open();
    let next = c
        .record(&inventory("/img/c", "1.0", 1), fp(), FULL)
        .expect("c");
    assert_eq!(next.id, 4);
    // A copy into a catalog that holds something is refused.
    assert!(matches!(
        a.open().copy_to(&p.open()),
        Err(CatalogError::NotEmpty { .. })
    ));
}
