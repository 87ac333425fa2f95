//! Image bytes → imaging::decode → Preprocess::apply. The first three bytes choose the
//! channels and the sizing (robustness::preprocess_from_bytes); the rest is the image. The
//! properties are in tests/robustness/mod.rs, shared with tests/properties.rs.
#![no_main]

#[path = "../../tests/robustness/mod.rs"]
mod robustness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let (preprocess, image) = robustness::preprocess_from_bytes(bytes);
    robustness::image_preprocess(&preprocess, image);
});
