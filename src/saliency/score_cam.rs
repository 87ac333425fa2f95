//! Score-CAM (Wang et al. 2020): a class activation map weighted without gradients. Each
//! channel k of a layer's activations, upsampled to the image and scaled to [0, 1], masks the
//! image; the model scores each masked copy, and the channels' weights are the softmax of those
//! scores over the channels: map = ReLU(Σ_k w_k A_k). A channel counts by what the region it
//! fires on does to the score on its own, so saturated or noisy gradients cannot reach the map;
//! the price is one forward pass per channel (512 at ResNet-18's layer4, 2048 at
//! ResNet-50's), run here as batches of masked copies made on the GPU
//! (`kernels::score_cam`). As pytorch-grad-cam's `ScoreCAM`, against which it is checked.

use super::gradcam::marked_layer;
use super::gradient::host;
use super::{Attribution, Question, scores};
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::cam::{upsample_maps, weighted_map};
use crate::kernels::score_cam::masked_copies;
use crate::nn::{Forward, Mode};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Score-CAM's settings.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ScoreCam {
    /// Masked copies per forward pass (pytorch-grad-cam: 16).
    pub batch: usize,
}

impl Default for ScoreCam {
    fn default() -> Self {
        Self { batch: 16 }
    }
}

/// Score-CAM maps at `layer` (default: the model's last convolutional block): [N, h, w] at the
/// layer's resolution and [N, H, W] upsampled to the input's, as `grad_cam` returns them.
pub async fn score_cam(
    question: Question<'_>,
    layer: Option<&str>,
    settings: &ScoreCam,
) -> Result<(Attribution, Attribution)> {
    let [_, _, height, width] = question.dims;
    let Question { explained, x, .. } = question;
    let layer = layer.map_or_else(|| explained.model.gradcam_layer(), str::to_string);
    let tape = Tape::no_grad();
    let f = Forward::new(&tape, explained.store, Mode::Eval).capturing();
    explained.model.forward(&f, &Var::constant(x.clone()))?;
    let activation = marked_layer(&f, &layer)?;
    let &[n, channels, _, _] = activation.dims() else {
        return Err(Error::invalid(
            "score_cam",
            format!("layer {layer} is not [N, C, H, W]"),
        ));
    };
    let batch = settings.batch.max(1);
    let mut weights = Vec::with_capacity(n * channels);
    for (image, &class) in question.classes.iter().enumerate() {
        let mut channel_scores = Vec::with_capacity(channels);
        for first in (0..channels).step_by(batch) {
            let count = batch.min(channels - first);
            let copies = masked_copies(x, activation.tensor(), image, first, count)?;
            let classes = vec![class; count];
            channel_scores.extend(scores(question.about(&copies, &classes)?).await?);
        }
        weights.extend(softmax(&channel_scores));
    }
    let weights = Tensor::from_slice(x.gpu(), [n, channels], &weights)?;
    let low = weighted_map(activation.tensor(), &weights)?;
    let high = upsample_maps(&low, height, width)?;
    Ok((host(&low).await?, host(&high).await?))
}

fn softmax(values: &[f32]) -> Vec<f32> {
    let peak = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = values.iter().map(|&v| f64::from(v - peak).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / total) as f32).collect()
}
