//! Gradient saliency (Simonyan et al. 2013, "backprop into the image"), gradient × input,
//! SmoothGrad (Smilkov et al. 2017) and guided backprop (Springenberg et al. 2014).

use super::{Attribution, Question, scores_and_input_gradient};
use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::kernels::elementwise::mul;
use crate::nn::SplitMix64;
use crate::tensor::Tensor;

/// ∂score/∂x for each image's class: attributions [N, C, H, W] (reduce with
/// `Reduce::AbsMax` for Simonyan's map).
pub async fn gradient(question: Question<'_>) -> Result<Attribution> {
    let (_, grad) = scores_and_input_gradient(question, Tape::new()).await?;
    host(&grad).await
}

/// x ⊙ ∂score/∂x.
pub async fn gradient_x_input(question: Question<'_>) -> Result<Attribution> {
    let (_, grad) = scores_and_input_gradient(question, Tape::new()).await?;
    host(&mul(&grad, question.x)?).await
}

/// Guided backprop: the input gradient with every ReLU's backward also zeroing negative
/// incoming gradients.
pub async fn guided_backprop(question: Question<'_>) -> Result<Attribution> {
    let (_, grad) = scores_and_input_gradient(question, Tape::guided()).await?;
    host(&grad).await
}

/// SmoothGrad's settings; the defaults are Smilkov et al.'s (15% noise, 50 samples).
#[derive(Clone, Debug)]
pub struct SmoothGrad {
    /// The noise's standard deviation as a fraction of each image's value range.
    pub noise_level: f32,
    pub samples: usize,
    /// Noisy copies per forward pass.
    pub batch: usize,
    pub seed: u64,
}

impl Default for SmoothGrad {
    fn default() -> Self {
        Self {
            noise_level: 0.15,
            samples: 50,
            batch: 16,
            seed: 0,
        }
    }
}

/// SmoothGrad: the mean of |∂score/∂x| over noisy copies of each image. |·| is taken per
/// sample before averaging, as Captum's NoiseTunnel over Saliency does.
pub async fn smoothgrad(question: Question<'_>, settings: &SmoothGrad) -> Result<Attribution> {
    let SmoothGrad { samples, batch, .. } = *settings;
    let [n, c, h, w] = question.dims;
    if samples == 0 || batch == 0 {
        return Err(Error::invalid(
            "smoothgrad",
            "samples and batch must be positive",
        ));
    }
    let size = c * h * w;
    let images = question.x.read().await?;
    let mut noise = Noise::new(settings);
    let mut sum = vec![0.0f32; n * size];
    for (image, original) in images.chunks(size).enumerate() {
        // A batch of noisy copies at a time: host memory bounded by the batch, not the samples.
        let mut done = 0;
        while done < samples {
            let count = batch.min(samples - done);
            let noisy = noise.copies(original, count);
            let noisy = Tensor::from_slice(question.x.gpu(), [count, c, h, w], &noisy)?;
            let targets = vec![question.classes[image]; count];
            let noisy = question.about(&noisy, &targets)?;
            let (_, grad) = scores_and_input_gradient(noisy, Tape::new()).await?;
            for (k, g) in grad.read().await?.into_iter().enumerate() {
                sum[image * size + k % size] += g.abs();
            }
            done += count;
        }
    }
    let scale = 1.0 / samples as f32;
    Ok(Attribution {
        dims: vec![n, c, h, w],
        data: sum.into_iter().map(|v| v * scale).collect(),
    })
}

/// The noisy copies SmoothGrad explains, [N · samples, C, H, W] for `n` images on the host:
/// each image in turn, `samples` copies of it plus Gaussian noise whose σ is `noise_level` times
/// the image's value range, drawn in that order from `seed`.
pub fn smoothgrad_inputs(images: &[f32], n: usize, settings: &SmoothGrad) -> Vec<f32> {
    let size = images.len() / n.max(1);
    let mut noise = Noise::new(settings);
    images
        .chunks(size.max(1))
        .flat_map(|original| noise.copies(original, settings.samples))
        .collect()
}

/// SmoothGrad's noise, drawn in one sequence from its seed however the copies are batched.
struct Noise {
    rng: SplitMix64,
    level: f32,
}

impl Noise {
    fn new(settings: &SmoothGrad) -> Self {
        Self {
            rng: SplitMix64::new(settings.seed),
            level: settings.noise_level,
        }
    }

    /// The next `count` noisy copies of `original`: σ is the noise level times its value range.
    fn copies(&mut self, original: &[f32], count: usize) -> Vec<f32> {
        let (lo, hi) = original
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let sigma = f64::from(self.level * (hi - lo));
        let mut noisy = Vec::with_capacity(original.len() * count);
        for _ in 0..count {
            noisy.extend(
                original
                    .iter()
                    .map(|&v| v + (self.rng.normal() * sigma) as f32),
            );
        }
        noisy
    }
}

pub(crate) async fn host(t: &Tensor) -> Result<Attribution> {
    Ok(Attribution {
        dims: t.dims().to_vec(),
        data: t.read().await?,
    })
}
