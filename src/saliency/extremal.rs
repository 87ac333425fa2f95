//! Extremal perturbation (Fong, Patro & Vedaldi 2019, "Understanding Deep Networks via
//! Extremal Perturbations and Smooth Masks"), written from the paper. Where meaningful
//! perturbation (2017) trades the mask's size against the score with hand-tuned weights, an
//! extremal mask has a fixed area a and keeps as much of the class score as any mask of that
//! area can: m_a = argmax_{area(m) = a} Φ(m ⊗ x), the "preservation game".
//!
//! - Smooth masks: the mask is a max-convolution of a coarse grid of values m̄ ∈ [0, 1] (one
//!   every `step` pixels) with a Gaussian bump k(z) = exp(−‖z‖² / 2σ²): m(u) = max_v k(u − v)
//!   m̄(v). Every mask is a union of smooth blobs, so it cannot be an adversarial speckle, and
//!   its smoothness is a setting (σ) instead of a penalty.
//! - The perturbation blurs: m ⊗ x at u interpolates between blurred copies of x (a stack of
//!   `levels` Gaussian blurs, σ from 0 to `max_blur`) at level (1 − m(u)) · (levels − 1).
//! - The area constraint is the penalty λ ‖sort(m) − r_a‖² / |Ω|, r_a being (1 − a)|Ω| zeros
//!   then a|Ω| ones: it asks for the mask's histogram, not only its mean, to be a's. λ grows
//!   geometrically from 1 to `area_weight` over the first half of the iterations, so the score
//!   shapes the mask first and the area then tightens it.
//!
//! Each image is optimised for every area at once (a batch of N · areas perturbed images per
//! pass); the saliency is the sum of its masks over the areas, as the paper shows it. The
//! model's gradient comes from the tape; the masks' own arithmetic (the max-convolution and
//! its adjoint, the blur pyramid, the area penalty's rank threshold, Adam) runs on the GPU too
//! (shaders/perturbation.wgsl): nothing is read back until the final masks and scores.

use super::perturbation::MaskAdam;
use super::{Attribution, Question, input_gradient, scores};
use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::kernels::perturbation::{
    KeptCounts, SmoothMasks, blend_pyramid, blur_pyramid, extremal_mask_gradient,
};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Settings; the defaults are the paper's for 224×224 inputs, with fewer iterations.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExtremalPerturbation {
    /// The areas, as fractions of the image (the paper: 5%, 10%, 20%).
    pub areas: Vec<f32>,
    /// Pixels between the coarse grid's values.
    pub step: usize,
    /// The bump's σ in pixels.
    pub sigma: f32,
    /// Blurred copies from the image itself to `max_blur`.
    pub levels: usize,
    /// The strongest blur's σ in pixels.
    pub max_blur: f32,
    pub iterations: usize,
    pub learning_rate: f32,
    /// λ at the end of the ramp.
    pub area_weight: f32,
}

impl Default for ExtremalPerturbation {
    fn default() -> Self {
        Self {
            areas: vec![0.05, 0.1, 0.2],
            step: 7,
            sigma: 21.0,
            levels: 8,
            max_blur: 20.0,
            iterations: 300,
            learning_rate: 0.05,
            area_weight: 1000.0,
        }
    }
}

pub struct ExtremalResult {
    /// Per image and area, the mask [N, areas, H, W] (1 keeps a pixel).
    pub masks: Attribution,
    /// The saliency [N, H, W]: each image's masks summed over the areas.
    pub saliency: Attribution,
    /// Per image and area, the share of the image the final mask keeps (its mean).
    pub kept_area: Vec<f32>,
    /// Per image and area, the class score of the final perturbed image.
    pub score: Vec<f32>,
}

