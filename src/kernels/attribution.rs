//! Launcher for shaders/attribution.wgsl: SmoothGrad's noisy copies, integrated gradients'
//! path, the weighted accumulation of their gradients and the channel reduction to maps, on
//! the GPU so that the sampling methods read back only their maps.

use super::{Launch, as_u32};
use crate::error::{Error, Result};
use crate::shaders::{Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;

uniform_params! {
    struct Params {
        size: u32,
        image: u32,
        count: u32,
        first_sample: u32,
        seed_low: u32,
        seed_high: u32,
        sigma: f32,
        absolute: u32,
        channels: u32,
        plane: u32,
    }
}

entries! {
    entries for Shader::Attribution, Params;
    bindings { x: read 1, out: read_write 2, g: read 3, weights: read 4, sum: read_write 5,
        baseline: read 6, alphas: read 7 }
    NOISY_COPIES = "noisy_copies", WorkgroupSize::Override(256), [x, out];
    INTERPOLATE = "interpolate", WorkgroupSize::Override(256), [x, out, baseline, alphas];
    ACCUMULATE = "accumulate", WorkgroupSize::Override(256), [g, weights, sum];
    REDUCE_CHANNELS = "reduce_channels", WorkgroupSize::Override(256), [x, out];
}

const OP: &str = "attribution";

/// `x`'s dims as [N, C, H, W], or an error naming what the kernel needs.
fn images(x: &Tensor, what: &str) -> Result<[usize; 4]> {
    match *x.dims() {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(Error::invalid(
            OP,
            format!("{what} needs images [N, C, H, W], got {:?}", x.dims()),
        )),
    }
}

fn check_image(image: usize, n: usize) -> Result<()> {
    match image < n {
        true => Ok(()),
        false => Err(Error::invalid(OP, format!("image {image} of {n}"))),
    }
}

fn params(size: usize, image: usize, count: usize) -> Result<Params> {
    Ok(Params {
        size: as_u32(OP, "image size", size)?,
        image: as_u32(OP, "image", image)?,
        count: as_u32(OP, "count", count)?,
        first_sample: 0,
        seed_low: 0,
        seed_high: 0,
        sigma: 0.0,
        absolute: 0,
        channels: 0,
        plane: 0,
    })
}

/// `count` copies of image `image` of `x` [N, C, H, W] plus Gaussian noise of deviation
/// `sigma`, copy k drawing its noise as sample `first_sample + k` of the stream `seed`:
/// [count, C, H, W].
pub fn noisy_copies(
    x: &Tensor,
    image: usize,
    count: usize,
    first_sample: u64,
    seed: u64,
    sigma: f32,
) -> Result<Tensor> {
    let [n, c, h, w] = images(x, "noisy_copies")?;
    check_image(image, n)?;
    if first_sample + count as u64 > u64::from(u32::MAX) {
        return Err(Error::invalid(
            OP,
            "more than 2³² noise samples in one stream",
        ));
    }
    let params = Params {
        first_sample: first_sample as u32,
        seed_low: seed as u32,
        seed_high: (seed >> 32) as u32,
        sigma,
        ..params(c * h * w, image, count)?
    };
    let out = Tensor::empty(x.gpu(), [count, c, h, w])?;
    let elements = as_u32(OP, "output elements", out.numel())?;
    Launch::new(x.gpu(), &NOISY_COPIES, params)
        .bind(1, x)
        .bind(2, &out)
        .over(u64::from(elements))?;
    Ok(out)
}

/// Points on the straight path from `baseline` [C, H, W] to image `image` of `x`
/// [N, C, H, W]: baseline + α (x − baseline) for each α of `alphas` [count], [count, C, H, W].
pub fn interpolate(x: &Tensor, image: usize, baseline: &Tensor, alphas: &Tensor) -> Result<Tensor> {
    let [n, c, h, w] = images(x, "interpolate")?;
    check_image(image, n)?;
    let count = alphas.numel();
    if baseline.numel() != c * h * w {
        return Err(Error::invalid(
            OP,
            format!("a baseline {:?} for images {:?}", baseline.dims(), x.dims()),
        ));
    }
    let out = Tensor::empty(x.gpu(), [count, c, h, w])?;
    let elements = as_u32(OP, "output elements", out.numel())?;
    Launch::new(x.gpu(), &INTERPOLATE, params(c * h * w, image, count)?)
        .bind(1, x)
        .bind(2, &out)
        .bind(6, baseline)
        .bind(7, alphas)
        .over(u64::from(elements))?;
    Ok(out)
}

/// sum[image] += Σ_k weights[k] · g[k] (of |g[k]| when `absolute`), for g [count, C, H, W]
/// and sum [N, C, H, W], weights [≥ count].
pub fn accumulate(
    sum: &Tensor,
    image: usize,
    g: &Tensor,
    weights: &Tensor,
    absolute: bool,
) -> Result<()> {
    let [n, c, h, w] = images(sum, "accumulate")?;
    let [count, gc, gh, gw] = images(g, "accumulate")?;
    check_image(image, n)?;
    if [gc, gh, gw] != [c, h, w] || weights.numel() < count {
        return Err(Error::invalid(
            OP,
            format!(
                "gradients {:?} and {} weights into sums {:?}",
                g.dims(),
                weights.numel(),
                sum.dims()
            ),
        ));
    }
    let params = Params {
        absolute: u32::from(absolute),
        ..params(c * h * w, image, count)?
    };
    Launch::new(sum.gpu(), &ACCUMULATE, params)
        .bind(3, g)
        .bind(4, weights)
        .bind(5, sum)
        .over((c * h * w) as u64)
}

/// How attributions [N, C, H, W] become maps [N, H, W] (`saliency::Reduce`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelReduction {
    /// max over channels of |a| (Simonyan et al.'s saliency map).
    AbsMax,
    /// sum over channels of a (signed: gradient × input, integrated gradients).
    Sum,
}

/// One map per image: [N, H, W] from `a` [N, C, H, W].
pub fn reduce_channels(a: &Tensor, reduction: ChannelReduction) -> Result<Tensor> {
    let [n, c, h, w] = images(a, "reduce_channels")?;
    let params = Params {
        absolute: u32::from(reduction == ChannelReduction::AbsMax),
        channels: as_u32(OP, "channels", c)?,
        plane: as_u32(OP, "plane", h * w)?,
        ..params(c * h * w, 0, n)?
    };
    let out = Tensor::empty(a.gpu(), [n, h, w])?;
    let elements = as_u32(OP, "map elements", out.numel())?;
    Launch::new(a.gpu(), &REDUCE_CHANNELS, params)
        .bind(1, a)
        .bind(2, &out)
        .over(u64::from(elements))?;
    Ok(out)
}
