//! Versions and runs in the sled store on disk: a version appears with its scan in one
//! step, a stale base is refused, rollback walks the parent links, and a run's events
//! survive reopening in order.

use coldpatch_catalog::{
    Catalog, CatalogError, Fingerprint, Outcome, RunImage, RunState, Scope, VersionFile, Versions,
};
use coldpatch_testkit::both;

use crate::{inv, OPTS};

fn part(run: &str, image: &str, base: u32) -> RunImage {
    RunImage {
        run: run.into(),
        image: image.into(),
        change: serde_json::json!({"kind": "files", "puts": []}),
        overlay: Some(format!("/versions/{run}.qcow2")),
        base_version: base,
        log: "Setting up openssl".into(),
        before: Vec::new(),
        after: Vec::new(),
        outcome: Outcome::Pending,
    }
}

fn made(file: &str, (number, check): (u32, [u8; 32])) -> VersionFile<'_> {
    VersionFile {
        file,
        number,
        check,
    }
}

fn openssl(c: &Catalog, versions: Versions) -> Vec<(u32, String)> {
    c.packages(
        &Scope::image(Some("/img/a.qcow2")),
        versions,
        Some("openssl"),
        None,
    )
    .expect("packages")
    .into_iter()
    .map(|h| (h.version, h.package.version))
    .collect()
}

both!(
    versions_commit_whole_refuse_a_moved_base_and_roll_back,
    |tc| {
        let fp = Fingerprint(vec![("/x".into(), 1, 2, 3)]);
        let img = "/img/a.qcow2";
        let c = tc.open();
        c.record(&inv(img, "1.1.1w-0+deb11u1"), fp.clone(), OPTS)
            .expect("record");
        assert_eq!(c.image(img).expect("image").all_versions().len(), 1);

        let (run, _) = c
            .start_run("apply", &[img.to_string()], "apply")
            .expect("run");
        c.put_run_image(&part(&run.id, img, 0)).expect("part");
        let next = c
            .next_version(&c.image(img).expect("image"), 0)
            .expect("next");
        // A stamp made for another version is refused, and nothing is written.
        let wrong = (next.0, [7u8; 32]);
        assert!(matches!(
            c.commit_version(
                img,
                made("/versions/r1.qcow2", wrong),
                &inv(img, "1.1.1w-0+deb11u8"),
                fp.clone(),
                OPTS,
                part(&run.id, img, 0),
            ),
            Err(CatalogError::Moved { .. })
        ));
        assert_eq!(c.image(img).expect("image").current_version, 0);
        let (v1, _) = c
            .commit_version(
                img,
                made("/versions/r1.qcow2", next),
                &inv(img, "1.1.1w-0+deb11u8"),
                fp.clone(),
                OPTS,
                part(&run.id, img, 0),
            )
            .expect("commit");
        assert_eq!((v1.number, v1.parent), (1, Some(0)));
        let rec = c.image(img).expect("image");
        assert_eq!(rec.current_version, 1);
        assert_eq!(rec.current_file(), "/versions/r1.qcow2");
        assert_eq!(
            openssl(&c, Versions::Current),
            [(1, "1.1.1w-0+deb11u8".into())]
        );
        assert_eq!(
            openssl(&c, Versions::All),
            [
                (0, "1.1.1w-0+deb11u1".into()),
                (1, "1.1.1w-0+deb11u8".into())
            ]
        );
        let parts = c.run_images(&run.id).expect("parts");
        assert_eq!(parts[0].outcome, Outcome::Committed { version: 1 });
        assert_eq!(parts[0].overlay, None);

        // A run that planned on version 0 cannot commit over version 1.
        let late = c
            .commit_version(
                img,
                made("/versions/r2.qcow2", next),
                &inv(img, "1.1.1w-0+deb11u9"),
                fp.clone(),
                OPTS,
                part("r2", img, 0),
            )
            .expect_err("moved");
        assert!(
            matches!(
                late,
                CatalogError::Moved {
                    base: 0,
                    current: 1,
                    ..
                }
            ),
            "{late}"
        );
        assert_eq!(c.image(img).expect("image").versions.len(), 2);

        let (left, now) = c.rollback(img).expect("rollback");
        assert_eq!((left.number, now.number), (1, 0));
        assert_eq!(
            openssl(&c, Versions::Current),
            [(0, "1.1.1w-0+deb11u1".into())]
        );
        assert!(c.image(img).expect("image").versions[1].rolled_back);
        assert!(matches!(c.rollback(img), Err(CatalogError::NoParent(_))));
    }
);

