//! The time as the catalog records it: seconds (records) and milliseconds (events)
//! since the Unix epoch. Every crate takes "now" from here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch (0 for a clock set before 1970).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Seconds since the epoch as RFC 3339 (`2026-12-01T09:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
}
