//! The direct kernels (shaders/conv2d.wgsl): one invocation per output value, the simplest
//! correct variant, kept as the reference the faster ones are measured against.

use super::{Backward, Forward, Params, params};
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

pub(super) fn forward(pass: &Forward) -> Result<Tensor> {
    let mut params = params("conv2d", &pass.shapes)?;
    params.has_bias = u32::from(pass.bias.is_some());
    // Without a bias the kernel still needs something bound there; it never reads it.
    let bias = pass.bias.unwrap_or(pass.weight);
    let inputs = [(1, pass.x), (2, pass.weight), (3, bias)];
    launch(&CONV2D_DIRECT, &params, &inputs, pass.shapes.output)
}

pub(super) fn backward_input(pass: &Backward) -> Result<Tensor> {
    let entry = &CONV2D_BACKWARD_INPUT_DIRECT;
    let params = params("conv2d_backward_input", &pass.shapes)?;
    let inputs = [(2, pass.weight), (4, pass.grad_out)];
    launch(entry, &params, &inputs, pass.shapes.input)
}

pub(super) fn backward_weight(pass: &Backward) -> Result<Tensor> {
    let entry = &CONV2D_BACKWARD_WEIGHT_DIRECT;
    let params = params("conv2d_backward_weight", &pass.shapes)?;
    let inputs = [(1, pass.x), (4, pass.grad_out)];
    launch(entry, &params, &inputs, pass.shapes.weight)
}

/// Runs the direct kernel `entry` reading `inputs` (by binding slot) into a fresh tensor of
/// `dims`; an empty input (a zero channel count) leaves an output of zeros.
fn launch(
    entry: &'static Entry<Params>,
    params: &Params,
    inputs: &[(u32, &Tensor)],
    dims: [usize; 4],
) -> Result<Tensor> {
    let gpu = inputs[0].1.gpu();
    if inputs.iter().any(|(_, tensor)| tensor.numel() == 0) {
        return Tensor::zeros(gpu, dims);
    }
    let out = Tensor::empty(gpu, dims)?;
    let mut launch = Launch::new(gpu, entry, *params)
        .bind(5, &out)
        .flops(params.flops());
    for &(slot, tensor) in inputs {
        launch = launch.bind(slot, tensor);
    }
    launch.over(out.numel() as u64)?;
    Ok(out)
}
