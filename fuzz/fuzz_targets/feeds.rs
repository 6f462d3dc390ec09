//! The feed readers: one OSV record, the Debian tracker document, an Alpine secdb in
//! JSON and in YAML.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = coldpatch_vuln::osv::parse(data);
    let _ = coldpatch_vuln::debian::parse(data, "fuzz.json");
    if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = coldpatch_vuln::secdb::parse(doc, "fuzz.json");
    }
    if let Ok(doc) = coldpatch_vuln::secdb::yaml_to_json(data) {
        let _ = coldpatch_vuln::secdb::parse(doc, "fuzz.yaml");
    }
});
