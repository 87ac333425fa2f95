//! Random conv2d and pooling arguments → conv2d_shapes and Pool2d::output_size, checked
//! against PyTorch's shape formulas written independently in tests/robustness/mod.rs. The
//! first 16 bytes are a convolution, the next 9 a pooling.
#![no_main]

#[path = "../../tests/robustness/mod.rs"]
mod robustness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    robustness::check_conv(&robustness::conv_from_bytes(bytes));
    robustness::check_pool(&robustness::pool_from_bytes(
        bytes.get(16..).unwrap_or_default(),
    ));
});
