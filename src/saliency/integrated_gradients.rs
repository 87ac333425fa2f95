//! Integrated Gradients (Sundararajan et al. 2017): (x − x') ⊙ ∫₀¹ ∂F(x' + α(x − x'))/∂x dα,
//! by a quadrature along the straight path, batched along the path.

use super::{Attribution, Question, scores, scores_and_input_gradient};
use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The quadrature rule (Captum's names: riemann_left, _right, _middle, _trapezoid,
/// gausslegendre). Our trapezoid weights sum to 1; Captum 0.9's sum to (n − 1)/n (it halves
/// the end steps of n steps of 1/n), so its trapezoid attributions are ours × (n − 1)/n.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    RiemannLeft,
    RiemannRight,
    RiemannMiddle,
    RiemannTrapezoid,
    GaussLegendre,
}

/// Settings; the defaults are Captum's (50 steps, Gauss–Legendre, a black baseline).
#[derive(Clone, Debug)]
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
    let (gpu, images) = (question.x.gpu(), question.x.read().await?);
    let mut attribution = vec![0.0f32; n * size];
    let mut completeness_error = Vec::with_capacity(n);
    let mut score_difference = Vec::with_capacity(n);
    for image in 0..n {
        let original = &images[image * size..(image + 1) * size];
        let mut integral = vec![0.0f64; size];
        for chunk in alphas
            .chunks(settings.batch)
            .zip(weights.chunks(settings.batch))
        {
            let (chunk_alphas, chunk_weights) = chunk;
            let path: Vec<f32> = chunk_alphas
                .iter()
                .flat_map(|&alpha| {
                    original
                        .iter()
                        .zip(&baseline)
                        .map(move |(&v, &b)| b + (alpha as f32) * (v - b))
                })
                .collect();
            let batch = chunk_alphas.len();
            let path = Tensor::from_slice(gpu, [batch, c, h, w], &path)?;
            let targets = vec![question.classes[image]; batch];
            let path = question.about(&path, &targets)?;
            let (_, grad) = scores_and_input_gradient(path, Tape::new()).await?;
            let grad = grad.read().await?;
            for (k, &weight) in chunk_weights.iter().enumerate() {
                for (sum, &g) in integral.iter_mut().zip(&grad[k * size..(k + 1) * size]) {
                    *sum += weight * f64::from(g);
                }
            }
        }
        let mut total = 0.0f64;
        for (i, sum) in integral.iter().enumerate() {
            let a = (f64::from(original[i]) - f64::from(baseline[i])) * sum;
            attribution[image * size + i] = a as f32;
            total += a;
        }
        let endpoints = [original, baseline.as_slice()].concat();
        let endpoints = Tensor::from_slice(gpu, [2, c, h, w], &endpoints)?;
        let f = scores(question.about(&endpoints, &[question.classes[image]; 2])?).await?;
        let difference = f[0] - f[1];
        completeness_error.push(total as f32 - difference);
        score_difference.push(difference);
    }
    Ok(IntegratedGradientsResult {
        attribution: Attribution {
            dims: vec![n, c, h, w],
            data: attribution,
        },
        completeness_error,
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
