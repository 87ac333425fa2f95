//! Integrated Gradients (Sundararajan et al. 2017): (x − x') ⊙ ∫₀¹ ∂F(x' + α(x − x'))/∂x dα,
//! by a quadrature along the straight path, batched along the path, on the GPU from the path's
//! points to the attributions.

use super::gradient::host;
use super::{Attribution, Question, input_gradient, scores};
use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::kernels::attribution::{accumulate, interpolate};
use crate::kernels::elementwise::{mul, sub};
use crate::kernels::reduce::sum;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// The quadrature rule (Captum's names: riemann_left, _right, _middle, _trapezoid,
/// gausslegendre). Our trapezoid weights sum to 1; Captum 0.9's sum to (n − 1)/n (it halves
/// the end steps of n steps of 1/n), so its trapezoid attributions are ours × (n − 1)/n.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Path {
    RiemannLeft,
    RiemannRight,
    RiemannMiddle,
    RiemannTrapezoid,
    GaussLegendre,
}

/// Settings; the defaults are Captum's (50 steps, Gauss–Legendre, a black baseline).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IntegratedGradients {
    pub steps: usize,
    pub path: Path,
    /// Interpolated images per forward pass: bounds memory (DenseNet on a big image).
    pub batch: usize,
    /// One baseline image [C, H, W] for all images; `None` is all zeros.
    pub baseline: Option<Vec<f32>>,
}

impl Default for IntegratedGradients {
    fn default() -> Self {
        Self {
            steps: 50,
            path: Path::GaussLegendre,
            batch: 16,
            baseline: None,
        }
    }
}

/// The attributions and, per image, the completeness check: Σ attributions − (F(x) − F(x')),
/// which a fine enough path drives to 0.
pub struct IntegratedGradientsResult {
    pub attribution: Attribution,
    pub completeness_error: Vec<f32>,
    /// F(x) − F(x') per image, to judge the error against.
    pub score_difference: Vec<f32>,
}

/// Integrated Gradients of each image's class score.
pub async fn integrated_gradients(
    question: Question<'_>,
    settings: &IntegratedGradients,
) -> Result<IntegratedGradientsResult> {
    let on_gpu = integrated_gradients_on_gpu(question, settings).await?;
    Ok(IntegratedGradientsResult {
        attribution: host(&on_gpu.attribution).await?,
        completeness_error: on_gpu.completeness_error,
        score_difference: on_gpu.score_difference,
    })
}

/// `integrated_gradients` with the attributions left on the GPU [N, C, H, W].
pub(crate) struct IntegratedGradientsOnGpu {
    pub attribution: Tensor,
    pub completeness_error: Vec<f32>,
    pub score_difference: Vec<f32>,
}

/// Integrated gradients with the path's points made, their gradients weighted and summed, and
/// the attributions formed on the GPU (`kernels::attribution`): what is read back is one sum
/// and two scores per image.
pub(crate) async fn integrated_gradients_on_gpu(
    question: Question<'_>,
    settings: &IntegratedGradients,
) -> Result<IntegratedGradientsOnGpu> {
    const OP: &str = "integrated_gradients";
    let [n, c, h, w] = question.dims;
    if settings.steps == 0 || settings.batch == 0 {
        return Err(Error::invalid(OP, "steps and batch must be positive"));
    }
    let size = c * h * w;
    let baseline = match &settings.baseline {
        Some(b) if b.len() == size => b.clone(),
        Some(b) => {
            return Err(Error::invalid(
                OP,
                format!("baseline of {} values for images of {c}×{h}×{w}", b.len()),
            ));
        }
        None => vec![0.0; size],
    };
    let (alphas, weights) = quadrature(settings.path, settings.steps);
    // As Captum: each α and weight rounded to f32, the path formed and the sum taken in f32.
    let to_f32 = |values: &[f64]| -> Vec<f32> { values.iter().map(|&v| v as f32).collect() };
    let (alphas, weights) = (to_f32(&alphas), to_f32(&weights));
    let gpu = question.x.gpu();
    let baseline_image = Tensor::from_slice(gpu, [c, h, w], &baseline)?;
    let integral = Tensor::zeros(gpu, [n, c, h, w])?;
    for image in 0..n {
        for (chunk_alphas, chunk_weights) in alphas
            .chunks(settings.batch)
            .zip(weights.chunks(settings.batch))
        {
            let batch = chunk_alphas.len();
            let chunk_alphas = Tensor::from_slice(gpu, [batch], chunk_alphas)?;
            let chunk_weights = Tensor::from_slice(gpu, [batch], chunk_weights)?;
            let path = interpolate(question.x, image, &baseline_image, &chunk_alphas)?;
            let targets = vec![question.classes[image]; batch];
            let path = question.about(&path, &targets)?;
            let grad = input_gradient(path, Tape::new())?;
            accumulate(&integral, image, &grad, &chunk_weights, false)?;
        }
    }
    let baselines = Tensor::from_slice(gpu, [n, c, h, w], &baseline.repeat(n))?;
    let attribution = mul(&sub(question.x, &baselines)?, &integral)?;
    let totals = sum(&attribution, &[1, 2, 3], false)?.read().await?;
    let at_images = scores(question).await?;
    let at_baseline = scores(question.about(&baselines, question.classes)?).await?;
    let score_difference: Vec<f32> = at_images
        .iter()
        .zip(&at_baseline)
        .map(|(x, b)| x - b)
        .collect();
    Ok(IntegratedGradientsOnGpu {
        attribution,
        completeness_error: totals
            .iter()
            .zip(&score_difference)
            .map(|(total, difference)| total - difference)
            .collect(),
        score_difference,
    })
}