/// Extremal masks for each image's class score, for every area of `settings`.
pub async fn extremal_perturbation(
    question: Question<'_>,
    settings: &ExtremalPerturbation,
) -> Result<ExtremalResult> {
    const OP: &str = "extremal_perturbation";
    let [n, _, height, width] = question.dims;
    let areas = &settings.areas;
    if areas.is_empty() || areas.iter().any(|a| !(*a > 0.0 && *a < 1.0)) {
        return Err(Error::invalid(
            OP,
            format!("areas {areas:?}: each must lie strictly between 0 and 1"),
        ));
    }
    // Every pixel must have a grid point within the bump's reach (3σ ≥ step / 2), or its mask
    // value would be undefined.
    let sigma_floor = settings.step as f32 / 6.0;
    let sigma_reaches = settings.sigma.is_finite() && settings.sigma >= sigma_floor;
    if settings.step == 0 || settings.levels < 2 || !sigma_reaches {
        return Err(Error::invalid(
            OP,
            format!(
                "step {}, {} blur levels, σ {}: the step must be positive, the levels at least \
                 2 and σ at least step / 6",
                settings.step, settings.levels, settings.sigma
            ),
        ));
    }
    let positive = |value: f32| value.is_finite() && value > 0.0;
    let blur_ok = settings.max_blur.is_finite() && settings.max_blur >= 0.0;
    let valid = positive(settings.area_weight) && positive(settings.learning_rate) && blur_ok;
    if !valid {
        return Err(Error::invalid(
            OP,
            format!(
                "area weight {}, learning rate {}, maximum blur {}: the first two must be \
                 positive, the blur at least 0",
                settings.area_weight, settings.learning_rate, settings.max_blur
            ),
        ));
    }
    let plane = height * width;
    let copies = n * areas.len();
    let gpu = question.x.gpu();
    // Level l holds every image blurred with σ = max_blur · l / (levels − 1).
    let pyramid = blur_pyramid(question.x, settings.levels, settings.max_blur)?;
    let smooth = SmoothMasks::new(gpu, [height, width], settings.step, settings.sigma)?;
    let grids = Tensor::full(gpu, [copies, smooth.grid[0], smooth.grid[1]], 0.5)?;
    let mut adam = MaskAdam::new(&grids, settings.learning_rate)?;
    // The area penalty's target r_a has round(a |Ω|) ones.
    let kept: Vec<usize> = areas
        .iter()
        .map(|a| (a * plane as f32).round() as usize)
        .collect();
    let kept = KeptCounts::new(gpu, [height, width], &kept)?;
    let classes: Vec<usize> = question
        .classes
        .iter()
        .flat_map(|&class| std::iter::repeat_n(class, areas.len()))
        .collect();
    let ramp = (settings.iterations / 2).max(1);
    for iteration in 0..settings.iterations {
        let (masks, winners) = smooth.apply(&grids)?;
        let perturbed = blend_pyramid(&pyramid, &masks, areas.len())?;
        let grad = input_gradient(question.about(&perturbed, &classes)?, Tape::new())?;
        // Ascent on the score is descent on its negative; the area penalty is descended.
        let weight = settings
            .area_weight
            .powf((iteration.min(ramp)) as f32 / ramp as f32);
        let thresholds = kept.threshold(&masks)?;
        let mask_grad =
            extremal_mask_gradient(&pyramid, &masks, areas.len(), &thresholds, &grad, weight)?;
        adam.step(&grids, &smooth.adjoint(&mask_grad, &winners)?)?;
    }
    // The final masks and what they keep of the scores.
    let (masks, _) = smooth.apply(&grids)?;
    let perturbed = blend_pyramid(&pyramid, &masks, areas.len())?;
    let score = scores(question.about(&perturbed, &classes)?).await?;
    let masks = masks.read().await?;
    let mut saliency = vec![0.0f32; n * plane];
    for (copy, mask) in masks.chunks(plane).enumerate() {
        let image = copy / areas.len();
        for (s, m) in saliency[image * plane..(image + 1) * plane]
            .iter_mut()
            .zip(mask)
        {
            *s += m;
        }
    }
    Ok(ExtremalResult {
        kept_area: masks
            .chunks(plane)
            .map(|mask| mask.iter().sum::<f32>() / plane as f32)
            .collect(),
        masks: Attribution {
            dims: vec![n, areas.len(), height, width],
            data: masks,
        },
        saliency: Attribution {
            dims: vec![n, height, width],
            data: saliency,
        },
        score,
    })
}
