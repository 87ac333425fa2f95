//! 2-D convolution and its backward passes. Three algorithms: direct (shaders/conv2d.wgsl, the
//! reference variant: one invocation per output value); GEMM on the matmul kernels, 1×1
//! convolutions as they are and others over an im2col buffer when it is small; and implicit
//! GEMM (shaders/conv2d_implicit_gemm.wgsl, launched from conv2d_implicit.rs), which gathers
//! its operands on the fly and takes large inputs and groups.

use super::{Launch, as_u32};
use crate::error::{Error, Result};
use crate::kernels::conv2d_winograd::WinogradTile;
use crate::kernels::elementwise::add_channel_bias;
use crate::kernels::matmul::{MatmulOptions, matmul_counted, subgroup_kernel_available};
use crate::kernels::reduce;
use crate::kernels::transpose::{resize_last_axis, swap_leading_axes};
use crate::kernels::{conv2d_implicit, conv2d_winograd};
use crate::shaders::{
    Binding, Entry, Shader, WORKGROUP_SIZE_OVERRIDE, WorkgroupSize, entries, uniform_params,
};
use crate::tensor::Tensor;

/// The largest im2col buffer the GEMM path materialises; larger inputs take the implicit GEMM.
/// 128 MiB (lavapipe's binding limit) admits VGG's 64-channel 3×3 convolutions at 224×224
/// (116 MB), 3.5× faster there as a GEMM than on the implicit GEMM, for a transient buffer.
const IM2COL_MAX_BYTES: u64 = 128 << 20;

/// How a convolution is computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// Per pass: GEMM where it applies (no groups; a 1×1 kernel or an im2col buffer, and for
    /// the weight gradient the per-sample products, within bounds) and its matmul's reduced and
    /// column dimensions are multiples of 4; else implicit GEMM. See `resolve`.
    #[default]
    Auto,
    /// One invocation per output value: the simplest correct kernels.
    Direct,
    /// On the matmul kernels; an error where it does not apply.
    Gemm,
    /// Register-tiled GEMM gathering from the tensors: any geometry, no extra memory.
    ImplicitGemm,
    /// Winograd for 3×3 stride-1 convolutions, forward, backward to the input and weight
    /// gradient (see `conv2d_winograd`); an error where it does not apply. Each pass takes
    /// F(4×4, 3×3) where the tensor it tiles (the output; the input for the backward to the
    /// input) has enough 4×4 tiles, else F(2×2, 3×3).
    Winograd,
    /// `Winograd` with F(2×2, 3×3) tiles only.
    WinogradF2,
    /// `Winograd` with F(4×4, 3×3) tiles only.
    WinogradF4,
}

/// The Winograd tile an algorithm takes for a pass whose output is `output`, or None for the
/// algorithms that are not Winograd.
fn winograd_tile(algorithm: ConvAlgorithm, output: [usize; 4]) -> Option<WinogradTile> {
    match algorithm {
        ConvAlgorithm::Winograd => Some(WinogradTile::for_output(output)),
        ConvAlgorithm::WinogradF2 => Some(WinogradTile::F2),
        ConvAlgorithm::WinogradF4 => Some(WinogradTile::F4),
        _ => None,
    }
}

/// Conv2d's geometry besides the weight: per axis (height, width), as in PyTorch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Default for Conv2d {
    fn default() -> Self {
        Self {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

impl Conv2d {
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = [stride, stride];
        self
    }

    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = [padding, padding];
        self
    }

    pub fn dilation(mut self, dilation: usize) -> Self {
        self.dilation = [dilation, dilation];
        self
    }

    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
}

