//! SVG charts drawn on the server (no script): the severity breakdown and findings over
//! an image's versions. Text in them goes through maud, so it is escaped like the rest.

use maud::{html, Markup};

use crate::fleet::SEVERITIES;

pub const COLORS: [&str; 6] = [
    "#8b0000", "#d9480f", "#f59f00", "#2b8a3e", "#868e96", "#adb5bd",
];

/// The largest total of a set of by-severity counts, at least 1 (a chart's scale).
fn tallest<'a>(counts: impl Iterator<Item = &'a [usize; 6]>) -> usize {
    counts
        .map(|c| c.iter().sum::<usize>())
        .max()
        .unwrap_or(0)
        .max(1)
}

/// Horizontal bars, one per severity.
pub fn severity_bars(counts: [usize; 6]) -> Markup {
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let (w, row) = (420usize, 26usize);
    html! {
        svg class="chart" role="img" aria-label="Findings by severity" width=(w) height=(row * 6 + 4)
            viewBox=(format!("0 0 {w} {}", row * 6 + 4)) xmlns="http://www.w3.org/2000/svg" {
            @for (i, (s, n)) in SEVERITIES.iter().zip(counts).enumerate() {
                @let y = i * row + 2;
                @let bw = n * 260 / max;
                text x="0" y=(y + 17) font-size="13" { (s.as_str()) }
                rect x="90" y=(y + 3) width=(bw.max(1)) height=(row - 8) fill=(COLORS[i]) {}
                text x=(95 + bw) y=(y + 17) font-size="13" { (n) }
            }
        }
    }
}

/// Stacked columns, one per version, of findings by severity.
pub fn findings_over_versions(points: &[(u32, [usize; 6])]) -> Markup {
    let max = tallest(points.iter().map(|(_, c)| c));
    let (h, col) = (180usize, 56usize);
    let w = 40 + points.len().max(1) * col;
    // (x, y, height, colour index, count) of every segment.
    let mut segs = Vec::new();
    for (i, (_, counts)) in points.iter().enumerate() {
        let x = 40 + i * col;
        let mut top = h;
        for (k, n) in counts.iter().enumerate() {
            let bh = n * (h - 10) / max;
            if bh > 0 {
                segs.push((x, top - bh, bh, k, *n));
                top -= bh;
            }
        }
    }
    html! {
        svg class="chart" role="img" aria-label="Findings over versions" width=(w) height=(h + 40)
            viewBox=(format!("0 0 {w} {}", h + 40)) xmlns="http://www.w3.org/2000/svg" {
            line x1="30" y1=(h) x2=(w) y2=(h) stroke="#444" {}
            text x="0" y="12" font-size="12" { (max) }
            @for (x, y, bh, k, n) in &segs {
                rect x=(x) y=(y) width=(col - 16) height=(bh) fill=(COLORS[*k]) {
                    title { (SEVERITIES[*k].as_str()) ": " (n) }
                }
            }
            @for (i, (v, counts)) in points.iter().enumerate() {
                text x=(40 + i * col) y=(h + 16) font-size="12" { "v" (v) }
                text x=(40 + i * col) y=(h + 32) font-size="12" { (counts.iter().sum::<usize>()) }
            }
        }
    }
}

/// Stacked columns, one per day, of the fleet's findings by severity (`trend.rs`), with
/// the same numbers as a table for those who cannot see the chart.
pub fn findings_over_time(points: &[crate::trend::Point]) -> Markup {
    if points.is_empty() {
        return html! { p { "No scans yet." } };
    }
    let max = tallest(points.iter().map(|p| &p.by_severity));
    let (h, col) = (160usize, (560 / points.len()).clamp(4, 40));
    // Room for the dates under the axis, however few the days.
    let w = (50 + points.len() * col).max(200);
    let day = |d: u64| coldpatch_catalog::clock::rfc3339(d)[..10].to_string();
    let first = points.first().map(|p| day(p.day)).unwrap_or_default();
    let last = points.last().map(|p| day(p.day)).unwrap_or_default();
    let now = points
        .last()
        .map_or(0, |p| p.by_severity.iter().sum::<usize>());
    let label = format!(
        "Findings over time, {} day(s) from {first} to {last}: {now} now, at most {max}",
        points.len()
    );
    let mut segs = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let x = 45 + i * col;
        let mut top = h;
        for (k, n) in p.by_severity.iter().enumerate() {
            let bh = n * (h - 10) / max;
            if bh > 0 {
                segs.push((x, top - bh, bh, k, *n, day(p.day)));
                top -= bh;
            }
        }
    }
    html! {
        svg class="chart" #trend role="img" aria-label=(label) width=(w) height=(h + 30)
            viewBox=(format!("0 0 {w} {}", h + 30)) xmlns="http://www.w3.org/2000/svg" {
            title { (label) }
            line x1="40" y1=(h) x2=(w) y2=(h) stroke="#444" {}
            text x="0" y="12" font-size="12" { (max) }
            text x="0" y=(h) font-size="12" { "0" }
            @for (x, y, bh, k, n, d) in &segs {
                rect x=(x) y=(y) width=(col.saturating_sub(1).max(1)) height=(bh) fill=(COLORS[*k]) {
                    title { (d) " " (SEVERITIES[*k].as_str()) ": " (n) }
                }
            }
            text x="45" y=(h + 16) font-size="12" { (first) }
            @if points.len() > 1 {
                text x=(w.saturating_sub(70)) y=(h + 16) font-size="12" { (last) }
            }
        }
        details {
            summary { "The numbers" }
            table #trend-table {
                tr { th { "Day" } th { "Images" } @for s in SEVERITIES.iter() { th { (s.as_str()) } } }
                @for p in points.iter().rev() {
                    tr { td { (day(p.day)) } td { (p.images) } @for n in p.by_severity { td { (n) } } }
                }
            }
        }
    }
}

/// One stacked bar per value of a label (the first 20), of its images' findings by
/// severity; the table beside it has the numbers.
pub fn group_bars(key: &str, groups: &[crate::fleet::Group]) -> Markup {
    let max = tallest(groups.iter().map(|g| &g.by_severity));
    let (row, w) = (24usize, 520usize);
    let shown: Vec<_> = groups.iter().take(20).collect();
    // (x, y, width, colour index, count) of every segment.
    let mut segs = Vec::new();
    for (i, g) in shown.iter().enumerate() {
        let mut x = 140;
        for (k, n) in g.by_severity.iter().enumerate() {
            let bw = n * 300 / max;
            if bw > 0 {
                segs.push((x, i * row + 5, bw, k, *n));
                x += bw;
            }
        }
    }
    html! {
        svg class="chart" #group-chart role="img" aria-label=(format!("Findings by {key}: the table below has the numbers"))
            width=(w) height=(shown.len() * row + 4) viewBox=(format!("0 0 {w} {}", shown.len() * row + 4))
            xmlns="http://www.w3.org/2000/svg" {
            @for (x, y, bw, k, n) in &segs {
                rect x=(x) y=(y) width=(bw) height=(row - 8) fill=(COLORS[*k]) {
                    title { (SEVERITIES[*k].as_str()) ": " (n) }
                }
            }
            @for (i, g) in shown.iter().enumerate() {
                @let total = g.by_severity.iter().sum::<usize>();
                text x="0" y=(i * row + 18) font-size="12" { (g.value.clone().unwrap_or_else(|| "(none)".into())) }
                text x=(145 + total * 300 / max) y=(i * row + 18) font-size="12" { (total) }
            }
        }
    }
}
