//! `gradlens run --train`'s labels file: bytes → validate::run_labels. The properties are in
//! tests/robustness/mod.rs, shared with tests/properties.rs.
#![no_main]

#[path = "../../tests/robustness/mod.rs"]
mod robustness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| robustness::run_labels(bytes));
