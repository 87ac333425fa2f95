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
//! The weighting, the sum and the upsampling run on the GPU (`kernels::cam`); only the maps
//! are read back. Each is checked against pytorch-grad-cam, and Grad-CAM against Captum
//! (tests/captum.rs).
//!
//! Guided Grad-CAM (Selvaraju et al. 2017) multiplies guided backprop's attribution by the
//! Grad-CAM map upsampled to the input by nearest neighbour, as Captum's `GuidedGradCam` does:
//! the fine detail of the one where the other says the class is.

use super::gradient::{guided_backprop_on_gpu, host};
use super::{Attribution, Cam, Question, one_hot_seed};
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::{self, cam::upsample_maps};
use crate::nn::{Forward, Mode};
use crate::tensor::Tensor;

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
    let [_, _, height, width] = question.dims;
    let mut maps = Vec::with_capacity(kinds.len());
    for low in cam_tensors(question, layer, kinds).await? {
        let high = upsample_maps(&low, height, width)?;
        maps.push((host(&low).await?, host(&high).await?));
    }
    Ok(maps)
}

/// The maps of `kinds` at the layer's resolution [N, h, w], on the GPU.
async fn cam_tensors(
    question: Question<'_>,
    layer: Option<&str>,
    kinds: &[Cam],
) -> Result<Vec<Tensor>> {
    const OP: &str = "class activation map";
    let Question { explained, x, .. } = question;
    let layer = layer.map_or_else(|| explained.model.gradcam_layer(), str::to_string);
    // Gradients to the activations only: no weight gradients.
    let tape = Tape::new().input_gradients_only();
    let f = Forward::new(&tape, explained.store, Mode::Eval).capturing();
    let input = tape.input(x.clone());
    let logits = explained.model.forward(&f, &input)?;
    let activation = marked_layer(&f, &layer)?;
    let output = question.score.of(&tape, logits)?;
    let seed = one_hot_seed(&output, question.classes)?;
    let grads = tape.backward_keeping(&output, Some(seed), &[&activation])?;
    if activation.dims().len() != 4 {
        return Err(Error::invalid(
            OP,
            format!("layer {layer} is not [N, C, H, W]"),
        ));
    }
    let g = grads
        .get(&activation)
        .ok_or_else(|| Error::invalid(OP, format!("the score does not depend on {layer}")))?;
    kinds
        .iter()
        .map(|&kind| kernels::cam::class_activation_map(activation.tensor(), g, kind))
        .collect()
}

/// Guided Grad-CAM at `layer` (default: the model's last convolutional block): attributions
/// [N, C, H, W], guided backprop's times the Grad-CAM map at the input's size (nearest
/// neighbour, as torch's F.interpolate(mode="nearest")).
pub async fn guided_grad_cam(question: Question<'_>, layer: Option<&str>) -> Result<Attribution> {
    host(&guided_grad_cam_on_gpu(question, layer).await?).await
}

/// `guided_grad_cam`, left on the GPU.
pub(crate) async fn guided_grad_cam_on_gpu(
    question: Question<'_>,
    layer: Option<&str>,
) -> Result<Tensor> {
    let guided = guided_backprop_on_gpu(question).await?;
    let cam = cam_tensors(question, layer, &[Cam::GradCam])
        .await?
        .remove(0);
    kernels::cam::scale_by_nearest(&guided, &cam)
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
