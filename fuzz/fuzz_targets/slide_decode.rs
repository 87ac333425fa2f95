//! Tiled TIFF bytes → imaging::slide::Slide: opened, its levels' corner regions and its
//! thumbnail read (robustness::slide_decode). The properties are in tests/robustness/mod.rs,
//! shared with tests/properties.rs; small slides from `gradlens synthetic-slide` and
//! tests/fixtures/slide seed the corpus.
#![no_main]

#[path = "../../tests/robustness/mod.rs"]
mod robustness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    robustness::slide_decode(bytes);
});
