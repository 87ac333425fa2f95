//! Meaningful perturbation (Fong & Vedaldi 2017, "Interpretable Explanations of Black Boxes by
//! Meaningful Perturbation"): learn the smallest deletion mask that destroys the class score.
//!
//! A low-resolution mask m ∈ [0, 1] (1 keeps a pixel) is upsampled bilinearly to the image,
//! jittered, and blends the image with a replacement r: Φ(x; m) = x ⊙ m + r ⊙ (1 − m).
//! Adam minimises λ₁‖1 − m‖₁ + λ₂ Σ|∇m|^β + score(Φ(x; m)). The model's part of the gradient
//! comes from the tape (∂score/∂Φ, batched over the images); the mask's own arithmetic — a few
//! hundred values per image — runs on the host.

use super::{Attribution, Question, scores, scores_and_input_gradient};
use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::nn::SplitMix64;
use crate::reference::cam::{bilinear_source, upsample_bilinear};
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
    let [n, c, height, width] = question.dims;
    let [mh, mw] = settings
        .mask_size
        .unwrap_or([height.div_ceil(8), width.div_ceil(8)]);
    if mh == 0 || mw == 0 || mh > height || mw > width {
        return Err(Error::invalid(
            OP,
            format!("mask {mh}×{mw} for images {height}×{width}"),
        ));
    }
    let plane = height * width;
    let images = question.x.read().await?;
    let mut rng = SplitMix64::new(settings.seed);
    let fixed_replacement = match settings.replacement {
        Replacement::Blur { sigma } => Some(gaussian_blur(&images, height, width, sigma)),
        Replacement::Constant(value) => Some(vec![value; images.len()]),
        Replacement::Noise { .. } => None,
    };
    let mut mask = vec![1.0f32; n * mh * mw];
    let mut adam = Adam::new(mask.len());
    let upsample_mask = |mask: &[f32]| upsample_bilinear(mask, [n, mh, mw], [height, width]);
    let mut original_score = Vec::new();
    let mut perturbed_score = Vec::new();
    for iteration in 0..=settings.iterations {
        let replacement = match (&fixed_replacement, settings.replacement) {
            (Some(r), _) => r.clone(),
            (None, Replacement::Noise { std }) => (0..images.len())
                .map(|_| (rng.normal() * f64::from(std)) as f32)
                .collect(),
            (None, _) => unreachable!("only noise is redrawn"),
        };
        // The last pass measures the final mask without jitter and takes no step.
        let last = iteration == settings.iterations;
        let shift = if last || settings.jitter == 0 {
            (0, 0)
        } else {
            let span = 2 * settings.jitter + 1;
            (
                rng.below(span) as isize - settings.jitter as isize,
                rng.below(span) as isize - settings.jitter as isize,
            )
        };
        let upsampled = upsample_mask(&mask);
        let shifted = shift_maps(&upsampled, n, height, width, shift);
        let mut blended = vec![0.0f32; images.len()];
        for (i, value) in blended.iter_mut().enumerate() {
            let m = shifted[(i / (c * plane)) * plane + i % plane];
            *value = images[i] * m + replacement[i] * (1.0 - m);
        }
        let blended = Tensor::from_slice(question.x.gpu(), [n, c, height, width], &blended)?;
        let blended = question.about(&blended, question.classes)?;
        let (blended_score, grad) = scores_and_input_gradient(blended, Tape::new()).await?;
        if iteration == 0 {
            original_score = scores(question).await?;
        }
        if last {
            perturbed_score = blended_score;
            break;
        }
        // ∂score/∂m_shifted = Σ_c g ⊙ (x − r); then back through the shift and the upsampling.
        let grad = grad.read().await?;
        let mut grad_shifted = vec![0.0f32; n * plane];
        for (i, g) in grad.iter().enumerate() {
            grad_shifted[(i / (c * plane)) * plane + i % plane] += g * (images[i] - replacement[i]);
        }
        let grad_upsampled = shift_maps_adjoint(&grad_shifted, n, height, width, shift);
        let mut grad_mask =
            upsample_bilinear_adjoint(&grad_upsampled, n, [mh, mw], [height, width]);
        add_regulariser_gradients(&mut grad_mask, &mask, n, [mh, mw], settings);
        adam.step(&mut mask, &grad_mask, settings.learning_rate);
        for m in &mut mask {
            *m = m.clamp(0.0, 1.0);
        }
    }
    let upsampled = upsample_mask(&mask);
    Ok(PerturbationResult {
        mask: Attribution {
            dims: vec![n, mh, mw],
            data: mask,
        },
        saliency: Attribution {
            dims: vec![n, height, width],
            data: upsampled.iter().map(|m| 1.0 - m).collect(),
        },
        original_score,
        perturbed_score,
    })
}

