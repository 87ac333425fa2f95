//! Launcher for shaders/cam.wgsl: class activation maps from a layer's activations and
//! gradients, and their bilinear upsampling, on the GPU (`saliency::class_activation_maps`,
//! `saliency::score_cam`).

use super::{Launch, as_u32};
use crate::error::{Error, Result};
use crate::shaders::{Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;

uniform_params! {
    struct Params {
        batch: u32,
        channels: u32,
        height: u32,
        width: u32,
        out_height: u32,
        out_width: u32,
        kind: u32,
    }
}

entries! {
    entries for Shader::Cam, Params;
    bindings { a: read 1, g: read 2, weights_out: read_write 3, weights: read 4,
        cam_out: read_write 5, cam: read 6, out: read_write 7, attribution: read 8 }
    CHANNEL_WEIGHTS = "cam_channel_weights", WorkgroupSize::Override(64), [a, g, weights_out];
    COMBINE = "cam_combine", WorkgroupSize::Override(256), [a, g, weights, cam_out];
    UPSAMPLE = "upsample_maps", WorkgroupSize::Override(256), [cam, out];
    SCALE_BY_NEAREST = "scale_by_nearest", WorkgroupSize::Override(256), [cam, out, attribution];
}

const OP: &str = "class activation map";

/// Which class activation map (`saliency::Cam`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cam {
    /// Σ_k w_k A_k, w_k the spatial mean of G_k (Selvaraju et al. 2017).
    GradCam,
    /// Σ_k w_k A_k, w_k = Σ_p α_kp ReLU(G_kp) (Chattopadhay et al. 2018).
    GradCamPlusPlus,
    /// Σ_k G_k ⊙ A_k (Draelos & Carin 2020).
    HiResCam,
    /// Σ_k ReLU(G_k) ⊙ A_k (Jiang et al. 2021).
    LayerCam,
}

fn dims(a: &Tensor) -> Result<[usize; 4]> {
    match *a.dims() {
        [n, k, h, w] => Ok([n, k, h, w]),
        _ => Err(Error::invalid(
            OP,
            format!("needs activations [N, C, H, W], got {:?}", a.dims()),
        )),
    }
}

fn params([n, k, h, w]: [usize; 4], [out_h, out_w]: [usize; 2], kind: u32) -> Result<Params> {
    let u = |what: &str, value: usize| as_u32(OP, what, value);
    Ok(Params {
        batch: u("batch", n)?,
        channels: u("channels", k)?,
        height: u("height", h)?,
        width: u("width", w)?,
        out_height: u("output height", out_h)?,
        out_width: u("output width", out_w)?,
        kind,
    })
}

/// `kind`'s maps, ReLU'd, [N, h, w] from activations `a` and gradients `g` [N, K, h, w].
pub fn class_activation_map(a: &Tensor, g: &Tensor, kind: Cam) -> Result<Tensor> {
    let shape = dims(a)?;
    if g.dims() != a.dims() {
        return Err(Error::invalid(
            OP,
            format!("gradients {:?} for activations {:?}", g.dims(), a.dims()),
        ));
    }
    let [n, k, h, w] = shape;
    let gpu = a.gpu();
    let weights = match kind {
        Cam::GradCam | Cam::GradCamPlusPlus => {
            let weights = Tensor::empty(gpu, [n, k])?;
            let kind = u32::from(kind == Cam::GradCamPlusPlus);
            Launch::new(gpu, &CHANNEL_WEIGHTS, params(shape, [h, w], kind)?)
                .bind(1, a)
                .bind(2, g)
                .bind(3, &weights)
                .over((n * k) as u64)?;
            Some(weights)
        }
        Cam::HiResCam | Cam::LayerCam => None,
    };
    let kind = match kind {
        Cam::GradCam | Cam::GradCamPlusPlus => 0,
        Cam::HiResCam => 2,
        Cam::LayerCam => 3,
    };
    combine(a, g, weights.as_ref(), kind)
}

/// ReLU(Σ_k weights[n, k] A[n, k]) [N, h, w] for given channel weights [N, K] (Score-CAM's).
pub fn weighted_map(a: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let [n, k, ..] = dims(a)?;
    if weights.dims() != [n, k] {
        return Err(Error::invalid(
            OP,
            format!(
                "weights {:?} for activations {:?}",
                weights.dims(),
                a.dims()
            ),
        ));
    }
    combine(a, a, Some(weights), 0)
}

fn combine(a: &Tensor, g: &Tensor, weights: Option<&Tensor>, kind: u32) -> Result<Tensor> {
    let shape = dims(a)?;
    let [n, _, h, w] = shape;
    let gpu = a.gpu();
    let cam = Tensor::empty(gpu, [n, h, w])?;
    // The weighted kinds read weights, the others gradients; each binds the other to a tensor
    // it never reads (a binding cannot be left empty).
    let launch = Launch::new(gpu, &COMBINE, params(shape, [h, w], kind)?)
        .bind(1, a)
        .bind(2, g)
        .bind(4, weights.unwrap_or(a))
        .bind(5, &cam);
    launch.over((n * h * w) as u64)?;
    Ok(cam)
}

/// Maps [N, h, w] resized to [N, height, width], bilinear at pixel centres (align_corners =
/// false).
pub fn upsample_maps(maps: &Tensor, height: usize, width: usize) -> Result<Tensor> {
    let &[n, h, w] = maps.dims() else {
        return Err(Error::invalid(
            OP,
            format!("needs maps [N, H, W], got {:?}", maps.dims()),
        ));
    };
    if h == 0 || w == 0 {
        return Err(Error::invalid(OP, "cannot upsample an empty map"));
    }
    let out = Tensor::empty(maps.gpu(), [n, height, width])?;
    Launch::new(
        maps.gpu(),
        &UPSAMPLE,
        params([n, 1, h, w], [height, width], 0)?,
    )
    .bind(6, maps)
    .bind(7, &out)
    .over((n * height * width) as u64)?;
    Ok(out)
}

/// `attribution` [N, C, H, W] times `cam` [N, h, w] upsampled to H × W by nearest neighbour
/// (torch's F.interpolate(mode="nearest"): source index ⌊o · in / out⌋), in every channel:
/// guided Grad-CAM from guided backprop and Grad-CAM.
pub fn scale_by_nearest(attribution: &Tensor, cam: &Tensor) -> Result<Tensor> {
    let [n, c, height, width] = dims(attribution)?;
    let &[cn, h, w] = cam.dims() else {
        return Err(Error::invalid(
            OP,
            format!("needs maps [N, H, W], got {:?}", cam.dims()),
        ));
    };
    if cn != n || h == 0 || w == 0 {
        return Err(Error::invalid(
            OP,
            format!(
                "maps {:?} for attributions {:?}",
                cam.dims(),
                attribution.dims()
            ),
        ));
    }
    let out = Tensor::empty(attribution.gpu(), [n, c, height, width])?;
    Launch::new(
        attribution.gpu(),
        &SCALE_BY_NEAREST,
        params([n, c, h, w], [height, width], 0)?,
    )
    .bind(6, cam)
    .bind(7, &out)
    .bind(8, attribution)
    .over((n * c * height * width) as u64)?;
    Ok(out)
}
