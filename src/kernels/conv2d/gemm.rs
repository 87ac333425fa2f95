//! Convolution on the matmul kernels: 1×1 convolutions as they are, others over an im2col
//! buffer (forward), with the backward to the input folded back by col2im and the weight
//! gradient as one product over every sample's positions (im2row). The buffers' positions and
//! taps are padded to multiples of 4, so that the vec4 and subgroup GEMMs apply to any plane
//! (ResNet's 7×7) and any stem. The unfolding passes are in shaders/conv2d.wgsl.

use super::{Backward, ConvShapes, Forward, Params, params};
use crate::Gpu;
use crate::error::Result;
use crate::kernels::elementwise::add_channel_bias;
use crate::kernels::matmul::{
    MatmulOptions, RowEpilogue, matmul_counted, matmul_then, subgroup_kernel_available,
};
use crate::kernels::transpose::{resize_last_axis, swap_leading_axes};
use crate::kernels::{Launch, as_u32, plane_grid};
use crate::shaders::{Shader, WORKGROUP_SIZE_OVERRIDE, WorkgroupSize, entries};
use crate::tensor::Tensor;

entries! {
    entries for Shader::Conv2d, Params;
    bindings { x: read 1, grad_out: read 4, out: read_write 5, out4: read_write 6 }
    /// `unfold` sizes the workgroup to the row, at most 64.
    IM2COL = "im2col", WorkgroupSize::Override(64), [x, out4];
    IM2ROW = "im2row", WorkgroupSize::Override(64), [x, out4];
    /// 8×8 input positions of a plane per workgroup (`plane_grid`).
    COL2IM = "col2im", WorkgroupSize::Literal([8, 8, 1]), [grad_out, out];
}

/// out = weight · cols (+ bias): [C_out, taps] · [N, taps, positions].
pub(super) fn forward(pass: &Forward) -> Result<Tensor> {
    forward_then(pass, None).map(|(out, _)| out)
}

/// Whether `forward_then` can apply an epilogue: the subgroup GEMM's stores apply its scale,
/// shift and ReLU (on padded positions too, which are cropped after), not a residual.
pub(super) fn takes_epilogue(gpu: &Gpu, with_residual: bool) -> bool {
    subgroup_kernel_available(gpu) && !with_residual
}

/// `forward` stored through `epilogue` where the product's kernel applies it (`takes_epilogue`,
/// and `Auto` picking the subgroup kernel), the bias then left to the epilogue's shifts; the
/// output and whether the epilogue was applied (if not, the bias was added).
pub(super) fn forward_then(
    pass: &Forward,
    epilogue: Option<RowEpilogue>,
) -> Result<(Tensor, bool)> {
    let (x, weight, shapes) = (pass.x, pass.weight, &pass.shapes);
    let [n, _, oh, ow] = shapes.output;
    let stride = position_stride(shapes);
    let cols = columns(x, shapes, stride)?;
    let [c_out, per_group, kh, kw] = shapes.weight;
    // The weight's rows padded with zeros to the tap stride, as the columns are.
    let weight = padded(
        weight.reshape([c_out, per_group * kh * kw])?,
        tap_stride(shapes),
    )?;
    let flops = Some(shapes.flops());
    let (product, applied) = match epilogue {
        Some(epilogue) => matmul_then(&weight, &cols, flops, epilogue)?,
        None => (
            matmul_counted(&weight, &cols, MatmulOptions::default(), flops)?,
            false,
        ),
    };
    let out = unpadded(product, oh * ow, stride)?.reshape([n, c_out, oh, ow])?;
    match pass.bias {
        Some(bias) if !applied => Ok((add_channel_bias(&out, bias)?, false)),
        _ => Ok((out, applied)),
    }
}

