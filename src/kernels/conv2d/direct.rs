//! The direct kernels (shaders/conv2d.wgsl): one invocation per output value, the simplest
//! correct variant, kept as the reference the faster ones are measured against.

use super::{ConvShapes, Params, params};
use crate::error::Result;
use crate::kernels::Launch;
use crate::shaders::{Entry, Shader, WorkgroupSize, entries};
use crate::tensor::Tensor;

// One invocation per output element, writing `out` (5).
entries! {
    entries for Shader::Conv2d, Params;
    bindings { x: read 1, weight: read 2, bias: read 3, grad_out: read 4, out: read_write 5 }
    CONV2D_DIRECT = "conv2d_direct", WorkgroupSize::Override(256), [x, weight, bias, out];
    CONV2D_BACKWARD_INPUT_DIRECT = "conv2d_backward_input_direct", WorkgroupSize::Override(256),
        [weight, grad_out, out];
    CONV2D_BACKWARD_WEIGHT_DIRECT = "conv2d_backward_weight_direct", WorkgroupSize::Override(256),
        [x, grad_out, out];
}

pub(super) fn forward(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    shapes: &ConvShapes,
) -> Result<Tensor> {
    let out = Tensor::empty(x.gpu(), shapes.output)?;
    let mut params = params("conv2d", shapes)?;
    params.has_bias = u32::from(bias.is_some());
    // Without a bias the kernel still needs something bound there; it never reads it.
    let bias = bias.unwrap_or(weight);
    launch(
        &CONV2D_DIRECT,
        &params,
        &[(1, x), (2, weight), (3, bias)],
        &out,
    )?;
    Ok(out)
}

pub(super) fn backward_input(
    weight: &Tensor,
    grad_out: &Tensor,
    shapes: &ConvShapes,
) -> Result<Tensor> {
    let grad_x = Tensor::empty(grad_out.gpu(), shapes.input)?;
    launch(
        &CONV2D_BACKWARD_INPUT_DIRECT,
        &params("conv2d_backward_input", shapes)?,
        &[(2, weight), (4, grad_out)],
        &grad_x,
    )?;
    Ok(grad_x)
}

pub(super) fn backward_weight(
    x: &Tensor,
    grad_out: &Tensor,
    shapes: &ConvShapes,
) -> Result<Tensor> {
    let grad_weight = Tensor::empty(x.gpu(), shapes.weight)?;
    launch(
        &CONV2D_BACKWARD_WEIGHT_DIRECT,
        &params("conv2d_backward_weight", shapes)?,
        &[(1, x), (4, grad_out)],
        &grad_weight,
    )?;
    Ok(grad_weight)
}

/// Records the direct kernel `entry` reading `inputs` (by binding slot) and writing `out`;
/// an empty input (a zero channel count) leaves an output of zeros.
fn launch(
    entry: &'static Entry<Params>,
    params: &Params,
    inputs: &[(u32, &Tensor)],
    out: &Tensor,
) -> Result<()> {
    if inputs.iter().any(|(_, tensor)| tensor.numel() == 0) {
        return crate::kernels::fill::fill_into(out, 0.0);
    }
    let mut launch = Launch::new(out.gpu(), entry, *params)
        .bind(5, out)
        .flops(params.flops());
    for &(slot, tensor) in inputs {
        launch = launch.bind(slot, tensor);
    }
    launch.over(out.numel() as u64)
}
