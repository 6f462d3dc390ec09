//! Failed logins and bad tokens, per client address: counted, logged within bounds, and
//! throttled.
//!
//! An address that fails [`MAX_FAILURES`] times within [`WINDOW`] is refused (429, with
//! `Retry-After`) until that window has passed, even with a good token, so guessing is
//! slow and a good guess is not even checked. Each failure is logged (`auth: …`) until an
//! address has [`LOGGED_PER_WINDOW`] lines in its window; then one line says the rest of
//! that window is not logged, so a flood cannot fill the log. At most [`MAX_ADDRESSES`]
//! addresses are tracked; when full, the entry whose window ends first is dropped.
//!
//! Written here rather than taken from a rate-limiting crate: those (actix-governor and
//! the like) limit every request per key, where this counts only failures and must be
//! consulted by the authentication itself.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(60);
pub const MAX_FAILURES: u32 = 10;
pub const LOGGED_PER_WINDOW: u32 = 5;
pub const MAX_ADDRESSES: usize = 10_000;

struct Entry {
    since: Instant,
    failures: u32,
}

#[derive(Default)]
pub struct Throttle {
    map: Mutex<HashMap<IpAddr, Entry>>,
}

impl Throttle {
    /// `Err(seconds to wait)` while `addr` is throttled.
    pub fn check(&self, addr: IpAddr) -> Result<(), u64> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&addr) {
            Some(e) if e.failures >= MAX_FAILURES && e.since.elapsed() < WINDOW => {
                Err((WINDOW - e.since.elapsed()).as_secs() + 1)
            }
            _ => Ok(()),
        }
    }

    /// Counts one failure of `addr` (`what`: "login", "token") and logs it within bounds.
    pub fn failed(&self, addr: IpAddr, what: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&addr) {
            map.retain(|_, e| now.duration_since(e.since) < WINDOW);
            if map.len() >= MAX_ADDRESSES {
                if let Some(k) = map.iter().min_by_key(|(_, e)| e.since).map(|(k, _)| *k) {
                    map.remove(&k);
                }
            }
        }
        let e = map.entry(addr).or_insert(Entry {
            since: now,
            failures: 0,
        });
        if now.duration_since(e.since) >= WINDOW {
            *e = Entry {
                since: now,
                failures: 0,
            };
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures <= LOGGED_PER_WINDOW {
            eprintln!(
                "auth: failed {what} from {addr} ({} in the last {} s{})",
                e.failures,
                WINDOW.as_secs(),
                if e.failures >= MAX_FAILURES {
                    "; throttled"
                } else {
                    ""
                }
            );
        } else if e.failures == LOGGED_PER_WINDOW + 1 {
            eprintln!(
                "auth: more failures from {addr}; not logged for the rest of its {} s window \
                 (throttled from {MAX_FAILURES} on)",
                WINDOW.as_secs()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_throttled_after_its_failures_and_others_are_not() {
        let t = Throttle::default();
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        for _ in 0..MAX_FAILURES - 1 {
            t.failed(a, "login");
        }
        assert!(t.check(a).is_ok());
        t.failed(a, "login");
        let wait = t.check(a).expect_err("throttled");
        assert!((1..=WINDOW.as_secs() + 1).contains(&wait), "{wait}");
        assert!(t.check(b).is_ok());
    }
}
