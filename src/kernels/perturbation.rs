//! Launcher for shaders/perturbation.wgsl: the mask arithmetic of meaningful perturbation
//! (`saliency::meaningful_perturbation`) and extremal perturbation
//! (`saliency::extremal_perturbation`), so that their optimisations stay on the GPU.

use super::{Launch, as_u32};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::shaders::{Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;

uniform_params! {
    #[derive(Default)]
    struct Params {
        batch: u32,
        channels: u32,
        height: u32,
        width: u32,
        mask_height: u32,
        mask_width: u32,
        shift_y: i32,
        shift_x: i32,
        areas: u32,
        levels: u32,
        step: u32,
        reach: u32,
        l1: f32,
        tv: f32,
        tv_beta: f32,
        area_weight: f32,
        noise_std: f32,
        seed_low: u32,
        seed_high: u32,
        sample: u32,
        axis: u32,
        radius: u32,
        out_offset: u32,
    }
}

entries! {
    entries for Shader::Perturbation, Params;
    bindings { images: read 1, out: read_write 2, mask: read 3, replacement: read 4, g: read 5,
        pixel_grad: read 6, grad_out: read_write 7, grid: read 8, winner_out: read_write 9,
        winner: read 10, bump: read 11, pyramid: read 12, threshold_out: read_write 13,
        threshold: read 14, kept: read 15, values: read_write 16, taps: read 17 }
    BLEND_WITH_MASK = "blend_with_mask", WorkgroupSize::Override(256),
        [images, out, mask, replacement];
    REPLACEMENT_NOISE = "replacement_noise", WorkgroupSize::Override(256), [out];
    MASK_PIXEL_GRADIENT = "mask_pixel_gradient", WorkgroupSize::Override(256),
        [images, replacement, g, grad_out];
    MASK_GRADIENT = "mask_gradient", WorkgroupSize::Override(64), [mask, pixel_grad, grad_out];
    SMOOTH_MASKS = "smooth_masks", WorkgroupSize::Override(256), [out, grid, winner_out, bump];
    BLEND_PYRAMID = "blend_pyramid", WorkgroupSize::Override(256), [out, mask, pyramid];
    AREA_THRESHOLD = "area_threshold", WorkgroupSize::Override(256),
        [mask, threshold_out, kept];
    EXTREMAL_MASK_GRADIENT = "extremal_mask_gradient", WorkgroupSize::Override(256),
        [mask, g, grad_out, pyramid, threshold];
    SMOOTH_MASKS_ADJOINT = "smooth_masks_adjoint", WorkgroupSize::Override(64),
        [pixel_grad, grad_out, winner, bump];
    BLUR_AXIS = "blur_axis", WorkgroupSize::Override(256), [images, out, taps];
    CLAMP_TO_UNIT = "clamp_to_unit", WorkgroupSize::Override(256), [values];
}

const OP: &str = "perturbation";

// Two tensors here hold u32 data in f32 storage, as their bit patterns: the smooth masks'
// winning grid points and the area threshold's kept counts. They are only ever bound, read
// back as bits or written from bits, never passed through float arithmetic (which could
// flush their subnormal patterns to zero).

fn u(what: &str, value: usize) -> Result<u32> {
    as_u32(OP, what, value)
}

fn images_dims(x: &Tensor, what: &str) -> Result<[usize; 4]> {
    match *x.dims() {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(Error::invalid(
            OP,
            format!("{what} must be [N, C, H, W], got {:?}", x.dims()),
        )),
    }
}

fn maps_dims(x: &Tensor, what: &str) -> Result<[usize; 3]> {
    match *x.dims() {
        [n, h, w] if h > 0 && w > 0 => Ok([n, h, w]),
        _ => Err(Error::invalid(
            OP,
            format!("{what} must be non-empty [N, H, W], got {:?}", x.dims()),
        )),
    }
}

fn same_dims(a: &Tensor, b: &Tensor, what: &str) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(Error::invalid(
            OP,
            format!("{what}: {:?} against {:?}", b.dims(), a.dims()),
        ));
    }
    Ok(())
}

/// Image geometry for the uniform parameters.
fn image_params([n, c, h, w]: [usize; 4]) -> Result<Params> {
    Ok(Params {
        batch: u("batch", n)?,
        channels: u("channels", c)?,
        height: u("height", h)?,
        width: u("width", w)?,
        ..Params::default()
    })
}

