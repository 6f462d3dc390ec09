//! SVG charts drawn on the server (no script): the severity breakdown and findings over
//! an image's versions. Text in them goes through maud, so it is escaped like the rest.

use maud::{html, Markup};

use crate::fleet::SEVERITIES;

pub const COLORS: [&str; 6] = [
    "#8b0000", "#d9480f", "#f59f00", "#2b8a3e", "#868e96", "#adb5bd",
];

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
    let max = points
        .iter()
        .map(|(_, c)| c.iter().sum::<usize>())
        .max()
        .unwrap_or(0)
        .max(1);
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
