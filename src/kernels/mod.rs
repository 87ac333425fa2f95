//! Kernel launchers: one file per shader file. Each validates its arguments, allocates its
//! output, and records the dispatch; none waits for the GPU.

pub mod batchnorm;
pub mod concat;
pub mod conv2d;
mod conv2d_implicit;
mod conv2d_winograd;
pub mod elementwise;
pub mod fill;
pub mod finite;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod softmax;
pub mod transpose;
pub mod tuning;

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Workgroup counts for `count` workgroups of a 1-D kernel: a single row while the device's
/// per-dimension limit allows, otherwise a 2-D grid of full rows (the shaders compute the linear
/// index as wid.y · num_workgroups.x + wid.x and skip the surplus).
pub(crate) fn grid_1d(gpu: &Gpu, count: u64) -> [u32; 3] {
    let max = u64::from(gpu.max_workgroups_per_dimension());
    if count <= max {
        return [count as u32, 1, 1];
    }
    [max as u32, count.div_ceil(max) as u32, 1]
}

/// An element count as the u32 the shaders index with.
pub(crate) fn as_u32(op: &'static str, what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| {
        Error::invalid(
            op,
            format!("{what} = {value} exceeds the 32-bit index range"),
        )
    })
}
