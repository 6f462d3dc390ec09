//! Rendering for the terminal: aligned tables, sizes, whole error chains.

use std::io::Write;

/// `println!` that returns an error instead of panicking when stdout is closed, and
/// escapes control characters (guest strings and paths fill these lines; see
/// `coldpatch_catalog::text`): one call is one line.
#[macro_export]
macro_rules! outln {
    () => {{
        use std::io::Write as _;
        writeln!(std::io::stdout())
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(
            std::io::stdout(),
            "{}",
            coldpatch_catalog::text::clean(&format!($($arg)*))
        )
    }};
}

/// True for an error caused by the reader of our output going away (`| head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// "a: b: c" from an error and its sources, control characters escaped.
pub fn chain(e: &anyhow::Error) -> String {
    coldpatch_catalog::text::cleaned(&format!("{e:#}"))
}

/// Prints rows as aligned columns (elastic tabstops).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut tw = tabwriter::TabWriter::new(std::io::stdout().lock()).padding(2);
    writeln!(tw, "{}", header.join("\t"))?;
    for r in rows {
        let cells: Vec<_> = r
            .iter()
            .map(|c| coldpatch_catalog::text::clean(c))
            .collect();
        writeln!(tw, "{}", cells.join("\t"))?;
    }
    tw.flush()?;
    Ok(())
}

/// A list command's output: the items as JSON, or one table row per item.
pub fn list<T: serde::Serialize>(
    json_out: bool,
    items: &[T],
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if json_out {
        json(&items)
    } else {
        table(header, &items.iter().map(row).collect::<Vec<_>>())
    }
}

/// Writes `v` as pretty JSON. Encoded first, then written: a reader that goes away is
/// then an `io::Error` of kind `BrokenPipe` (which `main` ends on quietly), not a
/// `serde_json::Error` that hides it.
pub fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_vec_pretty(v)?;
    text.push(b'\n');
    std::io::stdout().lock().write_all(&text)?;
    Ok(())
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn time(secs: u64) -> String {
    coldpatch_catalog::clock::rfc3339(secs)
}