uniform_params! {
    /// The uniform parameters of conv2d.wgsl and conv2d_implicit_gemm.wgsl: the geometry, then
    /// the implicit GEMM's fields, then the im2col buffers' strides (conv2d.wgsl's only).
    pub(crate) struct Params {
        pub(crate) batch: u32,
        pub(crate) in_channels: u32,
        pub(crate) in_h: u32,
        pub(crate) in_w: u32,
        pub(crate) out_channels: u32,
        pub(crate) out_h: u32,
        pub(crate) out_w: u32,
        pub(crate) kernel_h: u32,
        pub(crate) kernel_w: u32,
        pub(crate) stride_h: u32,
        pub(crate) stride_w: u32,
        pub(crate) pad_h: u32,
        pub(crate) pad_w: u32,
        pub(crate) dilation_h: u32,
        pub(crate) dilation_w: u32,
        pub(crate) groups: u32,
        pub(crate) has_bias: u32,
        /// Output channels of the tensor written into, and the first one written (conv2d_into).
        pub(crate) out_total: u32,
        pub(crate) out_first: u32,
        /// The weight gradient's (n, p) chunk length.
        pub(crate) chunk: u32,
        /// Positions per row of an im2col (or im2row) buffer: OH·OW, or the GEMM path's
        /// OH·OW rounded up to a multiple of 4.
        pub(crate) position_stride: u32,
        /// Taps per column of an im2col buffer (per row of an im2row one): C_in·KH·KW rounded up
        /// to a multiple of 4 on the GEMM path.
        pub(crate) tap_stride: u32,
    }
}

// Direct kernels: one invocation per output element, writing `out` (5).
entries! {
    entries for Shader::Conv2d, Params;
    CONV2D_DIRECT = "conv2d_direct", WorkgroupSize::Override(256), &[
        Binding::read(1, "x"),
        Binding::read(2, "weight"),
        Binding::read(3, "bias"),
        Binding::read_write(5, "out"),
    ];
    CONV2D_BACKWARD_INPUT_DIRECT = "conv2d_backward_input_direct", WorkgroupSize::Override(256),
        &[Binding::read(2, "weight"), Binding::read(4, "grad_out"), Binding::read_write(5, "out")];
    CONV2D_BACKWARD_WEIGHT_DIRECT = "conv2d_backward_weight_direct", WorkgroupSize::Override(256),
        &[Binding::read(1, "x"), Binding::read(4, "grad_out"), Binding::read_write(5, "out")];
    /// `unfold` sizes the workgroup to the row, at most 64.
    IM2COL = "im2col", WorkgroupSize::Override(64),
        &[Binding::read(1, "x"), Binding::read_write(6, "out4")];
    IM2ROW = "im2row", WorkgroupSize::Override(64),
        &[Binding::read(1, "x"), Binding::read_write(6, "out4")];
    /// 8×8 input positions of a plane per workgroup (`plane_grid`).
    COL2IM = "col2im", WorkgroupSize::Literal([8, 8, 1]),
        &[Binding::read(4, "grad_out"), Binding::read_write(5, "out")];
}

impl Params {
    /// As [`ConvShapes::flops`].
    pub(crate) fn flops(&self) -> u64 {
        let per_group_in = u64::from(self.in_channels / self.groups.max(1));
        let outputs = [self.batch, self.out_channels, self.out_h, self.out_w]
            .iter()
            .map(|&d| u64::from(d))
            .product::<u64>();
        2 * outputs * per_group_in * u64::from(self.kernel_h * self.kernel_w)
    }
}

/// The validated shapes of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShapes {
    pub input: [usize; 4],
    pub weight: [usize; 4],
    pub output: [usize; 4],
}

impl ConvShapes {
    /// Multiply-adds ×2 of the convolution; its two backward passes do as many each.
    pub fn flops(&self) -> u64 {
        let [_, per_group_in, kh, kw] = self.weight;
        let outputs: usize = self.output.iter().product();
        2 * (outputs as u64) * (per_group_in * kh * kw) as u64
    }
}

