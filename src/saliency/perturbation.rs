//! Meaningful perturbation (Fong & Vedaldi 2017, "Interpretable Explanations of Black Boxes by
//! Meaningful Perturbation"): learn the smallest deletion mask that destroys the class score.
//!
//! A low-resolution mask m ∈ [0, 1] (1 keeps a pixel) is upsampled bilinearly to the image,
//! jittered, and blends the image with a replacement r: Φ(x; m) = x ⊙ m + r ⊙ (1 − m).
//! Adam minimises λ₁‖1 − m‖₁ + λ₂ Σ|∇m|^β + score(Φ(x; m)). The model's part of the gradient
//! comes from the tape (∂score/∂Φ, batched over the images); the mask's own arithmetic
//! (blend, gradient, Adam) runs on the GPU too (shaders/perturbation.wgsl): nothing is read
//! back until the final mask and scores.

use super::{Attribution, Question, input_gradient, scores};
use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::kernels::cam::upsample_maps;
use crate::kernels::optim::{AdamStep, adam_step};
use crate::kernels::perturbation::{
    MaskPenalty, Shift, blend_with_mask, blur_pyramid, clamp_to_unit, mask_gradient,
    mask_pixel_gradient, replacement_noise,
};
use crate::nn::SplitMix64;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// What deleted pixels are replaced with.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Replacement {
    /// The image blurred with a Gaussian of this σ in pixels (the paper's choice, σ = 10 at 224).
    Blur {
        sigma: f32,
    },
    Constant(f32),
    /// Gaussian noise of this standard deviation, redrawn at every iteration.
    Noise {
        std: f32,
    },
}

/// Settings; the defaults are the paper's for 224×224 inputs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Perturbation {
    /// Mask side length before upsampling (28 at 224: one mask value per 8×8 pixels). `None`
    /// scales it as the image: ceil(H / 8) × ceil(W / 8).
    pub mask_size: Option<[usize; 2]>,
    pub iterations: usize,
    pub learning_rate: f32,
    /// λ₁, on the sum of 1 − m.
    pub l1: f32,
    /// λ₂, on the sum of |m_{i+1} − m_i|^β over both axes.
    pub tv: f32,
    pub tv_beta: f32,
    /// Random shift of the upsampled mask, up to this many pixels, at each iteration.
    pub jitter: usize,
    pub replacement: Replacement,
    pub seed: u64,
}

impl Default for Perturbation {
    fn default() -> Self {
        Self {
            mask_size: None,
            iterations: 300,
            learning_rate: 0.1,
            l1: 1e-4,
            tv: 1e-2,
            tv_beta: 3.0,
            jitter: 4,
            replacement: Replacement::Blur { sigma: 10.0 },
            seed: 0,
        }
    }
}

pub struct PerturbationResult {
    /// The learnt masks [N, h, w] (1 keeps, 0 deletes).
    pub mask: Attribution,
    /// The saliency: 1 − the upsampled mask, [N, H, W] — the "minimal destroying region".
    pub saliency: Attribution,
    /// The class score of the original and of the final perturbed image.
    pub original_score: Vec<f32>,
    pub perturbed_score: Vec<f32>,
}

/// Learns a deletion mask for each image's class. (The paper explains the softmax
/// probability: `Score::Probability`.)
pub async fn meaningful_perturbation(
    question: Question<'_>,
    settings: &Perturbation,
) -> Result<PerturbationResult> {
    const OP: &str = "meaningful_perturbation";
    let [n, _, height, width] = question.dims;
    let [mh, mw] = settings
        .mask_size
        .unwrap_or([height.div_ceil(8), width.div_ceil(8)]);
    if mh == 0 || mw == 0 || mh > height || mw > width {
        return Err(Error::invalid(
            OP,
            format!("mask {mh}×{mw} for images {height}×{width}"),
        ));
    }
    let gpu = question.x.gpu();
    let images = question.x;
    let mut rng = SplitMix64::new(settings.seed);
    let fixed_replacement = match settings.replacement {
        Replacement::Blur { sigma } => {
            Some(blur_pyramid(images, 1, sigma)?.reshape(question.dims)?)
        }
        Replacement::Constant(value) => Some(Tensor::full(gpu, question.dims, value)?),
        Replacement::Noise { .. } => None,
    };
    let mask = Tensor::full(gpu, [n, mh, mw], 1.0)?;
    let mut adam = MaskAdam::new(&mask, settings.learning_rate)?;
    let penalty = MaskPenalty {
        l1: settings.l1,
        tv: settings.tv,
        tv_beta: settings.tv_beta,
    };
    let original_score = scores(question).await?;
    let mut perturbed_score = Vec::new();
    for iteration in 0..=settings.iterations {
        let replacement = match (&fixed_replacement, settings.replacement) {
            (Some(r), _) => r.clone(),
            (None, Replacement::Noise { std }) => {
                replacement_noise(gpu, question.dims, std, settings.seed, iteration as u32)?
            }
            (None, _) => unreachable!("only noise is redrawn"),
        };
        // The last pass measures the final mask without jitter and takes no step.
        let last = iteration == settings.iterations;
        let shift = if last || settings.jitter == 0 {
            Shift { dy: 0, dx: 0 }
        } else {
            let span = 2 * settings.jitter + 1;
            let mut draw = || rng.below(span) as i32 - settings.jitter as i32;
            Shift {
                dy: draw(),
                dx: draw(),
            }
        };
        let blended = blend_with_mask(images, &replacement, &mask, shift)?;
        let blended = question.about(&blended, question.classes)?;
        if last {
            perturbed_score = scores(blended).await?;
            break;
        }
        // Nothing is read back during the optimisation: the GPU runs ahead of the host.
        let grad = input_gradient(blended, Tape::new())?;
        let pixel_grad = mask_pixel_gradient(images, &replacement, &grad, shift)?;
        adam.step(&mask, &mask_gradient(&mask, &pixel_grad, penalty)?)?;
    }
    let upsampled = upsample_maps(&mask, height, width)?.read().await?;
    Ok(PerturbationResult {
        mask: Attribution {
            dims: vec![n, mh, mw],
            data: mask.read().await?,
        },
        saliency: Attribution {
            dims: vec![n, height, width],
            data: upsampled.iter().map(|m| 1.0 - m).collect(),
        },
        original_score,
        perturbed_score,
    })
}

/// Adam on masks kept in [0, 1] (β = 0.9, 0.999, ε = 1e-8, no weight decay; a clamp after each
/// step), its moments on the GPU beside the masks.
pub(super) struct MaskAdam {
    moment1: Tensor,
    moment2: Tensor,
    lr: f32,
    steps: u32,
}

impl MaskAdam {
    pub(super) fn new(masks: &Tensor, lr: f32) -> Result<Self> {
        Ok(Self {
            moment1: Tensor::zeros(masks.gpu(), masks.dims())?,
            moment2: Tensor::zeros(masks.gpu(), masks.dims())?,
            lr,
            steps: 0,
        })
    }

    pub(super) fn step(&mut self, masks: &Tensor, grad: &Tensor) -> Result<()> {
        self.steps += 1;
        let step = AdamStep {
            lr: self.lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            step: self.steps,
        };
        adam_step(masks, grad, &self.moment1, &self.moment2, &step)?;
        clamp_to_unit(masks)
    }
}