/// λ₁ ∂‖1 − m‖₁/∂m = −λ₁ where m < 1; λ₂ ∂Σ|Δm|^β/∂m along both axes.
fn add_regulariser_gradients(
    grad: &mut [f32],
    mask: &[f32],
    n: usize,
    [h, w]: [usize; 2],
    s: &Perturbation,
) {
    for (g, &m) in grad.iter_mut().zip(mask) {
        if m < 1.0 {
            *g -= s.l1;
        }
    }
    let tv = |d: f32| s.tv * s.tv_beta * d.abs().powf(s.tv_beta - 1.0) * d.signum();
    for b in 0..n {
        let at = |y: usize, x: usize| b * h * w + y * w + x;
        for y in 0..h {
            for x in 0..w {
                if x + 1 < w {
                    let d = tv(mask[at(y, x + 1)] - mask[at(y, x)]);
                    grad[at(y, x + 1)] += d;
                    grad[at(y, x)] -= d;
                }
                if y + 1 < h {
                    let d = tv(mask[at(y + 1, x)] - mask[at(y, x)]);
                    grad[at(y + 1, x)] += d;
                    grad[at(y, x)] -= d;
                }
            }
        }
    }
}

/// Adam on the host for the masks (β = 0.9, 0.999; eps 1e-8).
pub(crate) struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    step: i32,
}

impl Adam {
    pub(crate) fn new(len: usize) -> Self {
        Self {
            m: vec![0.0; len],
            v: vec![0.0; len],
            step: 0,
        }
    }

