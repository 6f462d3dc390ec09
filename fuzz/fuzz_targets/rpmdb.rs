//! rpm BerkeleyDB and NDB databases and header blobs. (SQLite files are left to SQLite's own
//! fuzzing: they are only ever opened read-only in defensive mode.)
#![no_main]

use coldpatch_collector::analyzers::rpm::{bdb, header, ndb};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = header::parse(data);
    if let Ok(values) = bdb::values(data) {
        for v in values {
            let _ = header::parse(&v);
        }
    }
    if let Ok(values) = ndb::values(data) {
        for v in values {
            let _ = header::parse(&v);
        }
    }
});
