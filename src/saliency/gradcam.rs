//! Class activation maps from a named layer's activations A and the score's gradient G = ∂score/∂A,
//! ReLU'd and upsampled to the input:
//!
//! - Grad-CAM (Selvaraju et al. 2017): Σ_k w_k A_k with w_k the spatial mean of G_k.
//! - Grad-CAM++ (Chattopadhay et al. 2018): w_k = Σ_p α_kp ReLU(G_kp), with
//!   α_kp = G_kp² / (2 G_kp² + (Σ_q A_kq) G_kp³), 0 where G_kp = 0 (the paper's closed form for
//!   an exponential score; the ε of 1e-6 in the denominator as pytorch-grad-cam has it).
//! - HiResCAM (Draelos & Carin 2020): Σ_k G_k ⊙ A_k, no averaging, so the map is exactly what
//!   the score takes from each position.
//! - LayerCAM (Jiang et al. 2021): Σ_k ReLU(G_k) ⊙ A_k.
//!
//! Each is checked against pytorch-grad-cam, and Grad-CAM against Captum (tests/captum.rs).
//!
//! Guided Grad-CAM (Selvaraju et al. 2017) multiplies guided backprop's attribution by the
//! Grad-CAM map upsampled to the input by nearest neighbour, as Captum's `GuidedGradCam` does:
//! the fine detail of the one where the other says the class is.

use super::{Attribution, Question, guided_backprop, one_hot_seed};
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::nn::{Forward, Mode};

/// Which class activation map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cam {
    GradCam,
    GradCamPlusPlus,
    HiResCam,
    LayerCam,
}

/// Grad-CAM maps at `layer` (default: the model's last convolutional block): [N, h, w] at the
/// layer's resolution, and [N, H, W] bilinearly upsampled to the input's (align_corners =
/// false, as torch's F.interpolate).
pub async fn grad_cam(
    question: Question<'_>,
    layer: Option<&str>,
) -> Result<(Attribution, Attribution)> {
    class_activation_map(question, layer, Cam::GradCam).await
}

/// `kind`'s maps at `layer` (default: the model's last convolutional block), as `grad_cam`
/// returns them.
pub async fn class_activation_map(
    question: Question<'_>,
    layer: Option<&str>,
    kind: Cam,
) -> Result<(Attribution, Attribution)> {
    let mut maps = class_activation_maps(question, layer, &[kind]).await?;
    Ok(maps.remove(0))
}

/// Several kinds of map at `layer` from one forward and one backward pass (they differ only
/// in how they weigh the same activations and gradients), in the order of `kinds`.
pub async fn class_activation_maps(
    question: Question<'_>,
    layer: Option<&str>,
    kinds: &[Cam],
) -> Result<Vec<(Attribution, Attribution)>> {
    const OP: &str = "class activation map";
    let [_, _, height, width] = question.dims;
    let Question { explained, x, .. } = question;
    let layer = layer.map_or_else(|| explained.model.gradcam_layer(), str::to_string);
    // Gradients to the activations only: no weight gradients.
    let tape = Tape::new().input_gradients_only();
    let f = Forward::new(&tape, explained.store, Mode::Eval).capturing();
    let input = tape.input(x.clone());
    let logits = explained.model.forward(&f, &input)?;
    let activation = marked_layer(&f, &layer)?;
    let output = question.score.of(&tape, logits)?;
    let (seed, _) = one_hot_seed(&output, question.classes).await?;
    let grads = tape.backward_keeping(&output, Some(seed), &[&activation])?;
    let &[n, channels, h, w] = activation.dims() else {
        return Err(Error::invalid(
            OP,
            format!("layer {layer} is not [N, C, H, W]"),
        ));
    };
    let a = activation.tensor().read().await?;
    let g = grads
        .get(&activation)
        .ok_or_else(|| Error::invalid(OP, format!("the score does not depend on {layer}")))?
        .read()
        .await?;
    let plane = h * w;
    let one_kind = |kind: Cam| {
        let mut cam = vec![0.0f32; n * plane];
        for b in 0..n {
            let map = &mut cam[b * plane..(b + 1) * plane];
            for k in 0..channels {
                let base = (b * channels + k) * plane;
                let (a, g) = (&a[base..base + plane], &g[base..base + plane]);
                add_channel(kind, a, g, map);
            }
        }
        for value in &mut cam {
            *value = value.max(0.0);
        }
        let low = Attribution {
            dims: vec![n, h, w],
            data: cam,
        };
        let high = upsample_bilinear(&low, height, width);
        (low, high)
    };
    Ok(kinds.iter().map(|&kind| one_kind(kind)).collect())
}

