//! A synthetic medical-style data set: grayscale images of textured, noisy tissue in which the
//! positive class carries small lesions, with the lesion masks as ground truth for saliency.
//! It stands in for the field's hard cases (small lesions in big grayscale images, few
//! training data) and is deterministic: sample i depends only on (seed, i).

use crate::nn::SplitMix64;

/// The generator's settings. Lesion sizes are in pixels, not fractions of the image: a lesion
/// stays "a few pixels across" however big the image.
#[derive(Clone, Debug)]
pub struct SyntheticLesions {
    /// Images are size × size (128 by default).
    pub size: usize,
    pub seed: u64,
    /// Share of positive samples (0.5).
    pub positive_fraction: f64,
    /// A positive sample carries 1 to this many lesions (3).
    pub max_lesions: usize,
    /// Lesion radius range in pixels ([2.0, 4.0]: 4 to 8 pixels across).
    pub radius: [f64; 2],
    /// Lesion intensity offset range, bright or dark ([0.3, 0.5]); the background's texture
    /// spans roughly ±0.2 and its noise has a standard deviation of `noise`.
    pub contrast: [f64; 2],
    pub noise: f64,
}

impl Default for SyntheticLesions {
    fn default() -> Self {
        Self {
            size: 128,
            seed: 0,
            positive_fraction: 0.5,
            max_lesions: 3,
            radius: [2.0, 4.0],
            contrast: [0.3, 0.5],
            noise: 0.04,
        }
    }
}

/// A batch of samples: `images` [count, 1, size, size] in roughly [0, 1], `labels` (1 = a
/// lesion is present), `masks` [count, size, size] with 1 inside a lesion.
#[derive(Clone, Debug)]
pub struct LesionBatch {
    pub size: usize,
    pub images: Vec<f32>,
    pub labels: Vec<usize>,
    pub masks: Vec<f32>,
}

impl LesionBatch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The NCHW shape of `images`.
    pub fn image_dims(&self) -> [usize; 4] {
        [self.len(), 1, self.size, self.size]
    }
}

impl SyntheticLesions {
    /// Samples `first .. first + count`.
    pub fn generate(&self, first: u64, count: usize) -> LesionBatch {
        let plane = self.size * self.size;
        let mut batch = LesionBatch {
            size: self.size,
            images: Vec::with_capacity(count * plane),
            labels: Vec::with_capacity(count),
            masks: Vec::with_capacity(count * plane),
        };
        for index in first..first + count as u64 {
            let (image, label, mask) = self.sample(index);
            batch.images.extend(image);
            batch.labels.push(label);
            batch.masks.extend(mask);
        }
        batch
    }

    /// One sample: (image, label, mask).
    pub fn sample(&self, index: u64) -> (Vec<f32>, usize, Vec<f32>) {
        let mut rng = SplitMix64::new(
            self.seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(index.wrapping_mul(0xD1B5_4A32_D192_ED03)),
        );
        let size = self.size;
        let mut image = self.background(&mut rng);
        let mut mask = vec![0.0f32; size * size];
        let label = usize::from(rng.uniform() < self.positive_fraction);
        if label == 1 {
            let lesions = 1 + rng.below(self.max_lesions.max(1));
            for _ in 0..lesions {
                self.add_lesion(&mut rng, &mut image, &mut mask);
            }
        }
        for value in &mut image {
            *value += (rng.normal() * self.noise) as f32;
        }
        (image, label, mask)
    }

    /// Tissue-like texture: a few random gratings (large-scale structure) plus smoothed noise
    /// (cell-scale grain) around 0.5.
    fn background(&self, rng: &mut SplitMix64) -> Vec<f32> {
        let size = self.size;
        let mut image = vec![0.5f32; size * size];
        for _ in 0..4 {
            let angle = rng.uniform() * std::f64::consts::TAU;
            let cycles = 1.0 + rng.uniform() * 5.0;
            let phase = rng.uniform() * std::f64::consts::TAU;
            let amplitude = 0.02 + rng.uniform() * 0.04;
            let (fx, fy) = (
                angle.cos() * cycles * std::f64::consts::TAU / size as f64,
                angle.sin() * cycles * std::f64::consts::TAU / size as f64,
            );
            for y in 0..size {
                for x in 0..size {
                    let wave = (fx * x as f64 + fy * y as f64 + phase).sin() * amplitude;
                    image[y * size + x] += wave as f32;
                }
            }
        }
        let mut grain: Vec<f32> = (0..size * size).map(|_| rng.normal() as f32).collect();
        for _ in 0..2 {
            grain = box_blur(&grain, size);
        }
        let grain_amplitude = 0.3 + rng.uniform() as f32 * 0.2; // the blurred grain has σ ≈ 0.2
        for (value, g) in image.iter_mut().zip(grain) {
            *value += g * grain_amplitude;
        }
        image
    }

    /// An irregular blob: an ellipse whose radius wobbles with the angle, with a soft edge.
    fn add_lesion(&self, rng: &mut SplitMix64, image: &mut [f32], mask: &mut [f32]) {
        let size = self.size as f64;
        let radius = self.radius[0] + rng.uniform() * (self.radius[1] - self.radius[0]);
        let margin = radius + 1.0;
        let cx = margin + rng.uniform() * (size - 2.0 * margin).max(0.0);
        let cy = margin + rng.uniform() * (size - 2.0 * margin).max(0.0);
        let aspect = 0.6 + rng.uniform() * 0.8;
        let rotation = rng.uniform() * std::f64::consts::PI;
        let wobble = [rng.uniform() * 0.25, rng.uniform() * std::f64::consts::TAU];
        let sign = if rng.uniform() < 0.5 { 1.0 } else { -1.0 };
        let contrast =
            sign * (self.contrast[0] + rng.uniform() * (self.contrast[1] - self.contrast[0]));
        let reach = (radius * 1.6 + 2.0).ceil() as i64;
        let (x0, y0) = (cx as i64, cy as i64);
        for y in (y0 - reach).max(0)..(y0 + reach + 1).min(self.size as i64) {
            for x in (x0 - reach).max(0)..(x0 + reach + 1).min(self.size as i64) {
                let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                let (u, v) = (
                    dx * rotation.cos() + dy * rotation.sin(),
                    (-dx * rotation.sin() + dy * rotation.cos()) / aspect,
                );
                let angle = v.atan2(u);
                let edge = radius * (1.0 + wobble[0] * (3.0 * angle + wobble[1]).sin());
                let distance = (u * u + v * v).sqrt();
                // 1 inside, 0 outside, linear over one pixel at the edge.
                let weight = (edge + 0.5 - distance).clamp(0.0, 1.0);
                if weight > 0.0 {
                    let at = y as usize * self.size + x as usize;
                    image[at] += (contrast * weight) as f32;
                    if weight >= 0.5 {
                        mask[at] = 1.0;
                    }
                }
            }
        }
    }
}

/// 3×3 box blur with clamped borders.
fn box_blur(values: &[f32], size: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for y in 0..size {
        for x in 0..size {
            let mut sum = 0.0;
            for dy in [-1i64, 0, 1] {
                for dx in [-1i64, 0, 1] {
                    let yy = (y as i64 + dy).clamp(0, size as i64 - 1) as usize;
                    let xx = (x as i64 + dx).clamp(0, size as i64 - 1) as usize;
                    sum += values[yy * size + xx];
                }
            }
            out[y * size + x] = sum / 9.0;
        }
    }
    out
}