/// Where the jittered mask reads the upsampled one: pixel (y, x) takes (clamp(y − dy),
/// clamp(x − dx)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shift {
    pub dy: i32,
    pub dx: i32,
}

/// Meaningful perturbation's blend: images [N, C, H, W] kept where the low-resolution `mask`
/// [N, h, w], upsampled bilinearly and shifted, is 1 and replaced by `replacement` (same
/// shape as the images) where it is 0.
pub fn blend_with_mask(
    images: &Tensor,
    replacement: &Tensor,
    mask: &Tensor,
    shift: Shift,
) -> Result<Tensor> {
    let dims = images_dims(images, "images")?;
    same_dims(images, replacement, "replacement for images")?;
    let [mn, mh, mw] = maps_dims(mask, "the mask")?;
    if mn != dims[0] {
        return Err(Error::invalid(
            OP,
            format!("{mn} masks for {} images", dims[0]),
        ));
    }
    let out = Tensor::empty(images.gpu(), dims)?;
    let params = Params {
        mask_height: u("mask height", mh)?,
        mask_width: u("mask width", mw)?,
        shift_y: shift.dy,
        shift_x: shift.dx,
        ..image_params(dims)?
    };
    Launch::new(images.gpu(), &BLEND_WITH_MASK, params)
        .bind(1, images)
        .bind(2, &out)
        .bind(3, mask)
        .bind(4, replacement)
        .over(out.numel() as u64)?;
    Ok(out)
}

/// Gaussian noise of standard deviation `std`, [N, C, H, W], drawn from the counter-based
/// generator at (`seed`, `sample`, element): a new `sample` draws anew.
pub fn replacement_noise(
    gpu: &Gpu,
    dims: [usize; 4],
    std: f32,
    seed: u64,
    sample: u32,
) -> Result<Tensor> {
    if !std.is_finite() || std < 0.0 {
        return Err(Error::invalid(OP, format!("noise deviation {std}")));
    }
    let out = Tensor::empty(gpu, dims)?;
    u("noise elements", out.numel())?;
    let params = Params {
        noise_std: std,
        seed_low: seed as u32,
        seed_high: (seed >> 32) as u32,
        sample,
        ..image_params(dims)?
    };
    Launch::new(gpu, &REPLACEMENT_NOISE, params)
        .bind(2, &out)
        .over(out.numel() as u64)?;
    Ok(out)
}

/// ∂score/∂(upsampled mask) [N, H, W] from the score's gradient `g` at the blended images:
/// Σ_c g · (images − replacement), carried back through the shift.
pub fn mask_pixel_gradient(
    images: &Tensor,
    replacement: &Tensor,
    g: &Tensor,
    shift: Shift,
) -> Result<Tensor> {
    let dims = images_dims(images, "images")?;
    same_dims(images, replacement, "replacement for images")?;
    same_dims(images, g, "gradient for images")?;
    let [n, _, h, w] = dims;
    let out = Tensor::empty(images.gpu(), [n, h, w])?;
    let params = Params {
        shift_y: shift.dy,
        shift_x: shift.dx,
        ..image_params(dims)?
    };
    Launch::new(images.gpu(), &MASK_PIXEL_GRADIENT, params)
        .bind(1, images)
        .bind(4, replacement)
        .bind(5, g)
        .bind(7, &out)
        .over(out.numel() as u64)?;
    Ok(out)
}

/// Meaningful perturbation's regularisers: λ₁ ‖1 − m‖₁ + λ₂ Σ |Δm|^β over both axes.
#[derive(Clone, Copy, Debug)]
pub struct MaskPenalty {
    pub l1: f32,
    pub tv: f32,
    pub tv_beta: f32,
}

/// The gradient [N, h, w] of score + penalty with respect to the low-resolution `mask`, from
/// `pixel_grad` [N, H, W] (`mask_pixel_gradient`): the adjoint of the bilinear upsampling,
/// plus the penalty's own gradient.
pub fn mask_gradient(mask: &Tensor, pixel_grad: &Tensor, penalty: MaskPenalty) -> Result<Tensor> {
    let [n, mh, mw] = maps_dims(mask, "the mask")?;
    let [pn, height, width] = maps_dims(pixel_grad, "the pixel gradient")?;
    if pn != n || mh > height || mw > width {
        return Err(Error::invalid(
            OP,
            format!(
                "mask {:?} for a pixel gradient {:?}",
                mask.dims(),
                pixel_grad.dims()
            ),
        ));
    }
    let out = Tensor::empty(mask.gpu(), [n, mh, mw])?;
    let params = Params {
        mask_height: u("mask height", mh)?,
        mask_width: u("mask width", mw)?,
        l1: penalty.l1,
        tv: penalty.tv,
        tv_beta: penalty.tv_beta,
        ..image_params([n, 1, height, width])?
    };
    Launch::new(mask.gpu(), &MASK_GRADIENT, params)
        .bind(3, mask)
        .bind(6, pixel_grad)
        .bind(7, &out)
        .over(out.numel() as u64)?;
    Ok(out)
}