    pub(crate) fn step(&mut self, param: &mut [f32], grad: &[f32], lr: f32) {
        self.step += 1;
        let (b1, b2) = (0.9f32, 0.999f32);
        let (c1, c2) = (1.0 - b1.powi(self.step), 1.0 - b2.powi(self.step));
        for i in 0..param.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * grad[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * grad[i] * grad[i];
            param[i] -= lr / c1 * self.m[i] / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

/// maps shifted by (dy, dx), edges clamped: out[y][x] = in[clamp(y − dy)][clamp(x − dx)].
fn shift_maps(maps: &[f32], n: usize, h: usize, w: usize, (dy, dx): (isize, isize)) -> Vec<f32> {
    let mut out = vec![0.0; maps.len()];
    for b in 0..n {
        for y in 0..h {
            let sy = (y as isize - dy).clamp(0, h as isize - 1) as usize;
            for x in 0..w {
                let sx = (x as isize - dx).clamp(0, w as isize - 1) as usize;
                out[(b * h + y) * w + x] = maps[(b * h + sy) * w + sx];
            }
        }
    }
    out
}

fn shift_maps_adjoint(
    grad: &[f32],
    n: usize,
    h: usize,
    w: usize,
    (dy, dx): (isize, isize),
) -> Vec<f32> {
    let mut out = vec![0.0; grad.len()];
    for b in 0..n {
        for y in 0..h {
            let sy = (y as isize - dy).clamp(0, h as isize - 1) as usize;
            for x in 0..w {
                let sx = (x as isize - dx).clamp(0, w as isize - 1) as usize;
                out[(b * h + sy) * w + sx] += grad[(b * h + y) * w + x];
            }
        }
    }
    out
}

/// The adjoint of `upsample_bilinear`: each output pixel's gradient goes back to its four
/// source taps with the same weights.
fn upsample_bilinear_adjoint(
    grad: &[f32],
    n: usize,
    [h, w]: [usize; 2],
    [height, width]: [usize; 2],
) -> Vec<f32> {
    let mut out = vec![0.0f32; n * h * w];
    let source = bilinear_source;
    let (sy, sx) = (h as f64 / height as f64, w as f64 / width as f64);
    for b in 0..n {
        for y in 0..height {
            let (y0, y1, fy) = source(y, sy, h);
            for x in 0..width {
                let (x0, x1, fx) = source(x, sx, w);
                let g = grad[(b * height + y) * width + x];
                let base = b * h * w;
                out[base + y0 * w + x0] += g * (1.0 - fy) * (1.0 - fx);
                out[base + y0 * w + x1] += g * (1.0 - fy) * fx;
                out[base + y1 * w + x0] += g * fy * (1.0 - fx);
                out[base + y1 * w + x1] += g * fy * fx;
            }
        }
    }
    out
}

/// Separable Gaussian blur of planes of h × w (`values` holds whole planes), borders
/// replicated, radius 3σ.
pub(crate) fn gaussian_blur(values: &[f32], h: usize, w: usize, sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 {
        return values.to_vec();
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let rows = blur_axis(values, &kernel, w, 1);
    blur_axis(&rows, &kernel, h, w)
}

/// Convolves `values` along one axis, of `len` positions `step` elements apart, with the
/// centred `kernel`, borders replicated.
fn blur_axis(values: &[f32], kernel: &[f32], len: usize, step: usize) -> Vec<f32> {
    let radius = (kernel.len() / 2) as isize;
    (0..values.len())
        .map(|i| {
            let position = (i / step) % len;
            let line_start = i - position * step;
            kernel
                .iter()
                .enumerate()
                .map(|(k, weight)| {
                    let source = (position as isize + k as isize - radius)
                        .clamp(0, len as isize - 1) as usize;
                    weight * values[line_start + source * step]
                })
                .sum()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ⟨upsample(m), g⟩ = ⟨m, adjoint(g)⟩ and the same for the shift: the mask gradient is
    /// the true gradient.
    /// The separable blur equals the 2-D sum of the outer-product kernel over replicated
    /// borders, plane by plane.
    #[test]
    fn separable_blur_matches_the_direct_sum() {
        let (planes, h, w, sigma) = (2, 5, 7, 0.8f32);
        let values: Vec<f32> = (0..planes * h * w)
            .map(|i| ((i * 37) % 11) as f32 - 4.0)
            .collect();
        let radius = (3.0 * sigma).ceil() as isize;
        let weights: Vec<f32> = (-radius..=radius)
            .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
            .collect();
        let total: f32 = weights.iter().sum();
        let clamp = |v: isize, len: usize| v.clamp(0, len as isize - 1) as usize;
        let blurred = gaussian_blur(&values, h, w, sigma);
        for p in 0..planes {
            for y in 0..h {
                for x in 0..w {
                    let mut expected = 0.0;
                    for (ky, wy) in (-radius..=radius).zip(&weights) {
                        for (kx, wx) in (-radius..=radius).zip(&weights) {
                            let (sy, sx) = (clamp(y as isize + ky, h), clamp(x as isize + kx, w));
                            expected += wy * wx / (total * total) * values[(p * h + sy) * w + sx];
                        }
                    }
                    let got = blurred[(p * h + y) * w + x];
                    assert!(
                        (got - expected).abs() < 1e-5,
                        "({p}, {y}, {x}): {got} vs {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn adjoints_are_adjoint() {
        let mut rng = SplitMix64::new(5);
        let (n, h, w, height, width) = (2, 3, 4, 10, 13);
        let m: Vec<f32> = (0..n * h * w).map(|_| rng.uniform() as f32).collect();
        let g: Vec<f32> = (0..n * height * width)
            .map(|_| rng.uniform() as f32 - 0.5)
            .collect();
        let up = upsample_bilinear(&m, [n, h, w], [height, width]);
        let left: f32 = up.iter().zip(&g).map(|(a, b)| a * b).sum();
        let back = upsample_bilinear_adjoint(&g, n, [h, w], [height, width]);
        let right: f32 = m.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((left - right).abs() < 1e-4, "{left} vs {right}");
        let shifted = shift_maps(&up, n, height, width, (2, -3));
        let left: f32 = shifted.iter().zip(&g).map(|(a, b)| a * b).sum();
        let back = shift_maps_adjoint(&g, n, height, width, (2, -3));
        let right: f32 = up.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((left - right).abs() < 1e-4, "{left} vs {right}");
    }
}
