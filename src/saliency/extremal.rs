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
//! model's gradient comes from the tape on the GPU; the masks' own arithmetic (the max-
//! convolution, the sort) runs on the host, as meaningful perturbation's does.

use super::perturbation::{Adam, gaussian_blur};
use super::{Attribution, Question, scores_and_input_gradient};
use crate::autograd::Tape;
use crate::error::{Error, Result};
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

/// The smooth masks' max-convolution over the grid points within 3σ of each pixel. The bump
/// is separable, k(dy, dx) = k(dy) k(dx): each axis keeps, per pixel, its grid points in reach
/// with their weights, and a pixel's taps are a row list times a column list.
struct MaxConvolution {
    size: [usize; 2],
    grid: [usize; 2],
    /// Per pixel row, then per pixel column: (grid index along the axis, weight).
    rows: Vec<Vec<(usize, f32)>>,
    columns: Vec<Vec<(usize, f32)>>,
}

impl MaxConvolution {
    fn new(size: [usize; 2], step: usize, sigma: f32) -> Self {
        let grid = [size[0].div_ceil(step) + 1, size[1].div_ceil(step) + 1];
        let reach = 3.0 * sigma;
        let axis = |pixels: usize, points: usize| -> Vec<Vec<(usize, f32)>> {
            (0..pixels)
                .map(|at| {
                    (0..points)
                        .filter_map(|g| {
                            let d = (g * step) as f32 - at as f32;
                            (d.abs() <= reach).then(|| (g, (-d * d / (2.0 * sigma * sigma)).exp()))
                        })
                        .collect()
                })
                .collect()
        };
        Self {
            size,
            grid,
            rows: axis(size[0], grid[0]),
            columns: axis(size[1], grid[1]),
        }
    }

    fn grid_len(&self) -> usize {
        self.grid[0] * self.grid[1]
    }

    /// The mask of `values` (one grid), and for each pixel the grid index that sets it with
    /// that point's bump weight.
    fn apply(&self, values: &[f32]) -> (Vec<f32>, Vec<(usize, f32)>) {
        let [height, width] = self.size;
        let mut mask = Vec::with_capacity(height * width);
        let mut winners = Vec::with_capacity(height * width);
        for y in 0..height {
            for x in 0..width {
                // (value, bump weight, grid index); a tie (zeros, where the mask has let go)
                // goes to the nearest point, so that its gradient can pull the mask back.
                let mut best = (f32::NEG_INFINITY, 0.0f32, 0usize);
                for &(gy, ky) in &self.rows[y] {
                    for &(gx, kx) in &self.columns[x] {
                        let weight = ky * kx;
                        let g = gy * self.grid[1] + gx;
                        let value = weight * values[g];
                        if value > best.0 || (value == best.0 && weight > best.1) {
                            best = (value, weight, g);
                        }
                    }
                }
                mask.push(best.0);
                winners.push((best.2, best.1));
            }
        }
        (mask, winners)
    }

    /// ∂/∂values of Σ_u grad[u] m(u): each pixel's gradient goes to the grid point that sets
    /// it, times that point's bump weight.
    fn adjoint(grad: &[f32], winners: &[(usize, f32)], out: &mut [f32]) {
        for (&g, &(winner, weight)) in grad.iter().zip(winners) {
            out[winner] += g * weight;
        }
    }
}

