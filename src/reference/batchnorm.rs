//! References for shaders/batchnorm.wgsl, over NCHW data given as (n, c, plane = H·W).

use super::Real;

#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    pub batch: usize,
    pub channels: usize,
    pub plane: usize,
}

impl Geometry {
    fn index(&self, n: usize, c: usize, p: usize) -> usize {
        (n * self.channels + c) * self.plane + p
    }

    fn count(&self) -> usize {
        self.batch * self.plane
    }
}

/// Per-channel mean and biased variance.
pub fn statistics<T: Real>(x: &[T], g: Geometry) -> (Vec<T>, Vec<T>) {
    let count = T::from_f64(g.count() as f64);
    let mut mean = vec![T::zero(); g.channels];
    let mut variance = vec![T::zero(); g.channels];
    for c in 0..g.channels {
        let mut sum = T::zero();
        for n in 0..g.batch {
            for p in 0..g.plane {
                sum += x[g.index(n, c, p)];
            }
        }
        mean[c] = sum / count;
        let mut squares = T::zero();
        for n in 0..g.batch {
            for p in 0..g.plane {
                let d = x[g.index(n, c, p)] - mean[c];
                squares += d * d;
            }
        }
        variance[c] = squares / count;
    }
    (mean, variance)
}

/// (updated running mean, updated running variance), PyTorch's rule.
pub fn update_running<T: Real>(
    running: (&[T], &[T]),
    batch: (&[T], &[T]),
    count: usize,
    momentum: T,
) -> (Vec<T>, Vec<T>) {
    let one = T::from_f64(1.0);
    let correction = T::from_f64(count as f64 / (count as f64 - 1.0));
    let mean = running
        .0
        .iter()
        .zip(batch.0)
        .map(|(&r, &b)| (one - momentum) * r + momentum * b);
    let var = running
        .1
        .iter()
        .zip(batch.1)
        .map(|(&r, &b)| (one - momentum) * r + momentum * b * correction);
    (mean.collect(), var.collect())
}

pub fn forward<T: Real>(
    x: &[T],
    g: Geometry,
    mean: &[T],
    variance: &[T],
    weight: &[T],
    bias: &[T],
    eps: T,
) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    for n in 0..g.batch {
        for c in 0..g.channels {
            let inverse_std = T::from_f64(1.0 / (variance[c] + eps).to_f64().sqrt());
            for p in 0..g.plane {
                let i = g.index(n, c, p);
                out[i] = (x[i] - mean[c]) * inverse_std * weight[c] + bias[c];
            }
        }
    }
    out
}

/// Training mode: normalise with the batch's own statistics.
pub fn forward_training<T: Real>(x: &[T], g: Geometry, weight: &[T], bias: &[T], eps: T) -> Vec<T> {
    let (mean, variance) = statistics(x, g);
    forward(x, g, &mean, &variance, weight, bias, eps)
}

/// (grad_input, grad_weight, grad_bias). With `training`, mean and variance are the batch's
/// (functions of x); otherwise constants.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Real>(
    x: &[T],
    grad_out: &[T],
    g: Geometry,
    mean: &[T],
    variance: &[T],
    weight: &[T],
    eps: T,
    training: bool,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let count = T::from_f64(g.count() as f64);
    let mut grad_input = vec![T::zero(); x.len()];
    let mut grad_weight = vec![T::zero(); g.channels];
    let mut grad_bias = vec![T::zero(); g.channels];
    for c in 0..g.channels {
        let inverse_std = T::from_f64(1.0 / (variance[c] + eps).to_f64().sqrt());
        for n in 0..g.batch {
            for p in 0..g.plane {
                let i = g.index(n, c, p);
                grad_bias[c] += grad_out[i];
                grad_weight[c] += grad_out[i] * (x[i] - mean[c]) * inverse_std;
            }
        }
        for n in 0..g.batch {
            for p in 0..g.plane {
                let i = g.index(n, c, p);
                let scale = weight[c] * inverse_std;
                grad_input[i] = if training {
                    let xhat = (x[i] - mean[c]) * inverse_std;
                    scale * (grad_out[i] - grad_bias[c] / count - xhat * grad_weight[c] / count)
                } else {
                    scale * grad_out[i]
                };
            }
        }
    }
    (grad_input, grad_weight, grad_bias)
}
