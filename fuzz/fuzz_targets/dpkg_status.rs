//! dpkg status files (deb822 stanzas, version checks, Source parsing).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = coldpatch_collector::analyzers::dpkg::parse_status(data, "/var/lib/dpkg/status", false);
    let _ = coldpatch_collector::analyzers::dpkg::parse_status(data, "/var/lib/dpkg/status.d/x", true);
});
