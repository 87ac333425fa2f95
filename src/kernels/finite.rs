//! Launcher for shaders/finite.wgsl: `--check-finite`'s flag of a tensor holding NaN or Inf.

use bytemuck::{Pod, Zeroable};

use super::{as_u32, grid_1d};
use crate::error::Result;
use crate::shaders::{Kernel, Shader};
use crate::tensor::Tensor;

const WORKGROUP_SIZE: u64 = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    count: u32,
    slot: u32,
}

/// Flags `x` if it holds NaN or Inf, when the context's finite checks are on (see
/// `Gpu::start_finite_checks`); records nothing otherwise. `what`: "output" or "gradient".
pub fn check_finite(x: &Tensor, what: &'static str) -> Result<()> {
    let Some(x_range) = x.binding() else {
        return Ok(());
    };
    let gpu = x.gpu();
    let Some((flags, slot)) = gpu.finite_check_slot(what)? else {
        return Ok(());
    };
    let params = Params {
        count: as_u32("check_finite", "element count", x.numel())?,
        slot,
    };
    gpu.dispatch(
        &Kernel::new(Shader::Finite, "flag_non_finite"),
        &params,
        &[(1, x_range), (2, flags)],
        grid_1d(gpu, (x.numel() as u64).div_ceil(WORKGROUP_SIZE)),
    )
}