both!(runs_and_their_events_survive_reopening_in_order, |tc| {
    let id = {
        let c = tc.open();
        let (mut run, started) = c
            .start_run("apply", &["/img/a.qcow2".into()], "apply on 1 image(s)")
            .expect("run");
        assert_eq!(
            (started.kind.as_str(), run.state),
            ("started", RunState::Running)
        );
        for (i, k) in ["planned", "overlay", "appliance", "committed"]
            .iter()
            .enumerate()
        {
            c.event(&run.id, Some("/img/a.qcow2"), k, &format!("step {i}"))
                .expect("event");
        }
        let finished = c
            .finish_run(&mut run, RunState::Succeeded, None)
            .expect("finish");
        assert_eq!(
            (finished.kind.as_str(), finished.message.as_str()),
            ("finished", "succeeded")
        );
        assert!(run.finished.is_some());
        assert_eq!(c.running_on("/img/a.qcow2").expect("running"), []);
        let (other, _) = c
            .start_run("files", &["/img/a.qcow2".into()], "files")
            .expect("run");
        assert_eq!(c.running_on("/img/a.qcow2").expect("running"), [other]);
        run.id
    };
    let c = tc.open();
    let kinds: Vec<String> = c
        .events(&id)
        .expect("events")
        .into_iter()
        .map(|e| {
            assert_eq!(e.run, id);
            e.kind
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "started",
            "planned",
            "overlay",
            "appliance",
            "committed",
            "finished"
        ]
    );
    assert_eq!(c.run(&id).expect("run").state, RunState::Succeeded);
    assert_eq!(c.runs().expect("runs").len(), 2);
    assert!(matches!(c.run("nope"), Err(CatalogError::NoRun(_))));
});

both!(
    check_values_chain_through_parents_and_survive_reopening,
    |tc| {
        use coldpatch_catalog::versions::check_value;
        let fp = Fingerprint(vec![("/x".into(), 1, 2, 3)]);
        let img = "/img/a.qcow2";
        let (appliance, v0, v1, v2) = {
            let c = tc.open();
            c.record(&inv(img, "1"), fp.clone(), OPTS).expect("record");
            let appliance = c.appliance_id().expect("appliance");
            for (base, n) in [(0, "2"), (1, "3")] {
                let next = c
                    .next_version(&c.image(img).expect("image"), base)
                    .expect("next");
                c.commit_version(
                    img,
                    made("/v.qcow2", next),
                    &inv(img, n),
                    fp.clone(),
                    OPTS,
                    part("r", img, base),
                )
                .expect("commit");
            }
            let vs = c
                .versions_of(&c.image(img).expect("image"))
                .expect("versions");
            let hex = |i: usize| vs[i].check.clone().expect("check");
            (appliance, hex(0), hex(1), hex(2))
        };
        let c = tc.open();
        assert_eq!(c.appliance_id().expect("appliance"), appliance, "made once");
        let want0 = check_value(0, &appliance, img, None);
        let want1 = check_value(1, &appliance, img, Some(&want0));
        let want2 = check_value(2, &appliance, img, Some(&want1));
        assert_eq!(
            [v0, v1.clone(), v2],
            [hex::encode(want0), hex::encode(want1), hex::encode(want2)]
        );
        // Another image name or appliance gives another value.
        assert_ne!(check_value(0, &appliance, "/img/b.qcow2", None), want0);
        assert_ne!(check_value(0, &[9; 16], img, None), want0);
        let (found, v) = c
            .find_check(&v1.to_uppercase())
            .expect("find")
            .expect("found");
        assert_eq!((found.path.as_str(), v.number), (img, 1));
        assert!(c.find_check(&"0".repeat(64)).expect("find").is_none());
    }
);

#[test]
fn check_values_match_their_documented_layout() {
    // Known answers for the layout in versions.rs, computed outside this crate (Python's
    // hashlib over the documented bytes): "coldpatch-version-check-v1", the number as
    // u32 BE, the 16-byte appliance id, the image name's length (u32 BE) and bytes, the
    // parent's 32-byte check value (zeros for version 0).
    use coldpatch_catalog::versions::check_value;
    let appliance: [u8; 16] = std::array::from_fn(|i| i as u8);
    let img = "/img/a.qcow2";
    let v0 = check_value(0, &appliance, img, None);
    assert_eq!(
        hex::encode(v0),
        "f0dd87af06997bb75b5d52666de88e5b61375b16c0d57eb9ee3c7b4a51de6905"
    );
    assert_eq!(
        hex::encode(check_value(1, &appliance, img, Some(&v0))),
        "73e474c12a26d4182d21c80106bb51b83282c5e700479d71464dd9fa4e277d91"
    );
    assert_eq!(
        hex::encode(check_value(1, &appliance, img, Some(&[0xab; 32]))),
        "04022a3e387b39b49712a56bd08f46aca62bbf4a02a58caa2469f99e84f2299b"
    );
}

#[test]
fn a_catalog_another_handle_holds_is_refused_as_locked() {
    // The catalog's own lock, not an error message's wording, says it is in use.
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Catalog::open(dir.path()).expect("open");
    match Catalog::open(dir.path()) {
        Err(CatalogError::Locked { dir: d }) => assert_eq!(d, dir.path()),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second handle opened a held catalog"),
    }
    drop(first);
    Catalog::open(dir.path()).expect("free again once the first handle is gone");
}
