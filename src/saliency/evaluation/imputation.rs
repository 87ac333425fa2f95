//! Noisy linear imputation, ROAD's way of removing pixels (Rong et al. 2022, "A Consistent and
//! Efficient Evaluation Strategy for Attribution Methods"). Replacing removed pixels with a
//! constant leaks the removal's shape to the model (the mask itself becomes a feature), so a
//! deletion curve partly measures that leak. ROAD fills each removed pixel with the weighted
//! mean of its 8 neighbours (weights 1/6 for the 4 edge neighbours, 1/12 for the 4 diagonal
//! ones, as the authors' code has them), the neighbours themselves removed or not: a sparse
//! linear system over the removed pixels, one per channel. A little Gaussian noise (0.01 in
//! the model's input scale by default) is added to the filled pixels.
//!
//! The system (D − W_UU) x_U = W_UK x_K, with D the sum of each pixel's in-image neighbour
//! weights, is symmetric and positive definite as long as one pixel is kept, so conjugate
//! gradients with a Jacobi preconditioner solve it. It runs on the host: its cost is a few
//! hundred sparse sweeps, small beside the forward passes the curves then batch on the GPU.

use crate::error::{Error, Result};
use crate::nn::SplitMix64;

/// The 8 neighbours' offsets (row, column) and weights.
const NEIGHBOURS: [((isize, isize), f64); 8] = [
    ((-1, -1), 1.0 / 12.0),
    ((-1, 0), 1.0 / 6.0),
    ((-1, 1), 1.0 / 12.0),
    ((0, -1), 1.0 / 6.0),
    ((0, 1), 1.0 / 6.0),
    ((1, -1), 1.0 / 12.0),
    ((1, 0), 1.0 / 6.0),
    ((1, 1), 1.0 / 12.0),
];

/// The solver stops when the residual's norm falls below this fraction of the right-hand
/// side's (far below the noise that is added afterwards).
const TOLERANCE: f64 = 1e-6;

/// `image` [C, H, W] with the pixels where `removed` [H, W] is true filled by noisy linear
/// imputation, in every channel; kept pixels are returned unchanged. `noise` is the standard
/// deviation of the Gaussian noise added to filled values, drawn from `rng`.
pub fn noisy_linear_imputation(
    image: &[f32],
    [channels, height, width]: [usize; 3],
    removed: &[bool],
    noise: f32,
    rng: &mut SplitMix64,
) -> Result<Vec<f32>> {
    let plane = height * width;
    if image.len() != channels * plane || removed.len() != plane {
        return Err(Error::invalid(
            "noisy_linear_imputation",
            format!(
                "an image of {} values and a removal mask of {} for {channels}×{height}×{width}",
                image.len(),
                removed.len()
            ),
        ));
    }
    let unknowns: Vec<usize> = (0..plane).filter(|&p| removed[p]).collect();
    let mut out = image.to_vec();
    if unknowns.is_empty() {
        return Ok(out);
    }
    let system = System::new(removed, height, width, &unknowns);
    for c in 0..channels {
        let channel = &image[c * plane..(c + 1) * plane];
        let filled = if unknowns.len() == plane {
            // Nothing kept: no neighbour carries information; the channel's mean is as
            // uninformative a fill as any.
            let mean = channel.iter().map(|&v| f64::from(v)).sum::<f64>() / plane as f64;
            vec![mean; unknowns.len()]
        } else {
            system.solve(channel)
        };
        for (&p, value) in unknowns.iter().zip(filled) {
            out[c * plane + p] = (value + f64::from(noise) * rng.normal()) as f32;
        }
    }
    Ok(out)
}

/// The removed pixels' equations: row i of (D − W_UU) and the known neighbours feeding its
/// right-hand side.
struct System {
    diagonal: Vec<f64>,
    /// (unknown index, weight) of each equation's removed neighbours.
    coupled: Vec<Vec<(usize, f64)>>,
    /// (pixel, weight) of each equation's kept neighbours.
    known: Vec<Vec<(usize, f64)>>,
}

impl System {
    fn new(removed: &[bool], height: usize, width: usize, unknowns: &[usize]) -> Self {
        let mut index = vec![usize::MAX; height * width];
        for (i, &p) in unknowns.iter().enumerate() {
            index[p] = i;
        }
        let mut system = Self {
            diagonal: Vec::with_capacity(unknowns.len()),
            coupled: Vec::with_capacity(unknowns.len()),
            known: Vec::with_capacity(unknowns.len()),
        };
        for &p in unknowns {
            let (row, column) = ((p / width) as isize, (p % width) as isize);
            let (mut diagonal, mut coupled, mut known) = (0.0, Vec::new(), Vec::new());
            for ((dy, dx), weight) in NEIGHBOURS {
                let (y, x) = (row + dy, column + dx);
                if y < 0 || x < 0 || y >= height as isize || x >= width as isize {
                    continue;
                }
                let q = y as usize * width + x as usize;
                diagonal += weight;
                if removed[q] {
                    coupled.push((index[q], weight));
                } else {
                    known.push((q, weight));
                }
            }
            system.diagonal.push(diagonal);
            system.coupled.push(coupled);
            system.known.push(known);
        }
        system
    }

    /// (D − W_UU) v.
    fn apply(&self, v: &[f64], out: &mut [f64]) {
        for (i, value) in out.iter_mut().enumerate() {
            let coupled: f64 = self.coupled[i].iter().map(|&(j, w)| w * v[j]).sum();
            *value = self.diagonal[i] * v[i] - coupled;
        }
    }

    /// The removed pixels' values given the kept ones of `channel`: preconditioned conjugate
    /// gradients from the kept pixels' mean.
    fn solve(&self, channel: &[f32]) -> Vec<f64> {
        let n = self.diagonal.len();
        let b: Vec<f64> = self
            .known
            .iter()
            .map(|known| known.iter().map(|&(q, w)| w * f64::from(channel[q])).sum())
            .collect();
        let kept: Vec<f64> = self
            .known
            .iter()
            .flatten()
            .map(|&(q, _)| f64::from(channel[q]))
            .collect();
        let start = if kept.is_empty() {
            0.0
        } else {
            kept.iter().sum::<f64>() / kept.len() as f64
        };
        let mut x = vec![start; n];
        let mut ax = vec![0.0; n];
        self.apply(&x, &mut ax);
        let mut r: Vec<f64> = b.iter().zip(&ax).map(|(b, ax)| b - ax).collect();
        let b_norm = b
            .iter()
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        let mut z: Vec<f64> = r.iter().zip(&self.diagonal).map(|(r, d)| r / d).collect();
        let mut p = z.clone();
        let mut rz: f64 = r.iter().zip(&z).map(|(r, z)| r * z).sum();
        let mut ap = vec![0.0; n];
        // Conjugate gradients converge in at most n steps in exact arithmetic; the cap is a
        // guard against a stall in floating point, far above what these systems take.
        for _ in 0..n.max(16) {
            if r.iter().map(|v| v * v).sum::<f64>().sqrt() <= TOLERANCE * b_norm {
                break;
            }
            self.apply(&p, &mut ap);
            let alpha = rz / p.iter().zip(&ap).map(|(p, ap)| p * ap).sum::<f64>();
            for i in 0..n {
                x[i] += alpha * p[i];
                r[i] -= alpha * ap[i];
                z[i] = r[i] / self.diagonal[i];
            }
            let rz_next: f64 = r.iter().zip(&z).map(|(r, z)| r * z).sum();
            let beta = rz_next / rz;
            rz = rz_next;
            for i in 0..n {
                p[i] = z[i] + beta * p[i];
            }
        }
        x
    }
}