/// Checks input [N, C_in, H, W] and weight [C_out, C_in/groups, KH, KW] against the geometry
/// and returns all shapes, or an error naming the op and the offending values.
pub fn conv2d_shapes(
    op: &'static str,
    input: &[usize],
    weight: &[usize],
    conv: &Conv2d,
) -> Result<ConvShapes> {
    let (&[n, c_in, h, w], &[c_out, c_per_group, kh, kw]) = (input, weight) else {
        return Err(Error::invalid(
            op,
            format!(
                "needs input [N, C, H, W] and weight [C_out, C_in/groups, KH, KW], got {input:?} and {weight:?}"
            ),
        ));
    };
    if c_in == 0 {
        return Err(Error::invalid(
            op,
            format!("needs at least one input channel, got input {input:?}"),
        ));
    }
    let groups = conv.groups;
    if groups == 0 || c_in % groups != 0 || c_out % groups != 0 || c_per_group * groups != c_in {
        return Err(Error::invalid(
            op,
            format!(
                "groups = {groups} must divide the {c_in} input and {c_out} output channels, and the \
                 weight {weight:?} must hold {c_in}/groups input channels"
            ),
        ));
    }
    if conv.stride.contains(&0) || conv.dilation.contains(&0) || kh == 0 || kw == 0 {
        return Err(Error::invalid(
            op,
            format!(
                "stride {:?}, dilation {:?} and kernel {kh}x{kw} must be positive",
                conv.stride, conv.dilation
            ),
        ));
    }
    let mut out = [0; 2];
    for (axis, (size, kernel)) in [(h, kh), (w, kw)].into_iter().enumerate() {
        // Checked: padding or dilation near usize::MAX must be refused, not wrap around.
        let reach = conv.dilation[axis]
            .checked_mul(kernel - 1)
            .and_then(|r| r.checked_add(1));
        let padded = conv.padding[axis]
            .checked_mul(2)
            .and_then(|p| p.checked_add(size));
        let (Some(reach), Some(padded)) = (reach, padded) else {
            return Err(Error::invalid(
                op,
                format!(
                    "padding {:?} or dilation {:?} is too large to compute with",
                    conv.padding, conv.dilation
                ),
            ));
        };
        if reach > padded {
            return Err(Error::invalid(
                op,
                format!(
                    "kernel {kh}x{kw} (dilation {:?}) is larger than the padded input {h}x{w} \
                     (padding {:?})",
                    conv.dilation, conv.padding
                ),
            ));
        }
        out[axis] = (padded - reach) / conv.stride[axis] + 1;
    }
    Ok(ConvShapes {
        input: [n, c_in, h, w],
        weight: [c_out, c_per_group, kh, kw],
        output: [n, c_out, out[0], out[1]],
    })
}

/// out = x ⋆ weight + bias (PyTorch's conv2d).
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, conv: &Conv2d) -> Result<Tensor> {
    conv2d_with(x, weight, bias, conv, ConvAlgorithm::Auto)
}

/// `conv2d` with a chosen algorithm.
pub fn conv2d_with(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    conv: &Conv2d,
    algorithm: ConvAlgorithm,
) -> Result<Tensor> {
    const OP: &str = "conv2d";
    let shapes = conv2d_shapes(OP, x.dims(), weight.dims(), conv)?;
    check_bias(OP, &shapes, bias)?;
    let gpu = x.gpu();
    let algorithm = resolve(OP, &shapes, conv, algorithm, x, Pass::Forward)?;
    if let Some(tile) = winograd_tile(algorithm, shapes.output) {
        return conv2d_winograd::forward(x, weight, bias, &shapes, conv, tile);
    }
    if algorithm == ConvAlgorithm::ImplicitGemm {
        let out = Tensor::empty(gpu, shapes.output)?;
        conv2d_implicit::forward_into(x, weight, bias, &shapes, conv, &out, 0)?;
        return Ok(out);
    }
    if algorithm == ConvAlgorithm::Gemm {
        let [n, _, oh, ow] = shapes.output;
        let stride = position_stride(&shapes);
        let cols = columns(x, &shapes, conv, stride)?;
        let [c_out, per_group, kh, kw] = shapes.weight;
        // The weight's rows padded with zeros to the tap stride, as the columns are.
        let weight = padded(
            weight.reshape([c_out, per_group * kh * kw])?,
            tap_stride(&shapes),
        )?;
        let product = matmul_counted(
            &weight,
            &cols,
            MatmulOptions::default(),
            Some(shapes.flops()),
        )?;
        let out = unpadded(product, oh * ow, stride)?.reshape([n, c_out, oh, ow])?;
        return match bias {
            Some(bias) => add_channel_bias(&out, bias),
            None => Ok(out),
        };
    }
    let out = Tensor::empty(gpu, shapes.output)?;
    // Without a bias the kernel still needs something bound there; it never reads it.
    let placeholder;
    let bias_tensor = match bias {
        Some(bias) => bias,
        None => {
            placeholder = Tensor::zeros(gpu, [1])?;
            &placeholder
        }
    };
    let mut params = params(OP, &shapes, conv)?;
    params.has_bias = u32::from(bias.is_some());
    launch(
        &CONV2D_DIRECT,
        &params,
        &[(1, x), (2, weight), (3, bias_tensor)],
        &out,
    )?;
    Ok(out)
}