/// The rule's points α in [0, 1] and their weights (summing to 1).
pub(crate) fn quadrature(path: Path, steps: usize) -> (Vec<f64>, Vec<f64>) {
    let n = steps as f64;
    match path {
        Path::RiemannLeft => (
            (0..steps).map(|k| k as f64 / n).collect(),
            vec![1.0 / n; steps],
        ),
        Path::RiemannRight => (
            (1..=steps).map(|k| k as f64 / n).collect(),
            vec![1.0 / n; steps],
        ),
        Path::RiemannMiddle => (
            (0..steps).map(|k| (k as f64 + 0.5) / n).collect(),
            vec![1.0 / n; steps],
        ),
        Path::RiemannTrapezoid if steps == 1 => (vec![0.5], vec![1.0]),
        Path::RiemannTrapezoid => {
            let h = 1.0 / (n - 1.0);
            let alphas = (0..steps).map(|k| k as f64 * h).collect();
            let weights = (0..steps)
                .map(|k| if k == 0 || k == steps - 1 { h / 2.0 } else { h })
                .collect();
            (alphas, weights)
        }
        Path::GaussLegendre => {
            let (nodes, weights) = gauss_legendre(steps);
            (
                nodes.iter().map(|x| 0.5 * (x + 1.0)).collect(),
                weights.iter().map(|w| 0.5 * w).collect(),
            )
        }
    }
}

/// Gauss–Legendre nodes and weights on [-1, 1] (ascending), by Newton's method on P_n.
fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for i in 0..n {
        // Chebyshev-like initial guess for the i-th root (descending), then Newton.
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut derivative = 0.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let k = k as f64;
                let p2 = ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k;
                p0 = p1;
                p1 = p2;
            }
            // p1 = P_n(x), p0 = P_{n-1}(x); P_n' = n (x P_n − P_{n−1}) / (x² − 1).
            derivative = n as f64 * (x * p1 - p0) / (x * x - 1.0);
            let step = p1 / derivative;
            x -= step;
            if step.abs() < 1e-15 {
                break;
            }
        }
        nodes[n - 1 - i] = x;
        weights[n - 1 - i] = 2.0 / ((1.0 - x * x) * derivative * derivative);
    }
    (nodes, weights)
}

#[cfg(test)]
mod tests {
    use super::{Path, quadrature};

    /// Every rule integrates x² on [0, 1]; Gauss–Legendre with 3 points integrates x⁵ exactly.
    #[test]
    fn quadratures_integrate_polynomials() {
        for path in [
            Path::RiemannLeft,
            Path::RiemannRight,
            Path::RiemannMiddle,
            Path::RiemannTrapezoid,
            Path::GaussLegendre,
        ] {
            let (alphas, weights) = quadrature(path, 200);
            assert!(
                (weights.iter().sum::<f64>() - 1.0).abs() < 1e-12,
                "{path:?} weights"
            );
            let integral: f64 = alphas.iter().zip(&weights).map(|(a, w)| a * a * w).sum();
            assert!((integral - 1.0 / 3.0).abs() < 1e-2, "{path:?}: {integral}");
        }
        let (alphas, weights) = quadrature(Path::GaussLegendre, 3);
        let integral: f64 = alphas
            .iter()
            .zip(&weights)
            .map(|(a, w)| a.powi(5) * w)
            .sum();
        assert!((integral - 1.0 / 6.0).abs() < 1e-12, "{integral}");
    }
}
