//! Launchers for shaders/conv2d_implicit_gemm.wgsl: convolution and its backward passes as
//! register-tiled GEMMs that gather their operands from the tensors, never materialising an
//! im2col buffer. The path for large inputs and grouped convolutions, and the one that can
//! write into a channel slice of a concatenation.

use super::{Backward, Forward, Params, params};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::reduce;
use crate::kernels::{Launch, as_u32};
use crate::shaders::{Entry, Kernel, Shader, WorkgroupSize, entries};
use crate::tensor::Tensor;

/// Channels per invocation: 8 ran ResNet-50's 3×3 convolutions at 2.8–3.4 GFLOP/s on lavapipe,
/// 4 at 2.2–2.8 (more FMAs per gathered value).
const CHANNEL_TILE: u32 = 8;
/// The weight gradient's (n, p) sum is split so that at least this many invocations run...
const MIN_WEIGHT_INVOCATIONS: usize = 4096;
/// ...but no chunk is shorter than this, where partials would cost more than they save.
const MIN_CHUNK: usize = 256;

entries! {
    entries for Shader::Conv2dImplicitGemm, Params;
    bindings { x: read 1, weight: read 2, bias: read 3, grad_out: read 4, out: read_write 5 }
    CONV2D_IMPLICIT = "conv2d_implicit", WorkgroupSize::Override(64), [x, weight, bias, out];
    CONV2D_BACKWARD_INPUT_IMPLICIT = "conv2d_backward_input_implicit",
        WorkgroupSize::Override(64), [weight, grad_out, out];
    CONV2D_BACKWARD_WEIGHT_IMPLICIT = "conv2d_backward_weight_implicit",
        WorkgroupSize::Override(64), [x, grad_out, out];
}

/// Forward into channels `out_first ..` of `out` ([N, out_total, OH, OW]); `out` must already
/// have that shape (the caller validated it). A zero-sized output is left untouched.
pub(crate) fn forward_into(pass: &Forward, out: &Tensor, out_first: usize) -> Result<()> {
    let (x, weight, bias, shapes) = (pass.x, pass.weight, pass.bias, &pass.shapes);
    let conv = &shapes.conv;
    const OP: &str = "conv2d";
    let mut params = params(OP, shapes)?;
    params.has_bias = u32::from(bias.is_some());
    params.out_total = as_u32(OP, "output channels", out.dims()[1])?;
    params.out_first = as_u32(OP, "output channel offset", out_first)?;
    let [n, _, oh, ow] = shapes.output;
    let channel_blocks = channel_blocks(shapes.weight[0], conv.groups);
    let pixel_quads = n * (oh * ow).div_ceil(4);
    if pixel_quads == 0 || channel_blocks == 0 {
        return Ok(());
    }
    // conv2d_shapes refuses C_in = 0, so with a non-empty output every operand is bound.
    // Without a bias the shader never reads binding 3, but it is statically used: bind the
    // weight there.
    let entry = &CONV2D_IMPLICIT;
    Launch::of(x.gpu(), kernel(entry), params)
        .bind(1, x)
        .bind(2, weight)
        .bind(3, bias.unwrap_or(weight))
        .bind(5, out)
        .flops(params.flops())
        .on(grid(x.gpu(), entry, pixel_quads, channel_blocks)?)
}

/// The gradient to the input, into a fresh tensor of `shapes.input`.
pub(crate) fn backward_input(pass: &Backward) -> Result<Tensor> {
    let (weight, grad_out, shapes) = (pass.weight, pass.grad_out, &pass.shapes);
    let conv = &shapes.conv;
    const OP: &str = "conv2d_backward_input";
    let [n, c_in, h, w] = shapes.input;
    let channel_blocks = channel_blocks(c_in, conv.groups);
    let pixel_quads = n * (h * w).div_ceil(4);
    let gpu = grad_out.gpu();
    if weight.numel() == 0 || grad_out.numel() == 0 {
        // No output channels (or no samples): nothing flows back.
        return Tensor::zeros(gpu, shapes.input);
    }
    let grad_x = Tensor::empty(gpu, shapes.input)?;
    let params = params(OP, shapes)?;
    let entry = &CONV2D_BACKWARD_INPUT_IMPLICIT;
    Launch::of(gpu, kernel(entry), params)
        .bind(2, weight)
        .bind(4, grad_out)
        .bind(5, &grad_x)
        .flops(params.flops())
        .on(grid(gpu, entry, pixel_quads, channel_blocks)?)?;
    Ok(grad_x)
}