/// `conv2d` written into channels `channel_first ..` of `dest` [N, C_total, OH, OW] instead of
/// a fresh tensor: an Inception branch or a DenseNet layer fills its slice of the channel
/// concatenation directly, with no copy. Runs Winograd where `Auto` would, else the implicit
/// GEMM (whose stores can target the slice; the GEMM path's cannot).
pub fn conv2d_into(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    conv: &Conv2d,
    dest: &Tensor,
    channel_first: usize,
) -> Result<()> {
    const OP: &str = "conv2d_into";
    let shapes = conv2d_shapes(OP, x.dims(), weight.dims(), conv)?;
    check_bias(OP, &shapes, bias)?;
    let [n, c_out, oh, ow] = shapes.output;
    let fits = match *dest.dims() {
        [dn, total, dh, dw] => (dn, dh, dw) == (n, oh, ow) && channel_first + c_out <= total,
        _ => false,
    };
    if !fits {
        return Err(Error::invalid(
            OP,
            format!(
                "destination {:?} has no room for output {:?} at channel {channel_first}",
                dest.dims(),
                shapes.output
            ),
        ));
    }
    match conv2d_winograd::preferred(&shapes, conv, x.gpu().max_binding_bytes()) {
        true => {
            let tile = WinogradTile::for_output(shapes.output);
            conv2d_winograd::forward_into(x, weight, bias, &shapes, conv, tile, dest, channel_first)
        }
        false => conv2d_implicit::forward_into(x, weight, bias, &shapes, conv, dest, channel_first),
    }
}

/// The gradient of `conv2d` with respect to its input `x` (whose shape it takes).
pub fn conv2d_backward_input(
    x: &Tensor,
    weight: &Tensor,
    grad_out: &Tensor,
    conv: &Conv2d,
) -> Result<Tensor> {
    conv2d_backward_input_with(x, weight, grad_out, conv, ConvAlgorithm::Auto)
}

/// `conv2d_backward_input` with a chosen algorithm; the GEMM path computes
/// grad_cols[n] = weightᵀ · grad_out[n] and folds it back with col2im (1×1 convolutions need
/// no folding).
pub fn conv2d_backward_input_with(
    x: &Tensor,
    weight: &Tensor,
    grad_out: &Tensor,
    conv: &Conv2d,
    algorithm: ConvAlgorithm,
) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_input";
    let shapes = checked_backward(OP, x, weight, grad_out, conv)?;
    let algorithm = resolve(OP, &shapes, conv, algorithm, x, Pass::BackwardInput)?;
    // The backward to the input is itself a convolution whose output is the input's shape.
    if let Some(tile) = winograd_tile(algorithm, shapes.input) {
        return conv2d_winograd::backward_input(grad_out, weight, &shapes, conv, tile);
    }
    if algorithm == ConvAlgorithm::ImplicitGemm {
        return conv2d_implicit::backward_input(weight, grad_out, &shapes, conv);
    }
    if algorithm == ConvAlgorithm::Gemm {
        let [n, c_out, oh, ow] = shapes.output;
        let [_, per_group, kh, kw] = shapes.weight;
        let stride = position_stride(&shapes);
        let transposed = MatmulOptions {
            transpose_a: true,
            ..MatmulOptions::default()
        };
        let weight = weight.reshape([c_out, per_group * kh * kw])?;
        let grad_out = padded(grad_out.reshape([n, c_out, oh * ow])?, stride)?;
        // grad_cols[n] = weightᵀ · grad_out[n]: [N, C_in·KH·KW, stride].
        let grad_cols = matmul_counted(&weight, &grad_out, transposed, Some(shapes.flops()))?;
        if is_pointwise(&shapes, conv) {
            return unpadded(grad_cols, oh * ow, stride)?.reshape(shapes.input);
        }
        let grad_x = Tensor::empty(x.gpu(), shapes.input)?;
        let mut params = params(OP, &shapes, conv)?;
        params.position_stride = as_u32(OP, "position stride", stride)?;
        col2im(&params, &grad_cols, &grad_x)?;
        return Ok(grad_x);
    }
    let grad_x = Tensor::empty(x.gpu(), shapes.input)?;
    launch(
        &CONV2D_BACKWARD_INPUT_DIRECT,
        &params(OP, &shapes, conv)?,
        &[(2, weight), (4, grad_out)],
        &grad_x,
    )?;
    Ok(grad_x)
}

