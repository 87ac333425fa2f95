//! 2-D convolution and its backward passes: the public operations, their shapes and
//! parameters. Each pass runs one of four algorithms, chosen in `policy.rs`:
//! - `direct.rs`: one invocation per output value (shaders/conv2d.wgsl), the reference variant;
//! - `gemm.rs`: on the matmul kernels, 1×1 convolutions as they are and others over an im2col
//!   buffer when it is small;
//! - `implicit.rs`: a register-tiled GEMM gathering its operands on the fly
//!   (shaders/conv2d_implicit_gemm.wgsl), for large inputs, groups and channel slices;
//! - `winograd.rs`: Winograd F(2×2, 3×3) and F(4×4, 3×3) for 3×3 stride-1 convolutions
//!   (shaders/winograd.wgsl).

mod direct;
mod gemm;
mod implicit;
mod policy;
mod winograd;

use policy::{Adapter, Pass, Plan};

use super::as_u32;
use crate::error::{Error, Result};
use crate::kernels::batchnorm::{Epilogue, EvalBatchNorm};
use crate::kernels::concat::concat_channels;
use crate::kernels::elementwise::{add, relu};
use crate::kernels::matmul::RowEpilogue;
use crate::kernels::reduce;
use crate::shaders::{EntryInterface, uniform_params};
use crate::tensor::Tensor;

/// The entry points of conv2d.wgsl, conv2d_implicit_gemm.wgsl and winograd.wgsl.
pub(crate) fn entries() -> Vec<EntryInterface> {
    [
        direct::entries(),
        gemm::entries(),
        implicit::entries(),
        winograd::entries(),
    ]
    .concat()
}

/// How a convolution is computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// Per pass: Winograd where it applies and the output has enough tiles; else GEMM where it
    /// applies (no groups; a 1×1 kernel or an im2col buffer within bounds) and its matmul's
    /// reduced and column dimensions are multiples of 4; else implicit GEMM. See `policy.rs`.
    #[default]
    Auto,
    /// One invocation per output value: the simplest correct kernels.
    Direct,
    /// On the matmul kernels; an error where it does not apply.
    Gemm,
    /// Register-tiled GEMM gathering from the tensors: any geometry, no extra memory.
    ImplicitGemm,
    /// Winograd for 3×3 stride-1 convolutions, forward, backward to the input and weight
    /// gradient (see `winograd.rs`); an error where it does not apply. Each pass takes
    /// F(4×4, 3×3) where the tensor it tiles (the output; the input for the backward to the
    /// input) has enough 4×4 tiles, else F(2×2, 3×3).
    Winograd,
    /// `Winograd` with F(2×2, 3×3) tiles only.
    WinogradF2,
    /// `Winograd` with F(4×4, 3×3) tiles only.
    WinogradF4,
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
    per_axis_setters!(stride, padding, dilation);

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

/// One convolution, validated: its geometry and the shapes it gives. The policy and the
/// references take this alone; the algorithms take it with their operands (`Forward`,
/// `Backward`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShapes {
    pub input: [usize; 4],
    pub weight: [usize; 4],
    pub output: [usize; 4],
    pub conv: Conv2d,
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
        conv: *conv,
    })
}

/// A forward pass's operands, checked against its geometry: what each algorithm's forward
/// takes.
struct Forward<'a> {
    x: &'a Tensor,
    weight: &'a Tensor,
    bias: Option<&'a Tensor>,
    shapes: ConvShapes,
}

impl<'a> Forward<'a> {
    fn checked(
        op: &'static str,
        x: &'a Tensor,
        weight: &'a Tensor,
        bias: Option<&'a Tensor>,
        conv: &Conv2d,
    ) -> Result<Self> {
        let shapes = conv2d_shapes(op, x.dims(), weight.dims(), conv)?;
        let channels = shapes.weight[0];
        match bias {
            Some(bias) if bias.dims() != [channels] => Err(Error::invalid(
                op,
                format!("bias must have shape [{channels}], got {:?}", bias.dims()),
            )),
            _ => Ok(Self {
                x,
                weight,
                bias,
                shapes,
            }),
        }
    }
}

