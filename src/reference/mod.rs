//! Plain-Rust CPU versions of every kernel: the oracle every GPU test compares against.
//! Written for obviousness, not speed; sums accumulate in f64.

pub mod attribution;
pub mod batchnorm;
pub mod cam;
pub mod concat;
pub mod conv2d;
pub mod elementwise;
pub mod fill;
pub mod finite;
pub mod gradcheck;
pub mod loss;
pub mod matmul;
pub mod occlusion;
pub mod optim;
pub mod perturbation;
pub mod pool;
pub mod reduce;
pub mod roofline;
pub mod score_cam;
pub mod softmax;
pub mod transpose;

use std::ops::{Add, AddAssign, Div, Mul, Sub};

/// The float types references run in: f32 to compare with the GPU, f64 for gradient checks.
pub trait Real:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + AddAssign
    + std::fmt::Debug
{
    fn zero() -> Self;
    fn from_f64(value: f64) -> Self;
    fn to_f64(self) -> f64;
    fn is_nan(self) -> bool;
}

impl Real for f32 {
    fn zero() -> Self {
        0.0
    }
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Real for f64 {
    fn zero() -> Self {
        0.0
    }
    fn from_f64(value: f64) -> Self {
        value
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}