/// Extremal masks for each image's class score, for every area of `settings`.
pub async fn extremal_perturbation(
    question: Question<'_>,
    settings: &ExtremalPerturbation,
) -> Result<ExtremalResult> {
    const OP: &str = "extremal_perturbation";
    let [n, c, height, width] = question.dims;
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
    let size = c * plane;
    let copies = n * areas.len();
    let images = question.x.read().await?;
    // levels[l] holds every image blurred with σ = max_blur · l / (levels − 1).
    let pyramid: Vec<Vec<f32>> = (0..settings.levels)
        .map(|l| {
            let sigma = settings.max_blur * l as f32 / (settings.levels - 1) as f32;
            gaussian_blur(&images, height, width, sigma)
        })
        .collect();
    let convolution = MaxConvolution::new([height, width], settings.step, settings.sigma);
    let grid_len = convolution.grid_len();
    let mut grids = vec![0.5f32; copies * grid_len];
    let mut adam = Adam::new(grids.len());
    let classes: Vec<usize> = question
        .classes
        .iter()
        .flat_map(|&class| std::iter::repeat_n(class, areas.len()))
        .collect();
    let ramp = (settings.iterations / 2).max(1);
    let top = (settings.levels - 1) as f32;
    let mut masks = vec![0.0f32; copies * plane];
    let mut argmax = vec![(0usize, 0.0f32); copies * plane];
    let mut score = Vec::new();
    for iteration in 0..=settings.iterations {
        for copy in 0..copies {
            let (mask, winners) = convolution.apply(&grids[copy * grid_len..(copy + 1) * grid_len]);
            masks[copy * plane..(copy + 1) * plane].copy_from_slice(&mask);
            argmax[copy * plane..(copy + 1) * plane].copy_from_slice(&winners);
        }
        // The perturbed images, and for each pixel d(perturbed)/dm, for the gradient below.
        let mut perturbed = vec![0.0f32; copies * size];
        let mut slope = vec![0.0f32; copies * size];
        for copy in 0..copies {
            let image = copy / areas.len();
            for ch in 0..c {
                for p in 0..plane {
                    let level = (1.0 - masks[copy * plane + p]).clamp(0.0, 1.0) * top;
                    let low = (level.floor() as usize).min(settings.levels - 2);
                    let fraction = level - low as f32;
                    let i = image * size + ch * plane + p;
                    let (a, b) = (pyramid[low][i], pyramid[low + 1][i]);
                    perturbed[copy * size + ch * plane + p] = a + fraction * (b - a);
                    // level falls by `top` per unit of m.
                    slope[copy * size + ch * plane + p] = -top * (b - a);
                }
            }
        }
        let batch = Tensor::from_slice(question.x.gpu(), [copies, c, height, width], &perturbed)?;
        let asked = question.about(&batch, &classes)?;
        let (scores, grad) = scores_and_input_gradient(asked, Tape::new()).await?;
        if iteration == settings.iterations {
            score = scores;
            break;
        }
        let weight = settings
            .area_weight
            .powf((iteration.min(ramp)) as f32 / ramp as f32);
        let grad = grad.read().await?;
        let mut grid_grad = vec![0.0f32; grids.len()];
        for copy in 0..copies {
            let mask = &masks[copy * plane..(copy + 1) * plane];
            // Ascent on the score is descent on its negative; the area penalty is descended.
            let mut mask_grad = area_penalty_gradient(mask, areas[copy % areas.len()], weight);
            let image_grad = &grad[copy * size..(copy + 1) * size];
            let image_slope = &slope[copy * size..(copy + 1) * size];
            for (channel_grad, channel_slope) in
                image_grad.chunks(plane).zip(image_slope.chunks(plane))
            {
                for ((m, g), d) in mask_grad.iter_mut().zip(channel_grad).zip(channel_slope) {
                    *m -= g * d;
                }
            }
            MaxConvolution::adjoint(
                &mask_grad,
                &argmax[copy * plane..(copy + 1) * plane],
                &mut grid_grad[copy * grid_len..(copy + 1) * grid_len],
            );
        }
        adam.step(&mut grids, &grid_grad, settings.learning_rate);
        for value in &mut grids {
            *value = value.clamp(0.0, 1.0);
        }
    }
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

/// ∂/∂m of λ ‖sort(m) − r_a‖² / |Ω|: the sorted values' residuals against r_a (zeros, then the
/// last a|Ω| ones), sent back to the pixels they came from.
fn area_penalty_gradient(mask: &[f32], area: f32, weight: f32) -> Vec<f32> {
    let len = mask.len();
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| mask[a].total_cmp(&mask[b]));
    let ones_from = len - (area * len as f32).round() as usize;
    let mut grad = vec![0.0f32; len];
    for (rank, &pixel) in order.iter().enumerate() {
        let target = if rank >= ones_from { 1.0 } else { 0.0 };
        grad[pixel] = 2.0 * weight * (mask[pixel] - target) / len as f32;
    }
    grad
}
