//! apk's installed database.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = coldpatch_collector::analyzers::apk::parse_installed(data, "/lib/apk/db/installed");
});
