//! Launchers for shaders/softmax.wgsl: softmax and log-softmax over the last axis.

use super::{Launch, as_u32, grid_1d};
use crate::error::{Error, Result};
use crate::shaders::{Entry, Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;

uniform_params! {
    struct Params {
        rows: u32, cols: u32,
    }
}

// One workgroup per row.
entries! {
    entries for Shader::Softmax, Params;
    bindings { x: read 1, out: read_write 2, grad_out: read 3 }
    SOFTMAX = "softmax", WorkgroupSize::Override(64), [x, out];
    LOG_SOFTMAX = "log_softmax", WorkgroupSize::Override(64), [x, out];
    SOFTMAX_BACKWARD = "softmax_backward", WorkgroupSize::Override(64), [x, out, grad_out];
    LOG_SOFTMAX_BACKWARD = "log_softmax_backward", WorkgroupSize::Override(64), [x, out, grad_out];
}

/// exp(x) / sum(exp(x)) along the last axis.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    launch(&SOFTMAX, x)
}

/// x - log(sum(exp(x))) along the last axis, computed stably.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    launch(&LOG_SOFTMAX, x)
}

/// The gradient of `softmax` from its output `y` and the output gradient.
pub fn softmax_backward(y: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
    y.expect_same_shape(grad_out, "softmax_backward")?;
    launch_with(&SOFTMAX_BACKWARD, y, Some(grad_out))
}

/// The gradient of `log_softmax` from its output `y` and the output gradient.
pub fn log_softmax_backward(y: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
    y.expect_same_shape(grad_out, "log_softmax_backward")?;
    launch_with(&LOG_SOFTMAX_BACKWARD, y, Some(grad_out))
}

fn launch(entry: &'static Entry<Params>, x: &Tensor) -> Result<Tensor> {
    launch_with(entry, x, None)
}

fn launch_with(
    entry: &'static Entry<Params>,
    x: &Tensor,
    grad_out: Option<&Tensor>,
) -> Result<Tensor> {
    let op = entry.name;
    let Some(&cols) = x.dims().last() else {
        return Err(Error::invalid(
            op,
            "needs a tensor of rank 1 or more, got a scalar",
        ));
    };
    let gpu = x.gpu();
    let out = Tensor::empty(gpu, x.shape().clone())?;
    if x.numel() == 0 {
        return Ok(out);
    }
    let rows = x.numel() / cols;
    let params = Params {
        rows: as_u32(op, "rows", rows)?,
        cols: as_u32(op, "cols", cols)?,
    };
    let mut launch = Launch::new(gpu, entry, params).bind(1, x).bind(2, &out);
    if let Some(grad_out) = grad_out {
        launch = launch.bind(3, grad_out);
    }
    // One workgroup per row.
    launch.on(grid_1d(gpu, rows as u64))?;
    Ok(out)
}
