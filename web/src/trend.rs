//! The fleet's findings over time: one point per UTC day, by severity, from the scans
//! already stored (every version a patch run made has its scan, so versions are in
//! them). On a past day an image counts as its latest scan made by the end of that
//! day; on the last day (today) as its current scan, so that a rollback shows at once
//! and the last point is what the dashboard counts. Every scan is matched against the
//! feeds stored now: the series says how exposed the fleet was to what is known today,
//! not what was known then (the feeds' history is not kept).

use std::collections::HashMap;

use serde::Serialize;

pub const DAY: u64 = 86_400;
/// Points drawn at most: the last this many days.
pub const MAX_DAYS: u64 = 90;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Point {
    /// The day's start, seconds since the epoch (UTC).
    pub day: u64,
    /// Images that had a scan by the day's end.
    pub images: usize,
    /// Findings by severity, in `fleet::SEVERITIES` order.
    pub by_severity: [usize; 6],
}

/// The series from the first day any image was scanned (at most [`MAX_DAYS`] back) to
/// the day of `now`. `history`: per image, (scan time, scan id) oldest first; `current`:
/// per image its current scan; `counts`: findings by severity of every scan named.
pub fn daily(
    history: &HashMap<u64, Vec<(u64, u64)>>,
    current: &HashMap<u64, u64>,
    counts: &HashMap<u64, [usize; 6]>,
    now: u64,
) -> Vec<Point> {
    let Some(first) = history
        .values()
        .filter_map(|h| h.first())
        .map(|s| s.0)
        .min()
    else {
        return Vec::new();
    };
    let today = now - now % DAY;
    let start = (first - first % DAY).max(today.saturating_sub((MAX_DAYS - 1) * DAY));
    let mut out = Vec::new();
    let mut day = start;
    while day <= today {
        let end = day + DAY;
        let mut p = Point {
            day,
            images: 0,
            by_severity: [0; 6],
        };
        for (img, scans) in history {
            let scan = if day == today {
                current.get(img).copied()
            } else {
                // The latest scan made before the day ended.
                let n = scans.partition_point(|s| s.0 < end);
                n.checked_sub(1).map(|i| scans[i].1)
            };
            if let Some(c) = scan.and_then(|s| counts.get(&s)) {
                p.images += 1;
                for (a, b) in p.by_severity.iter_mut().zip(c) {
                    *a += b;
                }
            }
        }
        out.push(p);
        day = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_day_counts_the_latest_scan_and_today_the_current_one() {
        let d0 = 1_767_571_200; // a midnight
                                // Image 1: scanned on day 0 (scan 10), patched on day 2 (scan 11); rolled back
                                // today (day 4), so its current scan is 10 again. Image 2: first seen on day 1.
        let history = HashMap::from([
            (1, vec![(d0 + 100, 10), (d0 + 2 * DAY + 5, 11)]),
            (2, vec![(d0 + DAY + 7, 20)]),
        ]);
        let current = HashMap::from([(1, 10), (2, 20)]);
        let counts = HashMap::from([
            (10, [1, 2, 0, 0, 0, 0]),
            (11, [0, 1, 0, 0, 0, 0]),
            (20, [0, 0, 3, 0, 0, 0]),
        ]);
        let s = daily(&history, &current, &counts, d0 + 4 * DAY + 3600);
        let got: Vec<(u64, usize, [usize; 6])> = s
            .iter()
            .map(|p| ((p.day - d0) / DAY, p.images, p.by_severity))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 1, [1, 2, 0, 0, 0, 0]),
                (1, 2, [1, 2, 3, 0, 0, 0]),
                (2, 2, [0, 1, 3, 0, 0, 0]),
                (3, 2, [0, 1, 3, 0, 0, 0]),
                (4, 2, [1, 2, 3, 0, 0, 0]),
            ]
        );
        // A long history is cut to the last MAX_DAYS days.
        let s = daily(&history, &current, &counts, d0 + 400 * DAY);
        assert_eq!(s.len() as u64, MAX_DAYS);
        assert!(daily(&HashMap::new(), &current, &counts, d0).is_empty());
    }
}
