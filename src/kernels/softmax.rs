//! Launchers for shaders/softmax.wgsl: softmax and log-softmax over the last axis.

use bytemuck::{Pod, Zeroable};

use super::{as_u32, grid_1d};
use crate::error::{Error, Result};
use crate::shaders::{Kernel, Shader};
use crate::tensor::Tensor;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
}

/// exp(x) / sum(exp(x)) along the last axis.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    launch("softmax", x)
}

/// x - log(sum(exp(x))) along the last axis, computed stably.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    launch("log_softmax", x)
}

/// The gradient of `softmax` from its output `y` and the output gradient.
pub fn softmax_backward(y: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
    y.expect_same_shape(grad_out, "softmax_backward")?;
    launch_with("softmax_backward", y, Some(grad_out))
}

/// The gradient of `log_softmax` from its output `y` and the output gradient.
pub fn log_softmax_backward(y: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
    y.expect_same_shape(grad_out, "log_softmax_backward")?;
    launch_with("log_softmax_backward", y, Some(grad_out))
}

fn launch(entry: &'static str, x: &Tensor) -> Result<Tensor> {
    launch_with(entry, x, None)
}

fn launch_with(entry: &'static str, x: &Tensor, grad_out: Option<&Tensor>) -> Result<Tensor> {
    let Some(&cols) = x.dims().last() else {
        return Err(Error::invalid(
            entry,
            "needs a tensor of rank 1 or more, got a scalar",
        ));
    };
    let gpu = x.gpu();
    let out = Tensor::empty(gpu, x.shape().clone())?;
    let (Some(x_range), Some(out_range)) = (x.binding(), out.binding()) else {
        return Ok(out);
    };
    let rows = x.numel() / cols;
    let params = Params {
        rows: as_u32(entry, "rows", rows)?,
        cols: as_u32(entry, "cols", cols)?,
    };
    let mut storage = vec![(1, x_range), (2, out_range)];
    if let Some(grad_range) = grad_out.and_then(Tensor::binding) {
        storage.push((3, grad_range));
    }
    gpu.dispatch(
        &Kernel::new(Shader::Softmax, entry),
        &params,
        &storage,
        grid_1d(gpu, rows as u64),
    )?;
    Ok(out)
}