/// The Gaussian bump's weight at each whole-pixel distance within its reach of 3σ:
/// exp(−d² / 2σ²) for d = 0 ..= ⌊3σ⌋, the table `smooth_masks` multiplies along both axes.
pub fn bump_weights(sigma: f32) -> Vec<f32> {
    let reach = (3.0 * sigma).floor() as usize;
    (0..=reach)
        .map(|d| {
            let d = d as f32;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect()
}

/// Extremal perturbation's smooth-mask geometry: grid values one every `step` pixels, bumps of
/// σ in pixels (`bump_weights`, uploaded once).
pub struct SmoothMasks {
    pub size: [usize; 2],
    pub step: usize,
    pub grid: [usize; 2],
    bump: Tensor,
}

impl SmoothMasks {
    /// Needs every pixel within reach (⌊3σ⌋) of a grid point, ⌊step / 2⌋ away at most:
    /// σ ≥ step / 6 suffices.
    pub fn new(gpu: &Gpu, size: [usize; 2], step: usize, sigma: f32) -> Result<Self> {
        let weights = bump_weights(sigma);
        if step == 0 || size.contains(&0) || weights.len() - 1 < step / 2 {
            return Err(Error::invalid(
                OP,
                format!("a step of {step} pixels, bumps of σ {sigma}, masks {size:?}"),
            ));
        }
        Ok(Self {
            size,
            step,
            grid: [size[0].div_ceil(step) + 1, size[1].div_ceil(step) + 1],
            bump: Tensor::from_slice(gpu, [weights.len()], &weights)?,
        })
    }

    fn params(&self, copies: usize) -> Result<Params> {
        Ok(Params {
            mask_height: u("grid rows", self.grid[0])?,
            mask_width: u("grid columns", self.grid[1])?,
            step: u("step", self.step)?,
            reach: u("reach", self.bump.numel() - 1)?,
            ..image_params([copies, 1, self.size[0], self.size[1]])?
        })
    }

    fn expect_grids(&self, grids: &Tensor) -> Result<usize> {
        match *grids.dims() {
            [k, gh, gw] if [gh, gw] == self.grid => Ok(k),
            _ => Err(Error::invalid(
                OP,
                format!(
                    "grids {:?} where {:?} were expected",
                    grids.dims(),
                    self.grid
                ),
            )),
        }
    }

    /// The masks [K, H, W] of `grids` [K, gh, gw] (the max-convolution with the bump), and
    /// per pixel the grid point that sets it (u32 bits in the f32 tensor), for the adjoint.
    pub fn apply(&self, grids: &Tensor) -> Result<(Tensor, Tensor)> {
        let k = self.expect_grids(grids)?;
        let [h, w] = self.size;
        let masks = Tensor::empty(grids.gpu(), [k, h, w])?;
        let winners = Tensor::empty(grids.gpu(), [k, h, w])?;
        Launch::new(grids.gpu(), &SMOOTH_MASKS, self.params(k)?)
            .bind(2, &masks)
            .bind(8, grids)
            .bind(9, &winners)
            .bind(11, &self.bump)
            .over(masks.numel() as u64)?;
        Ok((masks, winners))
    }

    /// ∂/∂grids [K, gh, gw] of Σ_p mask_grad[k, p] · mask[k, p]: each pixel's gradient goes
    /// to the grid point that won it, times that point's bump.
    pub fn adjoint(&self, mask_grad: &Tensor, winners: &Tensor) -> Result<Tensor> {
        let [k, h, w] = maps_dims(mask_grad, "the mask gradient")?;
        same_dims(mask_grad, winners, "winners for the mask gradient")?;
        if [h, w] != self.size {
            return Err(Error::invalid(
                OP,
                format!(
                    "a mask gradient {:?} for masks {:?}",
                    mask_grad.dims(),
                    self.size
                ),
            ));
        }
        let out = Tensor::empty(mask_grad.gpu(), [k, self.grid[0], self.grid[1]])?;
        Launch::new(mask_grad.gpu(), &SMOOTH_MASKS_ADJOINT, self.params(k)?)
            .bind(6, mask_grad)
            .bind(7, &out)
            .bind(10, winners)
            .bind(11, &self.bump)
            .over(out.numel() as u64)?;
        Ok(out)
    }
}

fn expect_pyramid(pyramid: &Tensor, masks: &Tensor, areas: usize) -> Result<[usize; 5]> {
    let [k, h, w] = maps_dims(masks, "the masks")?;
    match *pyramid.dims() {
        [levels, n, c, ph, pw]
            if levels >= 2 && areas > 0 && n * areas == k && [ph, pw] == [h, w] =>
        {
            Ok([levels, n, c, h, w])
        }
        _ => Err(Error::invalid(
            OP,
            format!(
                "a blur pyramid {:?} (at least 2 levels) for masks {:?} at {areas} areas",
                pyramid.dims(),
                masks.dims()
            ),
        )),
    }
}

fn pyramid_params([levels, n, c, h, w]: [usize; 5], areas: usize) -> Result<Params> {
    Ok(Params {
        areas: u("areas", areas)?,
        levels: u("levels", levels)?,
        ..image_params([n * areas, c, h, w])?
    })
}

/// Extremal perturbation's perturbed images [K, C, H, W]: copy k of image k / areas blurred
/// where mask k is low, through the `pyramid` [levels, N, C, H, W] of blurs (level 0 the
/// image), linear between the levels around (1 − m) · (levels − 1).
pub fn blend_pyramid(pyramid: &Tensor, masks: &Tensor, areas: usize) -> Result<Tensor> {
    let dims = expect_pyramid(pyramid, masks, areas)?;
    let [_, n, c, h, w] = dims;
    let out = Tensor::empty(masks.gpu(), [n * areas, c, h, w])?;
    Launch::new(masks.gpu(), &BLEND_PYRAMID, pyramid_params(dims, areas)?)
        .bind(2, &out)
        .bind(3, masks)
        .bind(12, pyramid)
        .over(out.numel() as u64)?;
    Ok(out)
}

/// Extremal perturbation's area targets: per area, how many of a mask's H × W pixels its
/// target r_a keeps, uploaded once for the whole optimisation.
pub struct KeptCounts {
    size: [usize; 2],
    areas: usize,
    counts: Tensor,
}

impl KeptCounts {
    /// `kept` holds a count per area, each at most H · W.
    pub fn new(gpu: &Gpu, size: [usize; 2], kept: &[usize]) -> Result<Self> {
        let plane = size[0] * size[1];
        // The threshold's tie index travels as f32: exact below 2^24.
        if kept.is_empty() || kept.iter().any(|&c| c > plane) || plane > 1 << 24 {
            return Err(Error::invalid(
                OP,
                format!("kept counts {kept:?} for masks of {size:?}"),
            ));
        }
        let counts = kept
            .iter()
            .map(|&c| Ok(f32::from_bits(u("kept count", c)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            size,
            areas: kept.len(),
            counts: Tensor::from_slice(gpu, [counts.len()], &counts)?,
        })
    }

    /// Per mask k of `masks` [K, H, W] (values in [0, 1]), (T, first): T its
    /// `kept[k % areas]`-th largest value, and `first` the pixel index from which the values
    /// equal to T rank among the kept (a stable ascending sort ranks ties by index); [K, 2],
    /// the index held as f32.
    pub fn threshold(&self, masks: &Tensor) -> Result<Tensor> {
        let [k, h, w] = maps_dims(masks, "the masks")?;
        if [h, w] != self.size || k % self.areas != 0 {
            return Err(Error::invalid(
                OP,
                format!(
                    "masks {:?} for {} areas of masks {:?}",
                    masks.dims(),
                    self.areas,
                    self.size
                ),
            ));
        }
        let out = Tensor::empty(masks.gpu(), [k, 2])?;
        let params = Params {
            areas: u("areas", self.areas)?,
            ..image_params([k, 1, h, w])?
        };
        let workgroup = u64::from(AREA_THRESHOLD.invocations());
        Launch::new(masks.gpu(), &AREA_THRESHOLD, params)
            .bind(3, masks)
            .bind(13, &out)
            .bind(15, &self.counts)
            .over(k as u64 * workgroup)?;
        Ok(out)
    }
}

/// ∂(λ ‖sort(m) − r_a‖² / |Ω| − score)/∂m [K, H, W] for the masks, from their thresholds
/// (`KeptCounts::threshold`) and the score's gradient `g` [K, C, H, W] at the perturbed images.
pub fn extremal_mask_gradient(
    pyramid: &Tensor,
    masks: &Tensor,
    areas: usize,
    thresholds: &Tensor,
    g: &Tensor,
    area_weight: f32,
) -> Result<Tensor> {
    let dims = expect_pyramid(pyramid, masks, areas)?;
    let [_, n, c, h, w] = dims;
    if thresholds.dims() != [n * areas, 2] || g.dims() != [n * areas, c, h, w] {
        return Err(Error::invalid(
            OP,
            format!(
                "thresholds {:?} and a gradient {:?} for masks {:?}",
                thresholds.dims(),
                g.dims(),
                masks.dims()
            ),
        ));
    }
    let out = Tensor::empty(masks.gpu(), [n * areas, h, w])?;
    let params = Params {
        area_weight,
        ..pyramid_params(dims, areas)?
    };
    Launch::new(masks.gpu(), &EXTREMAL_MASK_GRADIENT, params)
        .bind(3, masks)
        .bind(5, g)
        .bind(7, &out)
        .bind(12, pyramid)
        .bind(14, thresholds)
        .over(out.numel() as u64)?;
    Ok(out)
}

/// The normalised taps of a Gaussian of σ pixels over radius ⌈3σ⌉; σ = 0 is the identity.
pub fn gaussian_taps(sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 {
        return vec![1.0];
    }
    let radius = (3.0 * sigma).ceil() as i32;
    let taps: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = taps.iter().sum();
    taps.iter().map(|t| t / total).collect()
}

/// The blur pyramid [levels, N, C, H, W] of `images` [N, C, H, W]: level l holds every
/// [H, W] plane blurred by a Gaussian of σ = max_blur · l / (levels − 1) (separable, borders
/// replicated; level 0 is the images). One level (`levels` = 1) holds the images blurred by
/// `max_blur`.
pub fn blur_pyramid(images: &Tensor, levels: usize, max_blur: f32) -> Result<Tensor> {
    let dims = images_dims(images, "images")?;
    if levels == 0 || !max_blur.is_finite() || max_blur < 0.0 {
        return Err(Error::invalid(
            OP,
            format!("{levels} blur levels up to σ {max_blur}"),
        ));
    }
    let [n, c, h, w] = dims;
    let size = images.numel();
    let gpu = images.gpu();
    let pyramid = Tensor::empty(gpu, [levels, n, c, h, w])?;
    u("pyramid elements", pyramid.numel())?;
    let rows = Tensor::empty(gpu, dims)?;
    for level in 0..levels {
        let sigma = match levels {
            1 => max_blur,
            _ => max_blur * level as f32 / (levels - 1) as f32,
        };
        let taps = gaussian_taps(sigma);
        let radius = u("blur radius", taps.len() / 2)?;
        let taps = Tensor::from_slice(gpu, [taps.len()], &taps)?;
        let pass = |axis: u32, offset: usize| -> Result<Params> {
            Ok(Params {
                axis,
                radius,
                out_offset: u("pyramid offset", offset)?,
                ..image_params([n * c, 1, h, w])?
            })
        };
        Launch::new(gpu, &BLUR_AXIS, pass(0, 0)?)
            .bind(1, images)
            .bind(2, &rows)
            .bind(17, &taps)
            .over(size as u64)?;
        Launch::new(gpu, &BLUR_AXIS, pass(1, level * size)?)
            .bind(1, &rows)
            .bind(2, &pyramid)
            .bind(17, &taps)
            .over(size as u64)?;
    }
    Ok(pyramid)
}

/// Clamps every value of `values` to [0, 1] in place (the masks after an Adam step).
pub fn clamp_to_unit(values: &Tensor) -> Result<()> {
    let params = Params {
        batch: u("element count", values.numel())?,
        ..Params::default()
    };
    Launch::new(values.gpu(), &CLAMP_TO_UNIT, params)
        .bind(16, values)
        .over(values.numel() as u64)
}
