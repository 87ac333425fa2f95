//! `gradlens run`'s input file up to the GPU: WeightsFile::from_bytes → validate::run_input.
//! The properties are in tests/robustness/mod.rs, shared with tests/properties.rs.
#![no_main]

#[path = "../../tests/robustness/mod.rs"]
mod robustness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| robustness::run_input(bytes));