/// grad_cols[n] = weightᵀ · grad_out[n], folded back with col2im (1×1 convolutions need no
/// folding).
pub(super) fn backward_input(pass: &Backward) -> Result<Tensor> {
    let (weight, grad_out, shapes) = (pass.weight, pass.grad_out, &pass.shapes);
    const OP: &str = "conv2d_backward_input";
    let [n, c_out, oh, ow] = shapes.output;
    let [_, per_group, kh, kw] = shapes.weight;
    let stride = position_stride(shapes);
    let transposed = MatmulOptions {
        transpose_a: true,
        ..MatmulOptions::default()
    };
    let weight = weight.reshape([c_out, per_group * kh * kw])?;
    let grad_out = padded(grad_out.reshape([n, c_out, oh * ow])?, stride)?;
    // grad_cols[n] = weightᵀ · grad_out[n]: [N, C_in·KH·KW, stride].
    let grad_cols = matmul_counted(&weight, &grad_out, transposed, Some(shapes.flops()))?;
    if is_pointwise(shapes) {
        return unpadded(grad_cols, oh * ow, stride)?.reshape(shapes.input);
    }
    let grad_x = Tensor::empty(grad_out.gpu(), shapes.input)?;
    let mut params = params(OP, shapes)?;
    params.position_stride = as_u32(OP, "position stride", stride)?;
    col2im(&params, &grad_cols, &grad_x)?;
    Ok(grad_x)
}

/// One product over every sample's positions: grad_w [C_out, K] = grad_out as
/// [C_out, N·OH·OW] · rows [N·OH·OW, K] (im2row); neither per-sample products to sum nor
/// transposed operands.
pub(super) fn backward_weight(pass: &Backward) -> Result<Tensor> {
    let (x, grad_out, shapes) = (pass.x, pass.grad_out, &pass.shapes);
    const OP: &str = "conv2d_backward_weight";
    let [n, c_out, oh, ow] = shapes.output;
    let [_, c_in, _, _] = shapes.input;
    let [_, _, kh, kw] = shapes.weight;
    // Padded positions are zero in both operands, so they add nothing to the sum; padded
    // taps give columns of the product that are cropped away.
    let (stride, taps) = (position_stride(shapes), tap_stride(shapes));
    let rows = Tensor::empty(x.gpu(), [n * stride, taps])?;
    let mut params = params(OP, shapes)?;
    params.position_stride = as_u32(OP, "position stride", stride)?;
    params.tap_stride = as_u32(OP, "tap stride", taps)?;
    unfold(Unfolding::Im2row, &params, x, &rows)?;
    let grad_out = padded(grad_out.reshape([n, c_out, oh * ow])?, stride)?;
    let grad_out = match n {
        1 => grad_out,
        _ => swap_leading_axes(&grad_out)?,
    };
    let product = matmul_counted(
        &grad_out.reshape([c_out, n * stride])?,
        &rows,
        MatmulOptions::default(),
        Some(shapes.flops()),
    )?;
    unpadded(product, c_in * kh * kw, taps)?.reshape(shapes.weight)
}

/// 1×1 kernel, stride 1, no padding: the input is already the GEMM operand.
pub(super) fn is_pointwise(shapes: &ConvShapes) -> bool {
    let conv = &shapes.conv;
    shapes.weight[2..] == [1, 1] && conv.stride == [1, 1] && conv.padding == [0, 0]
}

/// The GEMM's right operand [N, C_in·KH·KW, stride]: the input itself (padded) for 1×1
/// convolutions, else an im2col buffer.
fn columns(x: &Tensor, shapes: &ConvShapes, stride: usize) -> Result<Tensor> {
    const OP: &str = "im2col";
    let [n, c_in, h, w] = shapes.input;
    let taps = tap_stride(shapes);
    if is_pointwise(shapes) && taps == c_in {
        return padded(x.reshape([n, c_in, h * w])?, stride);
    }
    let cols = Tensor::empty(x.gpu(), [n, taps, stride])?;
    let mut params = params(OP, shapes)?;
    params.position_stride = as_u32(OP, "position stride", stride)?;
    params.tap_stride = as_u32(OP, "tap stride", taps)?;
    unfold(Unfolding::Im2col, &params, x, &cols)?;
    Ok(cols)
}

/// C_in·KH·KW (per group) rounded up to a multiple of 4: the GEMM path's taps.
pub(super) fn tap_stride(shapes: &ConvShapes) -> usize {
    (shapes.weight[1] * shapes.weight[2] * shapes.weight[3]).next_multiple_of(4)
}

/// OH·OW rounded up to a multiple of 4: the GEMM path's positions per row, so that its vec4
/// matmul applies to planes like ResNet's 7×7.
pub(super) fn position_stride(shapes: &ConvShapes) -> usize {
    (shapes.output[2] * shapes.output[3]).next_multiple_of(4)
}

