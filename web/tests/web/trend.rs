//! The fleet's findings over time, checked against the catalog: real images collected
//! into a PostgreSQL catalog, their scans moved back in time there (the one thing a
//! test cannot wait for), then the series built by hand from the stored scans and
//! inventories, day by day, and compared with what the dashboard draws.

use coldpatch_catalog::Fingerprint;
use coldpatch_testkit::pg::{Kind, TestCatalog};
use coldpatch_web::fleet::{Fleet, SEVERITIES};

const DAY: u64 = 86_400;

#[test]
fn findings_over_time_are_the_stored_scans_day_by_day() {
    let Some(tc) = TestCatalog::new(Kind::Postgres) else {
        return;
    };
    let (catalog, keys) = coldpatch_testkit::catalog_on(&tc, &["debian-11-old", "debian-12-min"]);
    let (old, min) = (&keys[0], &keys[1]);
    // The old image is "patched" two days ago: a second scan of it that holds what the
    // newer image holds (another real inventory, so other findings).
    let (_, newer) = catalog.current_inventory(min).expect("inventory");
    let mut as_old = newer.clone();
    as_old.image.path.clone_from(old);
    catalog
        .record(
            &as_old,
            Fingerprint(vec![("/moved".into(), 1, 2, 3)]),
            coldpatch_catalog::ScanOptions {
                files: false,
                hash: false,
            },
        )
        .expect("second scan");
    let now = coldpatch_catalog::clock::now();
    let (server, db) = tc.postgres().expect("postgres");
    let id = |k: &str| catalog.image(k).expect("image").id;
    let scans = |k: &str| catalog.scans_of(id(k)).expect("scans");
    let (old_scans, min_scans) = (scans(old), scans(min));
    assert_eq!((old_scans.len(), min_scans.len()), (2, 1));
    for (scan, ago) in [
        (old_scans[0].id, 5 * DAY),
        (old_scans[1].id, 2 * DAY),
        (min_scans[0].id, 3 * DAY + 7),
    ] {
        server.sql(
            db,
            &format!(
                "UPDATE scans SET record = jsonb_set(record, '{{time}}', '{}') WHERE id = {scan}",
                now - ago
            ),
        );
    }
    let fleet = Fleet::default();
    let view = fleet.view(&catalog).expect("view");

    // By hand: each day from the first scan's, each image's latest scan made by the
    // day's end (today: its current scan), matched against the stored feeds.
    let index = catalog.advisory_index().expect("index");
    let images = catalog.images().expect("images");
    let counts = |scan: u64| {
        let inv = catalog.inventory(scan, false).expect("inventory");
        let (_, found) = index.inventory_findings(&inv);
        let mut t = [0usize; 6];
        for f in &found {
            t[SEVERITIES
                .iter()
                .position(|s| *s == f.severity)
                .expect("severity")] += 1;
        }
        t
    };
    let today = now - now % DAY;
    let first = (now - 5 * DAY) - (now - 5 * DAY) % DAY;
    let mut want = Vec::new();
    let mut day = first;
    while day <= today {
        let mut total = [0usize; 6];
        let mut n = 0;
        for img in &images {
            let stored = catalog.scans_of(img.id).expect("scans");
            let scan = if day == today {
                img.current_scan
            } else {
                stored
                    .iter()
                    .filter(|s| s.time < day + DAY)
                    .max_by_key(|s| (s.time, s.id))
                    .map(|s| s.id)
            };
            if let Some(s) = scan {
                n += 1;
                for (a, b) in total.iter_mut().zip(counts(s)) {
                    *a += b;
                }
            }
        }
        want.push((day, n, total));
        day += DAY;
    }
    let got: Vec<(u64, usize, [usize; 6])> = view
        .trend
        .iter()
        .map(|p| (p.day, p.images, p.by_severity))
        .collect();
    assert_eq!(got, want);
    // The series moves: the old image alone at first, both from three days ago, fewer
    // findings once the old image was "patched", and today the current scans, which
    // are what the dashboard counts.
    assert_eq!(want.len(), 6);
    assert_eq!((want[0].1, want[2].1), (1, 2));
    assert_ne!(
        want[2].2, want[3].2,
        "the second scan of the old image counts from day 3"
    );
    assert_eq!(want[5].2, view.by_severity());
    let total = |s: u64| counts(s).iter().sum::<usize>();
    assert!(
        total(old_scans[0].id) > total(old_scans[1].id),
        "the newer content has fewer"
    );
}
