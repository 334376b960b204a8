//! Config text → `Config::parse`: Ok, or errors that each say where (file, line ≥ 1) and
//! what; never a panic, never a hang (tests/fuzz.sh runs libFuzzer with `-timeout`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use uaedge::config::Config;

const FILE: &str = "fuzz.yaml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = Config::parse(FILE, text) {
        assert!(!errors.0.is_empty(), "Err without an error");
        for e in &errors.0 {
            assert_eq!(e.file, FILE, "{e}");
            assert!(e.line >= 1, "error without a line: {e}");
            assert!(!e.message.is_empty(), "error without a message at {e}");
        }
    }
});