/// [.., positions] zero-padded to [.., stride] (no copy when they agree).
fn padded(t: Tensor, stride: usize) -> Result<Tensor> {
    match t.dims().last() == Some(&stride) {
        true => Ok(t),
        false => resize_last_axis(&t, stride),
    }
}

/// [.., stride] cropped back to [.., positions].
fn unpadded(t: Tensor, positions: usize, stride: usize) -> Result<Tensor> {
    match positions == stride {
        true => Ok(t),
        false => resize_last_axis(&t, positions),
    }
}

/// Folds grad_cols [N, C_in·KH·KW, S] back into grad_x [N, C_in, H, W]: col2im, whose stride
/// and dilation are pipeline constants.
fn col2im(params: &Params, grad_cols: &Tensor, grad_x: &Tensor) -> Result<()> {
    if grad_cols.numel() == 0 {
        return crate::kernels::fill::fill_into(grad_x, 0.0);
    }
    let gpu = grad_x.gpu();
    let planes = params.batch * params.in_channels;
    let workgroups = plane_grid(gpu, [params.in_w, params.in_h], planes);
    let kernel = COL2IM
        .kernel()
        .with_override("COL2IM_STRIDE_H", f64::from(params.stride_h))
        .with_override("COL2IM_STRIDE_W", f64::from(params.stride_w))
        .with_override("COL2IM_DILATION_H", f64::from(params.dilation_h))
        .with_override("COL2IM_DILATION_W", f64::from(params.dilation_w))
        .with_override(
            "COL2IM_TAP_STEP_H",
            tap_step(params.stride_h, params.dilation_h),
        )
        .with_override(
            "COL2IM_TAP_STEP_W",
            tap_step(params.stride_w, params.dilation_w),
        );
    Launch::of(gpu, kernel, *params)
        .bind(4, grad_cols)
        .bind(5, grad_x)
        .on(workgroups)
}

/// About this many workgroups make im2col's and im2row's passes: enough to keep every thread
/// of a CPU adapter busy, few enough that lavapipe's fixed cost per workgroup stays small.
const UNFOLD_WORKGROUPS: u32 = 512;

/// The two layouts of a convolution's input patches for the GEMM path.
#[derive(Clone, Copy)]
enum Unfolding {
    /// cols [N, T, S]: the forward's right operand.
    Im2col,
    /// rows [N·S, T]: the weight gradient's right operand.
    Im2row,
}

/// Records `unfolding` of `x` into `out`: each invocation owns four consecutive values of a row
/// and loops over the rows (see the shader).
fn unfold(unfolding: Unfolding, params: &Params, x: &Tensor, out: &Tensor) -> Result<()> {
    if x.numel() == 0 {
        return crate::kernels::fill::fill_into(out, 0.0);
    }
    let gpu = out.gpu();
    let (entry, row_length, row_count) = match unfolding {
        Unfolding::Im2col => (
            &IM2COL,
            params.position_stride,
            params.batch * params.tap_stride,
        ),
        Unfolding::Im2row => (
            &IM2ROW,
            params.tap_stride,
            params.batch * params.position_stride,
        ),
    };
    let quads = row_length / 4;
    let width = quads.next_power_of_two().clamp(8, entry.invocations());
    let quad_groups = quads.div_ceil(width);
    let row_groups = UNFOLD_WORKGROUPS
        .div_ceil(quad_groups)
        .clamp(1, row_count.max(1))
        .min(gpu.max_workgroups_per_dimension());
    let kernel = entry
        .kernel()
        .with_override(WORKGROUP_SIZE_OVERRIDE, f64::from(width));
    Launch::of(gpu, kernel, *params)
        .bind(1, x)
        .bind(6, out)
        .on([quad_groups, row_groups, 1])
}

/// Along one axis, how many kernel taps apart the taps lie that reach one input coordinate
/// from whole output positions: the tap offset k·dilation must change by a multiple of the
/// stride, so k steps by stride / gcd(stride, dilation).
fn tap_step(stride: u32, dilation: u32) -> f64 {
    let (mut a, mut b) = (stride, dilation);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    f64::from(stride / a)
}
