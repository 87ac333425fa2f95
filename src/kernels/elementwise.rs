//! Launchers for shaders/elementwise.wgsl: same-shape element-by-element arithmetic.

use super::{Launch, as_u32, binding_pieces};
use crate::error::{Error, Result};
use crate::shaders::{Shader, WithVec4, WorkgroupSize, entries, uniform_params};

/// An elementwise operation's entries.
type Entries = WithVec4<Params>;
use crate::tensor::Tensor;

uniform_params! {
    struct Params {
        len: u32, alpha: f32, seed: u32, drop_threshold: u32, columns: u32, channels: u32,
    }
}

// Scalar entries read and write through bindings 1-3; their `_vec4` twins, four elements per
// invocation, through 4-6.
const PER_ELEMENT: WorkgroupSize = WorkgroupSize::Override(256);

entries! {
    entries for Shader::Elementwise, Params;
    bindings { a: read 1, b: read 2, out: read_write 3, a4: read 4, b4: read 5, out4: read_write 6 }
    ADD = "add", PER_ELEMENT, [a, b, out];
    SUB = "sub", PER_ELEMENT, [a, b, out];
    MUL = "mul", PER_ELEMENT, [a, b, out];
    SCALE = "scale", PER_ELEMENT, [a, out];
    RELU = "relu", PER_ELEMENT, [a, out];
    RELU_BACKWARD = "relu_backward", PER_ELEMENT, [a, b, out];
    SIGMOID = "sigmoid", PER_ELEMENT, [a, out];
    SIGMOID_BACKWARD = "sigmoid_backward", PER_ELEMENT, [a, b, out];
    SILU = "silu", PER_ELEMENT, [a, out];
    SILU_BACKWARD = "silu_backward", PER_ELEMENT, [a, b, out];
    ADD_ROW_BIAS = "add_row_bias", PER_ELEMENT, [a, b, out];
    ADD_CHANNEL_BIAS = "add_channel_bias", PER_ELEMENT, [a, b, out];
    ADD_VEC4 = "add_vec4", PER_ELEMENT, [a4, b4, out4];
    SUB_VEC4 = "sub_vec4", PER_ELEMENT, [a4, b4, out4];
    MUL_VEC4 = "mul_vec4", PER_ELEMENT, [a4, b4, out4];
    SCALE_VEC4 = "scale_vec4", PER_ELEMENT, [a4, out4];
    RELU_VEC4 = "relu_vec4", PER_ELEMENT, [a4, out4];
    RELU_BACKWARD_VEC4 = "relu_backward_vec4", PER_ELEMENT, [a4, b4, out4];
    SIGMOID_VEC4 = "sigmoid_vec4", PER_ELEMENT, [a4, out4];
    SIGMOID_BACKWARD_VEC4 = "sigmoid_backward_vec4", PER_ELEMENT, [a4, b4, out4];
    SILU_VEC4 = "silu_vec4", PER_ELEMENT, [a4, out4];
    SILU_BACKWARD_VEC4 = "silu_backward_vec4", PER_ELEMENT, [a4, b4, out4];
    DROPOUT = "dropout", PER_ELEMENT, [a, out];
}

impl Params {
    fn new(len: u32, alpha: f32) -> Self {
        Self {
            len,
            alpha,
            seed: 0,
            drop_threshold: 0,
            columns: 1,
            channels: 1,
        }
    }
}

/// out = a + b
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(WithVec4::new(&ADD, &ADD_VEC4), a, b)
}

/// out = a - b
pub fn sub(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(WithVec4::new(&SUB, &SUB_VEC4), a, b)
}

/// out = a * b
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(WithVec4::new(&MUL, &MUL_VEC4), a, b)
}

/// out = alpha * a
pub fn scale(a: &Tensor, alpha: f32) -> Result<Tensor> {
    launch(WithVec4::new(&SCALE, &SCALE_VEC4), a, None, alpha)
}

/// out = max(a, 0), with NaN passed through as torch.relu does.
pub fn relu(a: &Tensor) -> Result<Tensor> {
    launch(WithVec4::new(&RELU, &RELU_VEC4), a, None, 0.0)
}

/// The gradient of relu: `grad` where the forward `input` was positive, else 0.
pub fn relu_backward(input: &Tensor, grad: &Tensor) -> Result<Tensor> {
    let entries = WithVec4::new(&RELU_BACKWARD, &RELU_BACKWARD_VEC4);
    binary(entries, input, grad)
}

/// The logistic function 1 / (1 + e^(-a)); NaN passes through.
pub fn sigmoid(a: &Tensor) -> Result<Tensor> {
    launch(WithVec4::new(&SIGMOID, &SIGMOID_VEC4), a, None, 0.0)
}

/// The gradient of sigmoid from its forward `output` y (as PyTorch keeps it): grad · y · (1 - y).
pub fn sigmoid_backward(output: &Tensor, grad: &Tensor) -> Result<Tensor> {
    let entries = WithVec4::new(&SIGMOID_BACKWARD, &SIGMOID_BACKWARD_VEC4);
    binary(entries, output, grad)
}

/// SiLU (swish): a · sigmoid(a).
pub fn silu(a: &Tensor) -> Result<Tensor> {
    launch(WithVec4::new(&SILU, &SILU_VEC4), a, None, 0.0)
}

