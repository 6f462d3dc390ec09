//! How far a run is, from its events: the stage of each image (planned, launching,
//! installing, verifying, then committed, unchanged or failed) and images done of
//! total. The console's run page draws it, its server-sent events carry each event's
//! stage ([`stage`]) so the page's script moves the bar without knowing event kinds,
//! and `coldpatch patch apply` draws the same bar on the terminal.

use std::collections::BTreeMap;

use crate::Event;
use serde::Serialize;

/// Where an image of a run stands; the order is the order they come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Queued,
    Planned,
    Launching,
    Installing,
    Verifying,
    Committed,
    Unchanged,
    Failed,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::Planned => "planned",
            Stage::Launching => "launching",
            Stage::Installing => "installing",
            Stage::Verifying => "verifying",
            Stage::Committed => "committed",
            Stage::Unchanged => "unchanged",
            Stage::Failed => "failed",
        }
    }

    /// An image at this stage is done with (whatever the outcome).
    pub fn done(self) -> bool {
        self >= Stage::Committed
    }
}

/// The stage an image's event puts it at; `None` for events that do not move it
/// (timings, notes).
pub fn stage(kind: &str) -> Option<Stage> {
    Some(match kind {
        "planned" | "plan-shared" => Stage::Planned,
        // The overlay is made just before the appliance is launched.
        "overlay" => Stage::Launching,
        "mounted" | "uploaded" | "installed" | "replay" | "file" | "dpkg" | "apt-get" | "apk" => {
            Stage::Installing
        }
        "fsck" | "verified" | "verify-failed" => Stage::Verifying,
        "committed" | "collected" | "rolled-back" => Stage::Committed,
        "unchanged" => Stage::Unchanged,
        "failed" | "discarded" | "cancelled" => Stage::Failed,
        _ => return None,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    /// Every image of the run, in the run's order, with its stage.
    pub images: Vec<(String, Stage)>,
}

/// The progress of a run on `images` after `events`. Images whose overlay is made wait
/// for the appliance (launching); once it has started they are installing. A done
/// image stays done; a run that failed as a whole leaves the images it never reached
/// failed.
pub fn progress(images: &[String], events: &[Event], run_failed: bool) -> Progress {
    let mut at: BTreeMap<&str, Stage> =
        images.iter().map(|i| (i.as_str(), Stage::Queued)).collect();
    for e in events {
        match &e.image {
            None if e.kind == "appliance" && e.message.starts_with("started") => {
                for s in at.values_mut().filter(|s| **s == Stage::Launching) {
                    *s = Stage::Installing;
                }
            }
            None => {}
            Some(img) => {
                let Some(s) = stage(&e.kind) else { continue };
                if let Some(cur) = at.get_mut(img.as_str()) {
                    if !cur.done() {
                        *cur = s;
                    }
                }
            }
        }
    }
    let images: Vec<(String, Stage)> = images
        .iter()
        .map(|i| {
            let s = at[i.as_str()];
            let s = if run_failed && !s.done() {
                Stage::Failed
            } else {
                s
            };
            (i.clone(), s)
        })
        .collect();
    Progress {
        total: images.len(),
        done: images.iter().filter(|(_, s)| s.done()).count(),
        failed: images.iter().filter(|(_, s)| *s == Stage::Failed).count(),
        images,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(image: Option<&str>, kind: &str, message: &str) -> Event {
        Event {
            run: "r1".into(),
            seq: 0,
            time_ms: 0,
            image: image.map(str::to_string),
            kind: kind.into(),
            message: message.into(),
            worker: None,
        }
    }

    #[test]
    fn stages_follow_the_events() {
        let imgs = vec!["/a".to_string(), "/b".to_string(), "/c".to_string()];
        let mut evs = vec![
            ev(None, "started", "patch on 3 image(s)"),
            ev(Some("/a"), "planned", "2 packages"),
            ev(Some("/b"), "planned", "1 package"),
        ];
        let p = progress(&imgs, &evs, false);
        let st: Vec<Stage> = p.images.iter().map(|i| i.1).collect();
        assert_eq!(st, [Stage::Planned, Stage::Planned, Stage::Queued]);
        evs.push(ev(Some("/a"), "overlay", "made"));
        evs.push(ev(Some("/b"), "overlay", "made"));
        let p = progress(&imgs, &evs, false);
        assert_eq!(p.images[0].1, Stage::Launching);
        evs.push(ev(
            None,
            "appliance",
            "started with 2 drive(s) and 2 CPU(s) in 12.0 s",
        ));
        let p = progress(&imgs, &evs, false);
        assert_eq!(p.images[1].1, Stage::Installing);
        evs.push(ev(Some("/a"), "installed", "libc6 2.31-13+deb11u13"));
        evs.push(ev(Some("/a"), "timing", "verify 0.1 s"));
        evs.push(ev(Some("/a"), "committed", "version 1"));
        evs.push(ev(Some("/b"), "uploaded", "3 files"));
        evs.push(ev(Some("/c"), "failed", "no package manager"));
        // A late event for a done image does not move it back.
        evs.push(ev(Some("/a"), "installed", "late"));
        let p = progress(&imgs, &evs, false);
        let st: Vec<Stage> = p.images.iter().map(|i| i.1).collect();
        assert_eq!(st, [Stage::Committed, Stage::Installing, Stage::Failed]);
        assert_eq!((p.total, p.done, p.failed), (3, 2, 1));
        evs.push(ev(None, "appliance", "stopped; every drive written out"));
        let p = progress(&imgs, &evs, true);
        assert_eq!(p.images[1].1, Stage::Failed);
        assert_eq!((p.done, p.failed), (3, 2));
        assert_eq!(stage("timing"), None);
    }
}