/// Which gradient of a convolution a backward pass computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvGradient {
    /// With respect to the input x, of x's shape.
    Input,
    /// With respect to the weight, of the weight's shape.
    Weight,
}

/// A backward pass's operands, checked against its geometry: what each algorithm's backward
/// passes take.
struct Backward<'a> {
    x: &'a Tensor,
    weight: &'a Tensor,
    grad_out: &'a Tensor,
    shapes: ConvShapes,
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
    let pass = Forward::checked(OP, x, weight, bias, conv)?;
    let adapter = Adapter::of(x.gpu());
    let plan = policy::resolve(OP, &pass.shapes, algorithm, adapter, Pass::Forward)?;
    forward(&pass, plan)
}

/// `pass` computed by `plan`'s algorithm.
fn forward(pass: &Forward, plan: Plan) -> Result<Tensor> {
    match plan {
        Plan::Winograd(tile) => winograd::forward(pass, tile),
        Plan::ImplicitGemm => {
            let out = Tensor::empty(pass.x.gpu(), pass.shapes.output)?;
            implicit::forward_into(pass, &out, 0)?;
            Ok(out)
        }
        Plan::Gemm => gemm::forward(pass),
        Plan::Direct => direct::forward(pass),
    }
}

/// What follows a convolution per output channel, before its epilogue (`conv2d_then`).
#[derive(Clone, Copy)]
pub enum ChannelAffine<'a> {
    /// The convolution's bias [C_out]: conv + bias.
    Bias(&'a Tensor),
    /// An eval-mode BatchNorm of the convolution plus its bias [C_out], where it has one
    /// (VGG-BN's): bn(conv + conv_bias).
    BatchNorm {
        bn: &'a EvalBatchNorm<'a>,
        conv_bias: Option<&'a Tensor>,
    },
}

impl ChannelAffine<'_> {
    /// The convolution's own bias, if any.
    fn conv_bias(&self) -> Option<&Tensor> {
        match *self {
            ChannelAffine::Bias(bias) => Some(bias),
            ChannelAffine::BatchNorm { conv_bias, .. } => conv_bias,
        }
    }

    /// As per-channel constants [2, C_out] (row 0 the scales, row 1 the shifts) for an output
    /// pass to apply to the convolution without its bias; kept while their tensors go
    /// unwritten.
    fn folded(&self) -> Result<Tensor> {
        match *self {
            ChannelAffine::Bias(bias) => {
                bias.derived("a convolution's bias as scale and shift", |bias| {
                    let channels = bias.numel();
                    let ones = Tensor::full(bias.gpu(), [1, channels, 1, 1], 1.0)?;
                    let shifts = bias.reshape([1, channels, 1, 1])?;
                    concat_channels(&[&ones, &shifts])?.reshape([2, channels])
                })
            }
            ChannelAffine::BatchNorm { bn, conv_bias } => bn.folded(conv_bias),
        }
    }

    /// Applied to `convolved` (the convolution with its bias), then `then`, each as a pass of
    /// its own.
    fn apply(&self, convolved: Tensor, then: Epilogue) -> Result<Tensor> {
        match *self {
            ChannelAffine::Bias(_) => {
                let added = match then.residual {
                    Some(residual) => add(&convolved, residual)?,
                    None => convolved,
                };
                match then.relu {
                    true => relu(&added),
                    false => Ok(added),
                }
            }
            ChannelAffine::BatchNorm { bn, .. } => bn.forward(&convolved, then),
        }
    }
}