/// The gradient of SiLU from its forward `input` x: grad · s · (1 + x · (1 - s)), where
/// s = sigmoid(x).
pub fn silu_backward(input: &Tensor, grad: &Tensor) -> Result<Tensor> {
    let entries = WithVec4::new(&SILU_BACKWARD, &SILU_BACKWARD_VEC4);
    binary(entries, input, grad)
}

fn binary(entries: Entries, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.expect_same_shape(b, entries.scalar.name)?;
    launch(entries, a, Some(b), 0.0)
}

/// A pass that treats every element alike, over binding-sized pieces where `a` is larger
/// than one storage binding.
fn launch(entries: Entries, a: &Tensor, b: Option<&Tensor>, alpha: f32) -> Result<Tensor> {
    let out = Tensor::empty(a.gpu(), a.shape().clone())?;
    let a_pieces = binding_pieces(a)?;
    let b_pieces = b.map(binding_pieces).transpose()?;
    for (i, (a, out)) in a_pieces.iter().zip(binding_pieces(&out)?).enumerate() {
        let count = as_u32(entries.scalar.name, "element count", a.numel())?;
        let b = b_pieces.as_ref().map(|pieces| &pieces[i]);
        record(entries, a, b, &out, Params::new(count, alpha))?;
    }
    Ok(out)
}

/// Records `entries` over `a` (and `b`) into `out` with the given parameters.
fn record(
    entries: Entries,
    a: &Tensor,
    b: Option<&Tensor>,
    out: &Tensor,
    params: Params,
) -> Result<()> {
    // Four elements per invocation through the vec4 bindings (4, 5, 6) where the pass has a
    // vec4 entry and the length allows.
    let vec4 = entries.vec4.is_some() && a.numel().is_multiple_of(4);
    let (slots, invocations) = match vec4 {
        true => ([4, 5, 6], a.numel() as u64 / 4),
        false => ([1, 2, 3], a.numel() as u64),
    };
    let entry = entries.pick(vec4);
    let mut launch = Launch::new(a.gpu(), entry, params)
        .bind(slots[0], a)
        .bind(slots[2], out);
    if let Some(b) = b {
        launch = launch.bind(slots[1], b);
    }
    launch.over(invocations)
}

/// out[r, c] = a[r, c] + bias[c] for `a` of shape [..., columns] and `bias` of shape [columns].
pub fn add_row_bias(a: &Tensor, bias: &Tensor) -> Result<Tensor> {
    const OP: &str = "add_row_bias";
    let columns = a.dims().last().copied().unwrap_or(1);
    if bias.dims() != [columns] {
        return Err(Error::ShapeMismatch {
            op: OP,
            left: a.dims().to_vec(),
            right: bias.dims().to_vec(),
        });
    }
    let out = Tensor::empty(a.gpu(), a.shape().clone())?;
    let mut params = Params::new(as_u32(OP, "element count", a.numel())?, 0.0);
    params.columns = as_u32(OP, "columns", columns.max(1))?;
    record(
        WithVec4::scalar_only(&ADD_ROW_BIAS),
        a,
        Some(bias),
        &out,
        params,
    )?;
    Ok(out)
}

/// out[n, c, h, w] = a[n, c, h, w] + bias[c] (Conv2d's bias).
pub fn add_channel_bias(a: &Tensor, bias: &Tensor) -> Result<Tensor> {
    const OP: &str = "add_channel_bias";
    let (channels, plane) = match *a.dims() {
        [_, c, h, w] => (c, h * w),
        _ => (0, 0),
    };
    if channels == 0 || bias.dims() != [channels] {
        return Err(Error::ShapeMismatch {
            op: OP,
            left: a.dims().to_vec(),
            right: bias.dims().to_vec(),
        });
    }
    let out = Tensor::empty(a.gpu(), a.shape().clone())?;
    let mut params = Params::new(as_u32(OP, "element count", a.numel())?, 0.0);
    params.columns = as_u32(OP, "H·W", plane.max(1))?;
    params.channels = as_u32(OP, "channels", channels)?;
    record(
        WithVec4::scalar_only(&ADD_CHANNEL_BIAS),
        a,
        Some(bias),
        &out,
        params,
    )?;
    Ok(out)
}

/// Inverted dropout: each element is zeroed with probability `p`, the others scaled by
/// 1/(1-p). The mask is a hash of (`seed`, element index): the same seed gives the same mask,
/// so the backward pass is `dropout(grad, p, seed)`.
pub fn dropout(a: &Tensor, p: f32, seed: u32) -> Result<Tensor> {
    const OP: &str = "dropout";
    if !(0.0..1.0).contains(&p) {
        return Err(Error::invalid(OP, format!("p = {p} must be in [0, 1)")));
    }
    let out = Tensor::empty(a.gpu(), a.shape().clone())?;
    let mut params = Params::new(as_u32(OP, "element count", a.numel())?, 1.0 / (1.0 - p));
    params.seed = seed;
    params.drop_threshold = dropout_threshold(p);
    record(WithVec4::scalar_only(&DROPOUT), a, None, &out, params)?;
    Ok(out)
}

/// The hash value below which an element is dropped: p · 2³².
pub fn dropout_threshold(p: f32) -> u32 {
    (f64::from(p) * 4_294_967_296.0).min(f64::from(u32::MAX)) as u32
}
