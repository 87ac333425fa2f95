//! Launchers for shaders/elementwise.wgsl: same-shape element-by-element arithmetic.

use bytemuck::{Pod, Zeroable};

use super::{as_u32, grid_1d};
use crate::error::{Error, Result};
use crate::shaders::{Kernel, Shader};
use crate::tensor::Tensor;

const WORKGROUP_SIZE: u64 = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    len: u32,
    alpha: f32,
    seed: u32,
    drop_threshold: u32,
    columns: u32,
    channels: u32,
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
    binary("add", a, b)
}

/// out = a - b
pub fn sub(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary("sub", a, b)
}

/// out = a * b
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary("mul", a, b)
}

/// out = alpha * a
pub fn scale(a: &Tensor, alpha: f32) -> Result<Tensor> {
    launch("scale", a, None, alpha)
}

/// out = max(a, 0), with NaN passed through as torch.relu does.
pub fn relu(a: &Tensor) -> Result<Tensor> {
    launch("relu", a, None, 0.0)
}

/// The gradient of relu: `grad` where the forward `input` was positive, else 0.
pub fn relu_backward(input: &Tensor, grad: &Tensor) -> Result<Tensor> {
    binary("relu_backward", input, grad)
}

fn binary(entry: &'static str, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.expect_same_shape(b, entry)?;
    launch(entry, a, Some(b), 0.0)
}

fn launch(entry: &'static str, a: &Tensor, b: Option<&Tensor>, alpha: f32) -> Result<Tensor> {
    let out = Tensor::empty(a.gpu(), a.shape().clone())?;
    let params = Params::new(as_u32(entry, "element count", a.numel())?, alpha);
    record(entry, a, b, &out, params)?;
    Ok(out)
}

/// Records `entry` over `a` (and `b`) into `out` with the given parameters.
fn record(
    entry: &'static str,
    a: &Tensor,
    b: Option<&Tensor>,
    out: &Tensor,
    params: Params,
) -> Result<()> {
    let gpu = a.gpu();
    let (Some(a_range), Some(out_range)) = (a.binding(), out.binding()) else {
        return Ok(()); // no elements
    };
    // Four elements per invocation through the vec4 bindings (4, 5, 6) where the entry has a
    // vec4 twin and the length allows.
    let vec4_entry = vec4_twin(entry).filter(|_| a.numel().is_multiple_of(4));
    let (entry, slots, invocations) = match vec4_entry {
        Some(twin) => (twin, [4, 5, 6], a.numel() as u64 / 4),
        None => (entry, [1, 2, 3], a.numel() as u64),
    };
    let mut storage = vec![(slots[0], a_range), (slots[2], out_range)];
    if let Some(b_range) = b.and_then(Tensor::binding) {
        storage.push((slots[1], b_range));
    }
    gpu.dispatch(
        &Kernel::new(Shader::Elementwise, entry),
        &params,
        &storage,
        grid_1d(gpu, invocations.div_ceil(WORKGROUP_SIZE)),
    )
}

/// The entry point that does `entry`'s work four elements at a time, if it has one.
fn vec4_twin(entry: &str) -> Option<&'static str> {
    Some(match entry {
        "add" => "add_vec4",
        "sub" => "sub_vec4",
        "mul" => "mul_vec4",
        "scale" => "scale_vec4",
        "relu" => "relu_vec4",
        "relu_backward" => "relu_backward_vec4",
        _ => return None,
    })
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
    record(OP, a, Some(bias), &out, params)?;
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
    record(OP, a, Some(bias), &out, params)?;
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
    record(OP, a, None, &out, params)?;
    Ok(out)
}

/// The hash value below which an element is dropped: p · 2³².
pub fn dropout_threshold(p: f32) -> u32 {
    (f64::from(p) * 4_294_967_296.0).min(f64::from(u32::MAX)) as u32
}