/// `conv2d(x, weight)` followed by `affine` (its bias, or an eval-mode BatchNorm) and `then`
/// (residual, ReLU), in fewer passes than an op each. Where the convolution runs Winograd, or
/// a GEMM on the subgroup kernel with no residual to add, its output pass stores the final
/// values (`affine` folded into a per-channel scale and shift); elsewhere the passes follow
/// the convolution.
pub fn conv2d_then(
    x: &Tensor,
    weight: &Tensor,
    conv: &Conv2d,
    affine: ChannelAffine,
    then: Epilogue,
) -> Result<Tensor> {
    const OP: &str = "conv2d_then";
    let pass = Forward::checked(OP, x, weight, affine.conv_bias(), conv)?;
    if let ChannelAffine::BatchNorm { bn, .. } = affine {
        bn.check(OP, pass.shapes.output[1])?;
    }
    if let Some(residual) = then.residual.filter(|r| r.dims() != pass.shapes.output) {
        return Err(Error::ShapeMismatch {
            op: OP,
            left: pass.shapes.output.to_vec(),
            right: residual.dims().to_vec(),
        });
    }
    let plan = policy::resolve(
        OP,
        &pass.shapes,
        ConvAlgorithm::Auto,
        Adapter::of(x.gpu()),
        Pass::Forward,
    )?;
    let convolved = match plan {
        Plan::Winograd(tile) => {
            return winograd::forward_then(&pass, tile, &affine.folded()?, then);
        }
        Plan::Gemm if gemm::takes_epilogue(x.gpu(), then.residual.is_some()) => {
            let folded = affine.folded()?;
            let epilogue = RowEpilogue {
                affine: &folded,
                relu: then.relu,
            };
            match gemm::forward_then(&pass, Some(epilogue))? {
                (out, true) => return Ok(out),
                (convolved, false) => convolved,
            }
        }
        _ => forward(&pass, plan)?,
    };
    affine.apply(convolved, then)
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
    let pass = Forward::checked(OP, x, weight, bias, conv)?;
    let [n, c_out, oh, ow] = pass.shapes.output;
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
                pass.shapes.output
            ),
        ));
    }
    match policy::slice_plan(&pass.shapes, Adapter::of(x.gpu())) {
        Plan::Winograd(tile) => winograd::forward_into(&pass, tile, dest, channel_first),
        _ => implicit::forward_into(&pass, dest, channel_first),
    }
}

/// The gradient `wrt` the input or the weight of `conv2d` (of that operand's shape), by
/// `algorithm` (`ConvAlgorithm::Auto` chooses as the forward does).
pub fn conv2d_backward(
    wrt: ConvGradient,
    x: &Tensor,
    weight: &Tensor,
    grad_out: &Tensor,
    conv: &Conv2d,
    algorithm: ConvAlgorithm,
) -> Result<Tensor> {
    let (op, pass) = match wrt {
        ConvGradient::Input => ("conv2d_backward_input", Pass::BackwardInput),
        ConvGradient::Weight => ("conv2d_backward_weight", Pass::BackwardWeight),
    };
    let shapes = conv2d_shapes(op, x.dims(), weight.dims(), conv)?;
    if grad_out.dims() != shapes.output {
        return Err(Error::ShapeMismatch {
            op,
            left: shapes.output.to_vec(),
            right: grad_out.dims().to_vec(),
        });
    }
    let backward = Backward {
        x,
        weight,
        grad_out,
        shapes,
    };
    let b = &backward;
    use ConvGradient::{Input, Weight};
    match (
        wrt,
        policy::resolve(op, &shapes, algorithm, Adapter::of(x.gpu()), pass)?,
    ) {
        (Input, Plan::Winograd(tile)) => winograd::backward_input(b, tile),
        (Input, Plan::ImplicitGemm) => implicit::backward_input(b),
        (Input, Plan::Gemm) => gemm::backward_input(b),
        (Input, Plan::Direct) => direct::backward_input(b),
        (Weight, Plan::Winograd(tile)) => winograd::backward_weight(b, tile),
        (Weight, Plan::ImplicitGemm) => implicit::backward_weight(b),
        (Weight, Plan::Gemm) => gemm::backward_weight(b),
        (Weight, Plan::Direct) => direct::backward_weight(b),
    }
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

pub(crate) fn params(op: &'static str, s: &ConvShapes) -> Result<Params> {
    let conv = &s.conv;
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