/// The gradient of `conv2d` with respect to its weight (whose shape it takes).
pub fn conv2d_backward_weight(
    x: &Tensor,
    weight: &Tensor,
    grad_out: &Tensor,
    conv: &Conv2d,
) -> Result<Tensor> {
    conv2d_backward_weight_with(x, weight, grad_out, conv, ConvAlgorithm::Auto)
}

/// `conv2d_backward_weight` with a chosen algorithm. The GEMM path is one product over every
/// sample's positions: grad_w [C_out, K] = grad_out as [C_out, N·OH·OW] · rows [N·OH·OW, K]
/// (im2row); neither per-sample products to sum nor transposed operands.
pub fn conv2d_backward_weight_with(
    x: &Tensor,
    weight: &Tensor,
    grad_out: &Tensor,
    conv: &Conv2d,
    algorithm: ConvAlgorithm,
) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_weight";
    let shapes = checked_backward(OP, x, weight, grad_out, conv)?;
    let algorithm = resolve(OP, &shapes, conv, algorithm, x, Pass::BackwardWeight)?;
    // The weight gradient sums over the forward's output tiles.
    if let Some(tile) = winograd_tile(algorithm, shapes.output) {
        return conv2d_winograd::backward_weight(x, grad_out, &shapes, conv, tile);
    }
    if algorithm == ConvAlgorithm::ImplicitGemm {
        return conv2d_implicit::backward_weight(x, grad_out, &shapes, conv);
    }
    if algorithm == ConvAlgorithm::Gemm {
        let [n, c_out, oh, ow] = shapes.output;
        let [_, c_in, _, _] = shapes.input;
        let [_, _, kh, kw] = shapes.weight;
        // Padded positions are zero in both operands, so they add nothing to the sum; padded
        // taps give columns of the product that are cropped away.
        let (stride, taps) = (position_stride(&shapes), tap_stride(&shapes));
        let rows = Tensor::empty(x.gpu(), [n * stride, taps])?;
        let mut params = params(OP, &shapes, conv)?;
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
        return unpadded(product, c_in * kh * kw, taps)?.reshape(shapes.weight);
    }
    let grad_weight = Tensor::empty(x.gpu(), shapes.weight)?;
    launch(
        &CONV2D_BACKWARD_WEIGHT_DIRECT,
        &params(OP, &shapes, conv)?,
        &[(1, x), (4, grad_out)],
        &grad_weight,
    )?;
    Ok(grad_weight)
}

/// The gradient of `conv2d` with respect to its bias: grad_out summed over N, H and W.
pub fn conv2d_backward_bias(grad_out: &Tensor) -> Result<Tensor> {
    if grad_out.dims().len() != 4 {
        return Err(Error::invalid(
            "conv2d_backward_bias",
            format!("needs grad_out [N, C, H, W], got {:?}", grad_out.dims()),
        ));
    }
    reduce::sum(grad_out, &[0, 2, 3], false)
}

fn check_bias(op: &'static str, shapes: &ConvShapes, bias: Option<&Tensor>) -> Result<()> {
    match bias {
        Some(bias) if bias.dims() != [shapes.weight[0]] => Err(Error::invalid(
            op,
            format!(
                "bias must have shape [{}], got {:?}",
                shapes.weight[0],
                bias.dims()
            ),
        )),
        _ => Ok(()),
    }
}

