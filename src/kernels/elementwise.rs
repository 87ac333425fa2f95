//! Launchers for shaders/elementwise.wgsl: same-shape element-by-element arithmetic.

use bytemuck::{Pod, Zeroable};

use super::{as_u32, grid_1d};
use crate::error::Result;
use crate::shaders::{Kernel, Shader};
use crate::tensor::Tensor;

const WORKGROUP_SIZE: u64 = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    len: u32,
    alpha: f32,
}

/// out = a + b
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary("add", a, b)
}

/// out = a - b
pub fn sub(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary("sub", a, b)
}

/// out = a * b
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary("mul", a, b)
}

/// out = alpha * a
pub fn scale(a: &Tensor, alpha: f32) -> Result<Tensor> {
    launch("scale", a, None, alpha)
}

/// out = max(a, 0), with NaN passed through as torch.relu does.
pub fn relu(a: &Tensor) -> Result<Tensor> {
    launch("relu", a, None, 0.0)
}

/// The gradient of relu: `grad` where the forward `input` was positive, else 0.
pub fn relu_backward(input: &Tensor, grad: &Tensor) -> Result<Tensor> {
    binary("relu_backward", input, grad)
}

fn binary(entry: &'static str, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.expect_same_shape(b, entry)?;
    launch(entry, a, Some(b), 0.0)
}

fn launch(entry: &'static str, a: &Tensor, b: Option<&Tensor>, alpha: f32) -> Result<Tensor> {
    let gpu = a.gpu();
    let out = Tensor::empty(gpu, a.shape().clone())?;
    let (Some(a_range), Some(out_range)) = (a.binding(), out.binding()) else {
        return Ok(out); // no elements
    };
    let mut storage = vec![(1, a_range), (3, out_range)];
    if let Some(b_range) = b.and_then(Tensor::binding) {
        storage.push((2, b_range));
    }
    let params = Params {
        len: as_u32(entry, "element count", a.numel())?,
        alpha,
    };
    gpu.dispatch(
        &Kernel::new(Shader::Elementwise, entry),
        &params,
        &storage,
        grid_1d(gpu, (a.numel() as u64).div_ceil(WORKGROUP_SIZE)),
    )?;
    Ok(out)
}