/// Guided Grad-CAM at `layer` (default: the model's last convolutional block): attributions
/// [N, C, H, W], guided backprop's times the Grad-CAM map at the input's size (nearest
/// neighbour, as torch's F.interpolate(mode="nearest")).
pub async fn guided_grad_cam(question: Question<'_>, layer: Option<&str>) -> Result<Attribution> {
    let guided = guided_backprop(question).await?;
    let (cam, _) = grad_cam(question, layer).await?;
    let [n, channels, height, width] = question.dims;
    let (h, w) = (cam.dims[1], cam.dims[2]);
    // torch's nearest: source index ⌊o · in / out⌋.
    let source = |o: usize, input: usize, output: usize| (o * input / output).min(input - 1);
    let mut data = guided.data;
    for b in 0..n {
        for y in 0..height {
            let row = source(y, h, height);
            for x in 0..width {
                let weight = cam.data[(b * h + row) * w + source(x, w, width)];
                for c in 0..channels {
                    data[((b * channels + c) * height + y) * width + x] *= weight;
                }
            }
        }
    }
    Ok(Attribution {
        dims: guided.dims,
        data,
    })
}

/// The value a capturing forward pass marked under `layer`, or an error naming the layers it
/// marked.
pub(crate) fn marked_layer(f: &Forward, layer: &str) -> Result<Var> {
    f.marked(layer).ok_or_else(|| {
        let marked = f.marked_names();
        let message = match marked.is_empty() {
            true => {
                "the model has no convolutional layer to take a class activation map at".to_string()
            }
            false => format!(
                "no layer named {layer:?}; the model marks {}",
                marked.join(", ")
            ),
        };
        Error::invalid("class activation map", message)
    })
}

/// Adds one channel's share to `map`: from its activations `a` and gradients `g` over the plane.
fn add_channel(kind: Cam, a: &[f32], g: &[f32], map: &mut [f32]) {
    let weighted = |weight: f32, map: &mut [f32]| {
        for (value, a) in map.iter_mut().zip(a) {
            *value += weight * a;
        }
    };
    match kind {
        Cam::GradCam => weighted(g.iter().sum::<f32>() / g.len() as f32, map),
        Cam::GradCamPlusPlus => {
            let activation_sum: f32 = a.iter().sum();
            let weight = g
                .iter()
                .filter(|&&g| g != 0.0)
                .map(|&g| {
                    let (g2, g3) = (g * g, g * g * g);
                    g.max(0.0) * g2 / (2.0 * g2 + activation_sum * g3 + 1e-6)
                })
                .sum();
            weighted(weight, map);
        }
        Cam::HiResCam | Cam::LayerCam => {
            for ((value, a), g) in map.iter_mut().zip(a).zip(g) {
                let g = if kind == Cam::LayerCam {
                    g.max(0.0)
                } else {
                    *g
                };
                *value += g * a;
            }
        }
    }
}

/// Bilinear resize of maps [N, h, w] to [N, H, W], sampling at pixel centres
/// (align_corners = false).
pub(crate) fn upsample_bilinear(maps: &Attribution, height: usize, width: usize) -> Attribution {
    let (n, h, w) = (maps.dims[0], maps.dims[1], maps.dims[2]);
    let mut out = vec![0.0f32; n * height * width];
    let source = bilinear_source;
    let (sy, sx) = (h as f64 / height as f64, w as f64 / width as f64);
    for b in 0..n {
        let map = &maps.data[b * h * w..(b + 1) * h * w];
        for y in 0..height {
            let (y0, y1, fy) = source(y, sy, h);
            for x in 0..width {
                let (x0, x1, fx) = source(x, sx, w);
                let top = map[y0 * w + x0] * (1.0 - fx) + map[y0 * w + x1] * fx;
                let bottom = map[y1 * w + x0] * (1.0 - fx) + map[y1 * w + x1] * fx;
                out[(b * height + y) * width + x] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
    Attribution {
        dims: vec![n, height, width],
        data: out,
    }
}

/// For output index `o` of an axis resized by `scale` (input / output length) from `size`
/// inputs: the two input indices it interpolates between and the second one's weight, at
/// pixel centres (align_corners = false). Shared by the upsampling and its adjoint.
pub(crate) fn bilinear_source(o: usize, scale: f64, size: usize) -> (usize, usize, f32) {
    let s = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(size - 1);
    (i0, (i0 + 1).min(size - 1), (s - i0 as f64) as f32)
}
