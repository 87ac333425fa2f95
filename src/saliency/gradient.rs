//! Gradient saliency (Simonyan et al. 2013, "backprop into the image"), gradient × input,
//! SmoothGrad (Smilkov et al. 2017) and guided backprop (Springenberg et al. 2014).

use super::{Attribution, Question, input_gradient};
use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::kernels::attribution::{accumulate, noisy_copies};
use crate::kernels::elementwise::mul;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// ∂score/∂x for each image's class: attributions [N, C, H, W] (reduce with
/// `Reduce::AbsMax` for Simonyan's map).
pub async fn gradient(question: Question<'_>) -> Result<Attribution> {
    host(&gradient_on_gpu(question).await?).await
}

/// x ⊙ ∂score/∂x.
pub async fn gradient_x_input(question: Question<'_>) -> Result<Attribution> {
    host(&gradient_x_input_on_gpu(question).await?).await
}

/// Guided backprop: the input gradient with every ReLU's backward also zeroing negative
/// incoming gradients.
pub async fn guided_backprop(question: Question<'_>) -> Result<Attribution> {
    host(&guided_backprop_on_gpu(question).await?).await
}

/// `gradient`, left on the GPU.
pub(crate) async fn gradient_on_gpu(question: Question<'_>) -> Result<Tensor> {
    input_gradient(question, Tape::new())
}

/// `gradient_x_input`, left on the GPU.
pub(crate) async fn gradient_x_input_on_gpu(question: Question<'_>) -> Result<Tensor> {
    let grad = input_gradient(question, Tape::new())?;
    mul(&grad, question.x)
}

/// `guided_backprop`, left on the GPU.
pub(crate) async fn guided_backprop_on_gpu(question: Question<'_>) -> Result<Tensor> {
    input_gradient(question, Tape::guided())
}

/// SmoothGrad's settings; the defaults are Smilkov et al.'s (15% noise, 50 samples).
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    host(&smoothgrad_on_gpu(question, settings).await?).await
}

/// `smoothgrad`, left on the GPU. The copies are made there (`kernels::attribution`), a batch
/// at a time, and their gradients' |·| summed there: nothing but each image's value range
/// (for σ) is read back, nothing uploaded per sample.
pub(crate) async fn smoothgrad_on_gpu(
    question: Question<'_>,
    settings: &SmoothGrad,
) -> Result<Tensor> {
    let SmoothGrad { samples, batch, .. } = *settings;
    let [n, c, h, w] = question.dims;
    if samples == 0 || batch == 0 {
        return Err(Error::invalid(
            "smoothgrad",
            "samples and batch must be positive",
        ));
    }
    let gpu = question.x.gpu();
    let streams = noise_streams(question.x, settings).await?;
    let sum = Tensor::zeros(gpu, [n, c, h, w])?;
    let weights = Tensor::full(gpu, [batch.min(samples)], 1.0 / samples as f32)?;
    for (image, &(sigma, stream)) in streams.iter().enumerate() {
        let mut done = 0;
        while done < samples {
            let count = batch.min(samples - done);
            let noisy = noisy_copies(question.x, image, count, done as u64, stream, sigma)?;
            let targets = vec![question.classes[image]; count];
            let grad = input_gradient(question.about(&noisy, &targets)?, Tape::new())?;
            accumulate(&sum, image, &grad, &weights, true)?;
            done += count;
        }
    }
    Ok(sum)
}

/// The noisy copies SmoothGrad explains, [N · samples, C, H, W]: each image in turn,
/// `samples` copies of it plus Gaussian noise whose σ is `noise_level` times the image's value
/// range, copy k drawing sample k of the image's stream (what `smoothgrad` makes a batch at a
/// time; see `noise_streams`).
pub async fn smoothgrad_inputs(x: &Tensor, settings: &SmoothGrad) -> Result<Tensor> {
    let [n, c, h, w] = match *x.dims() {
        [n, c, h, w] => [n, c, h, w],
        _ => {
            return Err(Error::invalid(
                "smoothgrad",
                format!("needs images [N, C, H, W], got {:?}", x.dims()),
            ));
        }
    };
    let streams = noise_streams(x, settings).await?;
    let mut copies = Vec::with_capacity(n * settings.samples * c * h * w);
    for (image, &(sigma, stream)) in streams.iter().enumerate() {
        let made = noisy_copies(x, image, settings.samples, 0, stream, sigma)?;
        copies.extend(made.read().await?);
    }
    Tensor::from_slice(x.gpu(), [n * settings.samples, c, h, w], &copies)
}

/// Each image's noise: its deviation, `noise_level` times its value range (max − min over
/// every channel), and its stream, the seed mixed with a hash of the image's values. So an
/// image gets the same noise whatever batch it comes in and wherever it sits there: a run
/// over a folder does not depend on --batch, and a replay is bit for bit the first run.
async fn noise_streams(x: &Tensor, settings: &SmoothGrad) -> Result<Vec<(f32, u64)>> {
    let values = x.read().await?;
    let size = values.len() / x.dims()[0].max(1);
    Ok(values
        .chunks(size.max(1))
        .map(|image| {
            let (lo, hi) = image
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            (
                settings.noise_level * (hi - lo),
                settings.seed ^ content_hash(image),
            )
        })
        .collect())
}

/// FNV-1a over an image's f32 bits: a per-image noise stream that follows the image.
pub(crate) fn content_hash(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325, |hash, value| {
        value.to_bits().to_le_bytes().iter().fold(hash, |h, &byte| {
            (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    })
}

pub(crate) async fn host(t: &Tensor) -> Result<Attribution> {
    Ok(Attribution {
        dims: t.dims().to_vec(),
        data: t.read().await?,
    })
}
