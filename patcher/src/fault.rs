//! Fault injection for the tests that kill a patch run at a chosen point. Compiled only
//! with the `fault-injection` feature (the test suite enables it): in a normal build the
//! hooks are empty and `COLDPATCH_FAULT` means nothing.
//!
//! `COLDPATCH_FAULT=<point>` ends the process abruptly (no destructors, no cleanup: as a
//! kill would) at that point: `upload` after the first file is in the guest, `commit`
//! after verification, before the commit; `replay` as the replays start (a reference
//! patched and its change set read, nothing replayed yet); `dpkg` one second into the
//! guest's first package-tool run (or as it returns, if it was quicker).

#[cfg(feature = "fault-injection")]
mod enabled {
    fn set(point: &str) -> bool {
        std::env::var("COLDPATCH_FAULT").as_deref() == Ok(point)
    }

    fn die(point: &str) -> ! {
        eprintln!("coldpatch: fault injection: killed {point}");
        std::process::abort();
    }

    pub fn at(point: &str) {
        if set(point) {
            die(&format!("at {point}"));
        }
    }

    pub fn during_tool(done: bool) {
        if !set("dpkg") {
            return;
        }
        if done {
            die("as dpkg returned");
        }
        std::thread::spawn(|| {
            std::thread::sleep(std::time::Duration::from_secs(1));
            die("during dpkg");
        });
    }
}

#[cfg(feature = "fault-injection")]
pub use enabled::{at, during_tool};

/// Ends the process at `point` if the test asked for it.
#[cfg(not(feature = "fault-injection"))]
pub fn at(_point: &str) {}

/// Around the guest's package tool: `done` is false as it starts, true when it returned.
#[cfg(not(feature = "fault-injection"))]
pub fn during_tool(_done: bool) {}
