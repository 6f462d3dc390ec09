//! The scheduler: each enabled schedule whose cron expression had an occasion since it
//! last fired (or since it was made) gets one run queued. However many occasions were
//! missed while the server was down, one run catches them up. [`step`] does one pass at
//! a given time: the server calls it every [`TICK`], tests call it with the time they
//! want. Cron expressions have five fields (minute hour day month weekday), in UTC; the
//! `cron` crate reads them (as six fields, seconds fixed at 0).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use coldpatch_catalog::{Action, Catalog, Schedule};

use crate::{JobError, JobSpec, Queue};

type Result<T> = std::result::Result<T, JobError>;

pub const TICK: Duration = Duration::from_secs(15);

/// Parses a five-field cron expression (seconds are fixed at 0).
pub fn parse(expr: &str) -> Result<cron::Schedule> {
    let f: Vec<&str> = expr.split_whitespace().collect();
    let [minute, hour, day, month, weekday] = f[..] else {
        return Err(JobError::Cron {
            expr: expr.to_string(),
            why: format!(
                "{} fields; give five: minute hour day month weekday",
                f.len()
            ),
        });
    };
    let expr6 = format!("0 {minute} {hour} {day} {month} {}", weekdays(weekday));
    cron::Schedule::from_str(&expr6).map_err(|e| JobError::Cron {
        expr: expr.to_string(),
        why: e.to_string().lines().last().unwrap_or_default().to_string(),
    })
}

/// Classic cron counts weekdays 0-7 from Sunday (0 and 7 both Sunday); the cron crate
/// counts 1-7 from Sunday. Numbers are moved up by one, except step sizes (after `/`).
fn weekdays(field: &str) -> String {
    let mut out = String::new();
    let mut num = String::new();
    let mut after_slash = false;
    let flush = |num: &mut String, out: &mut String, step: bool| {
        if num.is_empty() {
            return;
        }
        match (step, num.parse::<u32>()) {
            (false, Ok(7)) => out.push('1'),
            (false, Ok(n)) => out.push_str(&(n + 1).to_string()),
            _ => out.push_str(num),
        }
        num.clear();
    };
    for ch in field.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
        } else {
            flush(&mut num, &mut out, after_slash);
            after_slash = ch == '/';
            out.push(ch);
        }
    }
    flush(&mut num, &mut out, after_slash);
    out
}

fn at(secs: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0).unwrap_or_default()
}

/// The latest occasion in (since, now], if any.
pub fn due(s: &Schedule, now: u64) -> Result<Option<u64>> {
    let since = s.last_fired.unwrap_or(s.created);
    if now <= since {
        return Ok(None);
    }
    let cron = parse(&s.cron)?;
    let mut last = None;
    // Walk forward from `since`; at most a bounded number of occasions (a schedule every
    // minute missed for a week is 10,080), after which the newest is all that matters.
    for (n, t) in cron.after(&at(since)).enumerate() {
        let t = u64::try_from(t.timestamp()).unwrap_or(0);
        if t > now || n > 1_000_000 {
            break;
        }
        last = Some(t);
    }
    Ok(last)
}

/// What a schedule queues when it fires.
pub fn spec(catalog: &Catalog, s: &Schedule) -> Result<JobSpec> {
    // Named images need not be collected yet (a collect schedule collects them); a
    // label selector, read when it fires (an image labelled since is in this run), keeps
    // those of the catalog's images it picks.
    let images = match &s.labels {
        None if s.images.is_empty() => catalog.images()?.into_iter().map(|i| i.path).collect(),
        None => s.images.clone(),
        Some(sel) => {
            let picked: std::collections::HashSet<String> = catalog
                .scoped(&coldpatch_catalog::Scope::all().labelled(sel.parse()?))?
                .into_iter()
                .map(|i| i.path)
                .collect();
            if s.images.is_empty() {
                let mut v: Vec<String> = picked.into_iter().collect();
                v.sort();
                v
            } else {
                s.images
                    .iter()
                    .filter(|i| picked.contains(*i))
                    .cloned()
                    .collect()
            }
        }
    };
    Ok(match &s.action {
        Action::Collect => JobSpec::Collect {
            images,
            rescan: false,
        },
        Action::Patch { policy, repo } => JobSpec::Patch {
            images,
            policy: policy.clone(),
            repo: repo.clone(),
            no_replay: false,
        },
    })
}

/// One pass at `now`: queues a run for every schedule due; returns their ids.
pub fn step(catalog: &Catalog, jobs: &dyn Queue, now: u64) -> Result<Vec<String>> {
    let mut queued = Vec::new();
    for mut s in catalog.schedules()? {
        if !s.enabled {
            continue;
        }
        let Some(t) = due(&s, now)? else {
            continue;
        };
        let spec = spec(catalog, &s)?;
        // The occasion is claimed first: of several servers sharing a catalog, only the
        // one whose claim goes through queues the run (a server killed right after its
        // claim misses that one occasion rather than two servers running it). Claimed
        // even when there is nothing to run on, so an empty fleet does not make the
        // schedule fire on every tick.
        let was = s.clone();
        s.last_fired = Some(t.max(s.last_fired.unwrap_or(0)));
        if !catalog.replace_schedule(&s, &was)? {
            continue;
        }
        if !spec.images().is_empty() {
            let claimed = s.clone();
            let run = jobs.submit(&spec, Some(&s.id))?;
            s.last_run = Some(run.id.clone());
            queued.push(run.id);
            catalog.replace_schedule(&s, &claimed)?;
        }
    }
    Ok(queued)
}

/// Calls [`step`] every [`TICK`] on a thread of its own, at once on start first (the
/// catch-up of what was missed while the server was down).
pub fn spawn(
    catalog: std::sync::Arc<Catalog>,
    jobs: std::sync::Arc<dyn Queue>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("coldpatch-scheduler".into())
        .spawn(move || loop {
            if let Err(e) = step(&catalog, jobs.as_ref(), coldpatch_catalog::clock::now()) {
                eprintln!("scheduler: {}", crate::reason(e));
            }
            std::thread::sleep(TICK);
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_weekdays_map_to_the_crates_numbering() {
        assert_eq!(weekdays("0"), "1");
        assert_eq!(weekdays("7"), "1");
        assert_eq!(weekdays("1-5"), "2-6");
        assert_eq!(weekdays("*/2"), "*/2");
        assert_eq!(weekdays("0,6"), "1,7");
        assert_eq!(weekdays("MON-FRI"), "MON-FRI");
        // 2026-01-05 is a Monday: "0 3 * * 1" fires then, "0 3 * * 0" on the 11th.
        let mon = parse("0 3 * * 1").expect("parse");
        let t0 = DateTime::from_timestamp(1_767_571_200, 0).expect("t");
        assert_eq!(
            mon.after(&t0).next().map(|t| t.timestamp()),
            Some(1_767_571_200 + 3 * 3600)
        );
        let sun = parse("0 3 * * 0").expect("parse");
        assert_eq!(
            sun.after(&t0).next().map(|t| t.timestamp()),
            Some(1_767_571_200 + 6 * 86_400 + 3 * 3600)
        );
    }
}
