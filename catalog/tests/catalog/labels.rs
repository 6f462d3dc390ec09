//! Names and labels on both backends: set, removed, kept across a patch commit, raced by
//! two writers, resolved as image keys, picking images for fleet queries, and copied.

use coldpatch_catalog::{
    Catalog, CatalogError, Fingerprint, Outcome, Relabel, RunImage, Scope, Selector, VersionFile,
    Versions,
};
use coldpatch_testkit::both;

use crate::{inv, OPTS};

fn set(pairs: &[(&str, &str)]) -> Relabel {
    Relabel {
        set: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Relabel::default()
    }
}

fn picked(c: &Catalog, sel: &str) -> Vec<String> {
    let scope = Scope::all().labelled(sel.parse::<Selector>().expect("selector"));
    c.packages(&scope, Versions::Current, Some("openssl"), None)
        .expect("packages")
        .into_iter()
        .map(|h| h.image)
        .collect()
}

fn fleet(c: &Catalog) {
    let fp = Fingerprint(vec![("/x".into(), 1, 2, 3)]);
    for (p, v) in [
        ("/srv/a/disk.qcow2", "1.1.1w-0+deb11u1"),
        ("/srv/b/disk.qcow2", "3.0.15-1~deb12u1"),
        ("/srv/web.qcow2", "3.0.15-1~deb12u1"),
    ] {
        c.record(&inv(p, v), fp.clone(), OPTS).expect("record");
    }
}

both!(labels_select_images_and_outlive_a_commit, |tc| {
    let c = tc.open();
    fleet(&c);
    let (a, b, web) = ("/srv/a/disk.qcow2", "/srv/b/disk.qcow2", "/srv/web.qcow2");
    c.relabel(a, &set(&[("env", "prod"), ("owner", "db")]))
        .expect("label a");
    c.relabel(b, &set(&[("env", "dev")])).expect("label b");
    c.relabel(web, &set(&[("env", "prod"), ("owner", "web")]))
        .expect("label web");
    assert_eq!(picked(&c, "env=prod"), [a, web]);
    assert_eq!(picked(&c, "env=prod,owner!=web"), [a]);
    assert_eq!(picked(&c, "!owner"), [b]);
    assert!(picked(&c, "env=test").is_empty());

    // Display names: the shortest unique tail of the path, or the name given.
    let names = c.names().expect("names");
    let id = |p: &str| c.image(p).expect("image").id;
    assert_eq!(names[&id(a)], "a/disk.qcow2");
    assert_eq!(names[&id(web)], "web.qcow2");
    let golden = Relabel {
        name: Some(Some("golden-web".into())),
        ..Relabel::default()
    };
    c.relabel(web, &golden).expect("name web");
    assert_eq!(c.image("golden-web").expect("by name").path, web);
    assert_eq!(c.image("a/disk.qcow2").expect("by default name").path, a);
    // A name another image has is refused by name; so are bad labels, and nothing moves.
    match c.relabel(a, &golden) {
        Err(CatalogError::NameTaken { name, image }) => {
            assert_eq!((name.as_str(), image.as_str()), ("golden-web", web));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.relabel(a, &set(&[("bad key", "x")])),
        Err(CatalogError::Label { .. })
    ));
    assert_eq!(c.tags_of(id(a)).expect("tags").labels.len(), 2);

    // A patch commit rewrites the image record; the labels are elsewhere and stay.
    let (run, _) = c
        .start_run("apply", &[a.to_string()], "apply")
        .expect("run");
    let part = RunImage {
        run: run.id.clone(),
        image: a.into(),
        change: serde_json::json!({"kind": "files", "puts": []}),
        overlay: Some(format!("/versions/{}.qcow2", run.id)),
        base_version: 0,
        log: String::new(),
        before: Vec::new(),
        after: Vec::new(),
        outcome: Outcome::Pending,
    };
    c.put_run_image(&part).expect("part");
    let (number, check) = c
        .next_version(&c.image(a).expect("image"), 0)
        .expect("next");
    c.commit_version(
        a,
        VersionFile {
            file: "/versions/r.qcow2",
            number,
            check,
        },
        &inv(a, "1.1.1w-0+deb11u8"),
        Fingerprint(vec![("/y".into(), 1, 2, 3)]),
        OPTS,
        part,
    )
    .expect("commit");
    assert_eq!(c.image(a).expect("image").current_version, 1);
    assert_eq!(picked(&c, "owner=db"), [a]);
    let unset = Relabel {
        unset: vec!["owner".into()],
        name: Some(None),
        ..Relabel::default()
    };
    c.relabel(web, &unset).expect("unlabel");
    assert_eq!(picked(&c, "owner"), [a]);
    assert_eq!(c.names().expect("names")[&id(web)], "web.qcow2");
});

both!(two_writers_labelling_one_image_both_land, |tc| {
    let c = tc.open();
    fleet(&c);
    let img = "/srv/a/disk.qcow2";
    let c = std::sync::Arc::new(c);
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let c = c.clone();
            std::thread::spawn(move || {
                for k in 0..5 {
                    c.relabel(img, &set(&[(&format!("w{n}-{k}"), "x")]))
                        .expect("relabel");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let id = c.image(img).expect("image").id;
    assert_eq!(c.tags_of(id).expect("tags").labels.len(), 40);
});

both!(a_copy_keeps_names_and_labels, |tc| {
    let c = tc.open();
    fleet(&c);
    let web = "/srv/web.qcow2";
    c.relabel(
        web,
        &Relabel {
            name: Some(Some("golden-web".into())),
            ..set(&[("tier", "1")])
        },
    )
    .expect("label");
    let dir = tempfile::tempdir().expect("dir");
    let to = Catalog::open(&dir.path().join("copy")).expect("open");
    let n = c.copy_to(&to).expect("copy");
    assert_eq!(n.labelled, 1);
    let img = to.image("golden-web").expect("by name in the copy");
    assert_eq!(img.path, web);
    assert_eq!(to.tags_of(img.id).expect("tags").labels["tier"], "1");
    assert_eq!(to.info().expect("info").counts.labelled, 1);
});
