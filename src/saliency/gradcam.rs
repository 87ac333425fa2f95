//! Grad-CAM (Selvaraju et al. 2017): the activations A of a named layer weighted by the spatial
//! mean of ∂score/∂A per channel, summed over channels, ReLU'd, and upsampled to the input.

use super::{Attribution, Question, one_hot_seed};
use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::nn::{Forward, Mode};

/// Grad-CAM maps at `layer` (default: the model's last convolutional block): [N, h, w] at the
/// layer's resolution, and [N, H, W] bilinearly upsampled to the input's (align_corners =
/// false, as torch's F.interpolate).
pub async fn grad_cam(
    question: Question<'_>,
    layer: Option<&str>,
) -> Result<(Attribution, Attribution)> {
    const OP: &str = "grad_cam";
    let [_, _, height, width] = question.dims;
    let Question { explained, x, .. } = question;
    let layer = layer.map_or_else(|| explained.model.gradcam_layer(), str::to_string);
    // Gradients to the activations only: no weight gradients.
    let tape = Tape::new().input_gradients_only();
    let f = Forward::new(&tape, explained.store, Mode::Eval).capturing();
    let input = tape.input(x.clone());
    let logits = explained.model.forward(&f, &input)?;
    let activation = f.marked(&layer).ok_or_else(|| {
        Error::invalid(
            OP,
            format!(
                "no layer named {layer:?}; the model marks {}",
                f.marked_names().join(", ")
            ),
        )
    })?;
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
    let mut cam = vec![0.0f32; n * plane];
    for b in 0..n {
        for k in 0..channels {
            let base = (b * channels + k) * plane;
            let alpha = g[base..base + plane].iter().sum::<f32>() / plane as f32;
            for p in 0..plane {
                cam[b * plane + p] += alpha * a[base + p];
            }
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
    Ok((low, high))
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
