//! A lab file from arbitrary text: validation (checks, questions, matchers,
//! regexes, expressions) never panics; a lab that loads evaluates its checks
//! on an empty trace without panicking either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("applab-fuzz-lab-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    if std::fs::write(dir.join("lab.toml"), text).is_err() {
        return;
    }
    let Ok(lab) = applab_lab::Lab::load(&dir) else {
        return;
    };
    let params: BTreeMap<String, String> = applab_lab::params::for_student(&lab, b"fuzz", "s1");
    let probes = applab_checks::Probes::new();
    let input = applab_checks::Input {
        lab: &lab,
        params: &params,
        events: &[],
        probes: &probes,
        answers: &[],
    };
    let _ = applab_checks::evaluate(&input);
});