/// 1×1 kernel, stride 1, no padding: the input is already the GEMM operand.
fn is_pointwise(shapes: &ConvShapes, conv: &Conv2d) -> bool {
    shapes.weight[2..] == [1, 1] && conv.stride == [1, 1] && conv.padding == [0, 0]
}

#[derive(Clone, Copy, PartialEq)]
enum Pass {
    Forward,
    BackwardInput,
    BackwardWeight,
}

/// The algorithm that runs, or an error when GEMM is demanded but cannot run. `Auto` becomes
/// GEMM where it applies and its matmul's reduced and column dimensions are multiples of 4 (the
/// vec4 kernels' condition), else implicit GEMM: on lavapipe the scalar fallback matmul lost to
/// the implicit GEMM on ResNet-50's 7×7 stem (forward 1.9 vs 3.5 GFLOP/s, weight gradient 1.9
/// vs 3.1) and its 7×7 planes (2.1–2.8 vs 2.8–3.2).
fn resolve(
    op: &'static str,
    shapes: &ConvShapes,
    conv: &Conv2d,
    algorithm: ConvAlgorithm,
    x: &Tensor,
    pass: Pass,
) -> Result<ConvAlgorithm> {
    let [n, c_out, oh, ow] = shapes.output;
    let [_, per_group, kh, kw] = shapes.weight;
    let taps = per_group * kh * kw;
    let stride = position_stride(shapes);
    // The vec4 and subgroup kernels need the matmul's reduced and column dimensions multiples
    // of 4. Positions and taps are padded to that (see the GEMM branches of the launchers);
    // only the backward to the input reduces over the unpadded output channels.
    let vec4_aligned = match pass {
        Pass::Forward | Pass::BackwardWeight => true,
        Pass::BackwardInput => c_out % 4 == 0,
    };
    let cols_bytes = (n * taps.next_multiple_of(4) * stride * 4) as u64;
    let limit = IM2COL_MAX_BYTES.min(x.gpu().limits().max_storage_buffer_binding_size);
    // The weight gradient's GEMM always builds its im2row buffer; 1×1 convolutions otherwise
    // use their input as it is, or a padded copy of it.
    let needs_cols = pass == Pass::BackwardWeight
        || !is_pointwise(shapes, conv)
        || stride != oh * ow
        || taps % 4 != 0;
    let gemm_applies = conv.groups == 1 && (!needs_cols || cols_bytes <= limit);
    let max_binding = x.gpu().max_binding_bytes();
    let winograd_applies = conv2d_winograd::applies(shapes, conv, max_binding);
    // The Winograd weight gradient's products read a transposed operand, which only the
    // subgroup GEMM (lavapipe's) reads at full speed. Elsewhere a transposed product falls to
    // the register-tiled kernel (1.5 TFLOP/s on the H200, where im2row's untransposed
    // products split K on the vec4 kernel; BENCHMARKS.md); the Winograd weight gradient has
    // not been timed on a GPU, so Auto keeps im2row there until it is.
    let winograd_measured_faster =
        pass != Pass::BackwardWeight || subgroup_kernel_available(x.gpu());
    match algorithm {
        ConvAlgorithm::Auto
            if winograd_applies
                && winograd_measured_faster
                && conv2d_winograd::preferred(shapes, conv, max_binding) =>
        {
            Ok(ConvAlgorithm::Winograd)
        }
        ConvAlgorithm::Auto if gemm_applies && vec4_aligned => Ok(ConvAlgorithm::Gemm),
        ConvAlgorithm::Auto => Ok(ConvAlgorithm::ImplicitGemm),
        ConvAlgorithm::Gemm if !gemm_applies => Err(Error::invalid(
            op,
            format!(
                "the GEMM path needs groups = 1 and an im2col buffer within {limit} bytes; \
                 groups = {}, buffer {cols_bytes} bytes",
                conv.groups
            ),
        )),
        ConvAlgorithm::Winograd | ConvAlgorithm::WinogradF2 | ConvAlgorithm::WinogradF4
            if !winograd_applies =>
        {
            Err(Error::invalid(
                op,
                "Winograd needs a 3×3 kernel at stride 1 without dilation or groups, padding at \
             most 2, channel counts that are multiples of 4 and transformed tensors within one \
             binding",
            ))
        }
        chosen => Ok(chosen),
    }
}

