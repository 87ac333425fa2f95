//! Safetensors bytes → WeightsFile::from_bytes → ModelInfo::from_file → validate::model_fits,
//! and check_fits against a small model of each family (shape-only stores: no GPU memory).
//! The properties are in tests/robustness/mod.rs, shared with tests/properties.rs.
#![no_main]

#[path = "../../tests/robustness/mod.rs"]
mod robustness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| robustness::weights_load(bytes));
