//! DICOM bytes → imaging::decode_with. The first byte chooses the channels, the window and the
//! frame (robustness::dicom_decode); the rest is the file. The properties are in
//! tests/robustness/mod.rs, shared with tests/properties.rs; tests/fixtures/dicom seeds the
//! corpus.
#![no_main]

#[path = "../../tests/robustness/mod.rs"]
mod robustness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    robustness::dicom_decode(bytes);
});