/// The GEMM's right operand [N, C_in·KH·KW, stride]: the input itself (padded) for 1×1
/// convolutions, else an im2col buffer.
fn columns(x: &Tensor, shapes: &ConvShapes, conv: &Conv2d, stride: usize) -> Result<Tensor> {
    const OP: &str = "im2col";
    let [n, c_in, h, w] = shapes.input;
    let taps = tap_stride(shapes);
    if is_pointwise(shapes, conv) && taps == c_in {
        return padded(x.reshape([n, c_in, h * w])?, stride);
    }
    let cols = Tensor::empty(x.gpu(), [n, taps, stride])?;
    let mut params = params(OP, shapes, conv)?;
    params.position_stride = as_u32(OP, "position stride", stride)?;
    params.tap_stride = as_u32(OP, "tap stride", taps)?;
    unfold(Unfolding::Im2col, &params, x, &cols)?;
    Ok(cols)
}

/// C_in·KH·KW (per group) rounded up to a multiple of 4: the GEMM path's taps.
fn tap_stride(shapes: &ConvShapes) -> usize {
    (shapes.weight[1] * shapes.weight[2] * shapes.weight[3]).next_multiple_of(4)
}

/// OH·OW rounded up to a multiple of 4: the GEMM path's positions per row, so that its vec4
/// matmul applies to planes like ResNet's 7×7.
fn position_stride(shapes: &ConvShapes) -> usize {
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

fn checked_backward(
    op: &'static str,
    x: &Tensor,
    weight: &Tensor,
    grad_out: &Tensor,
    conv: &Conv2d,
) -> Result<ConvShapes> {
    let shapes = conv2d_shapes(op, x.dims(), weight.dims(), conv)?;
    if grad_out.dims() != shapes.output {
        return Err(Error::ShapeMismatch {
            op,
            left: shapes.output.to_vec(),
            right: grad_out.dims().to_vec(),
        });
    }
    Ok(shapes)
}

pub(crate) fn params(op: &'static str, s: &ConvShapes, conv: &Conv2d) -> Result<Params> {
    let u = |what: &str, value: usize| as_u32(op, what, value);
    Ok(Params {
        batch: u("N", s.input[0])?,
        in_channels: u("C_in", s.input[1])?,
        in_h: u("H", s.input[2])?,
        in_w: u("W", s.input[3])?,
        out_channels: u("C_out", s.output[1])?,
        out_h: u("OH", s.output[2])?,
        out_w: u("OW", s.output[3])?,
        kernel_h: u("KH", s.weight[2])?,
        kernel_w: u("KW", s.weight[3])?,
        stride_h: u("stride", conv.stride[0])?,
        stride_w: u("stride", conv.stride[1])?,
        pad_h: u("padding", conv.padding[0])?,
        pad_w: u("padding", conv.padding[1])?,
        dilation_h: u("dilation", conv.dilation[0])?,
        dilation_w: u("dilation", conv.dilation[1])?,
        groups: u("groups", conv.groups)?,
        has_bias: 0,
        out_total: u("C_out", s.output[1])?,
        out_first: 0,
        chunk: 0,
        position_stride: u("OH·OW", s.output[2] * s.output[3])?,
        tap_stride: u("C_in·KH·KW", s.weight[1] * s.weight[2] * s.weight[3])?,
    })
}

/// Folds grad_cols [N, C_in·KH·KW, S] back into grad_x [N, C_in, H, W]: col2im, whose stride
/// and dilation are pipeline constants.
fn col2im(params: &Params, grad_cols: &Tensor, grad_x: &Tensor) -> Result<()> {
    if grad_cols.numel() == 0 {
        return crate::kernels::fill::fill_into(grad_x, 0.0);
    }
    let gpu = grad_x.gpu();
    let planes = params.batch * params.in_channels;
    let workgroups = super::plane_grid(gpu, [params.in_w, params.in_h], planes);
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
