//! Plain-Rust CPU versions of every kernel: the oracle every GPU test compares against.
//! Written for obviousness, not speed; sums accumulate in f64.

pub mod elementwise;
pub mod matmul;
pub mod reduce;
pub mod softmax;
