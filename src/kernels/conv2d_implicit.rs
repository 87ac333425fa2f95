//! Launchers for shaders/conv2d_implicit_gemm.wgsl: convolution and its backward passes as
//! register-tiled GEMMs that gather their operands from the tensors, never materialising an
//! im2col buffer. The path for large inputs and grouped convolutions, and the one that can
//! write into a channel slice of a concatenation.

use super::as_u32;
use super::conv2d::{Conv2d, ConvShapes, Params, params};
use crate::error::{Error, Result};
use crate::kernels::reduce;
use crate::shaders::{Binding, Entry, Kernel, Shader, WorkgroupSize, entries};
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
    CONV2D_IMPLICIT = "conv2d_implicit", WorkgroupSize::Override(64), [
        Binding::read(1, "x"),
        Binding::read(2, "weight"),
        Binding::read(3, "bias"),
        Binding::read_write(5, "out"),
    ];
    CONV2D_BACKWARD_INPUT_IMPLICIT = "conv2d_backward_input_implicit", WorkgroupSize::Override(64),
        [Binding::read(2, "weight"), Binding::read(4, "grad_out"), Binding::read_write(5, "out")];
    CONV2D_BACKWARD_WEIGHT_IMPLICIT = "conv2d_backward_weight_implicit",
        WorkgroupSize::Override(64),
        [Binding::read(1, "x"), Binding::read(4, "grad_out"), Binding::read_write(5, "out")];
}

/// Forward into channels `out_first ..` of `out` ([N, out_total, OH, OW]); `out` must already
/// have that shape (the caller validated it). A zero-sized output is left untouched.
pub(crate) fn forward_into(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    shapes: &ConvShapes,
    conv: &Conv2d,
    out: &Tensor,
    out_first: usize,
) -> Result<()> {
    const OP: &str = "conv2d";
    let mut params = params(OP, shapes, conv)?;
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
    let (Some(out_range), Some(x_range), Some(w_range)) =
        (out.binding(), x.binding(), weight.binding())
    else {
        return Ok(());
    };
    // Without a bias the shader never reads binding 3, but it is statically used: bind the
    // weight there.
    let bias_range = bias
        .and_then(Tensor::binding)
        .unwrap_or_else(|| w_range.clone());
    let storage = [(1, x_range), (2, w_range), (3, bias_range), (5, out_range)];
    dispatch(
        x,
        &CONV2D_IMPLICIT,
        &params,
        &storage,
        pixel_quads,
        channel_blocks,
    )
}

/// The gradient to the input, into a fresh tensor of `shapes.input`.
pub(crate) fn backward_input(
    weight: &Tensor,
    grad_out: &Tensor,
    shapes: &ConvShapes,
    conv: &Conv2d,
) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_input";
    let [n, c_in, h, w] = shapes.input;
    let channel_blocks = channel_blocks(c_in, conv.groups);
    let pixel_quads = n * (h * w).div_ceil(4);
    let (Some(w_range), Some(g_range)) = (weight.binding(), grad_out.binding()) else {
        // No output channels (or no samples): nothing flows back.
        return Tensor::zeros(grad_out.gpu(), shapes.input);
    };
    let grad_x = Tensor::empty(grad_out.gpu(), shapes.input)?;
    let Some(out_range) = grad_x.binding() else {
        return Ok(grad_x);
    };
    let storage = [(2, w_range), (4, g_range), (5, out_range)];
    let params = params(OP, shapes, conv)?;
    dispatch(
        grad_out,
        &CONV2D_BACKWARD_INPUT_IMPLICIT,
        &params,
        &storage,
        pixel_quads,
        channel_blocks,
    )?;
    Ok(grad_x)
}

/// The gradient to the weight, into a fresh tensor of `shapes.weight`: partial sums over
/// chunks of (n, p), then their sum.
pub(crate) fn backward_weight(
    x: &Tensor,
    grad_out: &Tensor,
    shapes: &ConvShapes,
    conv: &Conv2d,
) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_weight";
    let gpu = x.gpu();
    let [c_out, per_group_in, kh, kw] = shapes.weight;
    let [n, _, oh, ow] = shapes.output;
    let k_total = per_group_in * kh * kw;
    let total = n * oh * ow;
    let channel_blocks = channel_blocks(c_out, conv.groups);
    let tap_quads = k_total.div_ceil(4);
    let (Some(x_range), Some(g_range)) = (x.binding(), grad_out.binding()) else {
        // Nothing to sum over (or nothing to sum into): the gradient is zero.
        return Tensor::zeros(gpu, shapes.weight);
    };
    let invocations = channel_blocks * tap_quads;
    let wanted_chunks = MIN_WEIGHT_INVOCATIONS.div_ceil(invocations.max(1));
    let chunk = total.div_ceil(wanted_chunks).max(MIN_CHUNK).min(total);
    let chunks = total.div_ceil(chunk);
    let partial = Tensor::empty(gpu, [chunks, c_out, k_total])?;
    let Some(out_range) = partial.binding() else {
        return Tensor::zeros(gpu, shapes.weight);
    };
    let mut params = params(OP, shapes, conv)?;
    params.chunk = as_u32(OP, "chunk", chunk)?;
    let storage = [(1, x_range), (4, g_range), (5, out_range)];
    let kernel = kernel(&CONV2D_BACKWARD_WEIGHT_IMPLICIT);
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
    gpu.dispatch_counted(
        &kernel,
        &params,
        &storage,
        workgroups.map(|count| count as u32),
        params.flops(),
    )?;
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

/// Records one launch whose x dimension runs over `items` work items (the entry's workgroup
/// size per workgroup), folded into z above the per-dimension limit.
fn dispatch(
    any: &Tensor,
    entry: &'static Entry<Params>,
    params: &Params,
    storage: &[(u32, crate::gpu::BufferRange)],
    items: usize,
    y: usize,
) -> Result<()> {
    let gpu = any.gpu();
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
    gpu.dispatch_counted(
        &kernel(entry),
        params,
        storage,
        [x_count as u32, y as u32, z_count as u32],
        params.flops(),
    )
}

/// An entry point of conv2d_implicit_gemm.wgsl with this file's channel tile.
fn kernel(entry: &'static Entry<Params>) -> Kernel<Params> {
    entry
        .kernel()
        .with_override("CHANNEL_TILE", f64::from(CHANNEL_TILE))
}