/// The gradient to the weight, into a fresh tensor of `shapes.weight`: partial sums over
/// chunks of (n, p), then their sum.
pub(crate) fn backward_weight(pass: &Backward) -> Result<Tensor> {
    let (x, grad_out, shapes) = (pass.x, pass.grad_out, &pass.shapes);
    let conv = &shapes.conv;
    const OP: &str = "conv2d_backward_weight";
    let gpu = x.gpu();
    let [c_out, per_group_in, kh, kw] = shapes.weight;
    let [n, _, oh, ow] = shapes.output;
    let k_total = per_group_in * kh * kw;
    let total = n * oh * ow;
    let channel_blocks = channel_blocks(c_out, conv.groups);
    let tap_quads = k_total.div_ceil(4);
    if x.numel() == 0 || grad_out.numel() == 0 {
        // Nothing to sum over (or nothing to sum into): the gradient is zero.
        return Tensor::zeros(gpu, shapes.weight);
    }
    let invocations = channel_blocks * tap_quads;
    let wanted_chunks = MIN_WEIGHT_INVOCATIONS.div_ceil(invocations.max(1));
    let chunk = total.div_ceil(wanted_chunks).max(MIN_CHUNK).min(total);
    let chunks = total.div_ceil(chunk);
    let partial = Tensor::empty(gpu, [chunks, c_out, k_total])?;
    if partial.numel() == 0 {
        return Tensor::zeros(gpu, shapes.weight);
    }
    let mut params = params(OP, shapes)?;
    params.chunk = as_u32(OP, "chunk", chunk)?;
    let max = gpu.max_workgroups_per_dimension() as usize;
    let workgroups = [
        tap_quads.div_ceil(CONV2D_BACKWARD_WEIGHT_IMPLICIT.invocations() as usize),
        channel_blocks,
        chunks,
    ];
    if workgroups.iter().any(|&count| count > max) {
        return Err(Error::invalid(
            OP,
            format!("{workgroups:?} workgroups exceed the adapter's {max} per dimension"),
        ));
    }
    Launch::of(gpu, kernel(&CONV2D_BACKWARD_WEIGHT_IMPLICIT), params)
        .bind(1, x)
        .bind(4, grad_out)
        .bind(5, &partial)
        .flops(params.flops())
        .on(workgroups.map(|count| count as u32))?;
    let summed = if chunks == 1 {
        partial
    } else {
        reduce::sum(&partial, &[0], false)?
    };
    summed.reshape(shapes.weight)
}

/// Channel blocks over all groups: each block lies within one group.
fn channel_blocks(channels: usize, groups: usize) -> usize {
    groups * (channels / groups).div_ceil(CHANNEL_TILE as usize)
}

/// The workgroups of a launch whose x dimension runs over `items` work items (the entry's
/// workgroup size per workgroup), folded into z above the per-dimension limit, and whose y
/// dimension runs over `y` channel blocks.
fn grid(gpu: &Gpu, entry: &Entry<Params>, items: usize, y: usize) -> Result<[u32; 3]> {
    let max = gpu.max_workgroups_per_dimension() as usize;
    let groups = items.div_ceil(entry.invocations() as usize);
    let (x_count, z_count) = if groups <= max {
        (groups, 1)
    } else {
        (max, groups.div_ceil(max))
    };
    if y > max || z_count > max {
        return Err(Error::invalid(
            entry.name,
            format!("{groups}×{y} workgroups exceed the adapter's {max} per dimension"),
        ));
    }
    Ok([x_count as u32, y as u32, z_count as u32])
}

/// An entry point of conv2d_implicit_gemm.wgsl with this file's channel tile.
fn kernel(entry: &'static Entry<Params>) -> Kernel<Params> {
    entry
        .kernel()
        .with_override("CHANNEL_TILE", f64::from(CHANNEL_TILE))
}
