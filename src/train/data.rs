//! Training data in memory: decoded, sized images (not yet normalised) with their labels, and
//! the per-step batch a run feeds the model.

use crate::imaging::{Planes, Preprocess};
use crate::nn::SplitMix64;

use super::augment::Augmentation;

/// Sized images of one split (training or validation) and their class indices.
#[derive(Clone, Debug, Default)]
pub struct LabelledImages {
    pub images: Vec<Planes>,
    pub labels: Vec<usize>,
}

impl LabelledImages {
    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The images at `indices`, normalised and stacked [N, C, H, W] (row-major), with their
    /// dims; each image is sized by `preprocess` already.
    pub fn stacked(&self, indices: &[usize], preprocess: &Preprocess) -> (Vec<f32>, [usize; 4]) {
        let size = preprocess.input_size();
        let data = indices
            .iter()
            .flat_map(|&i| normalised(&self.images[i], preprocess))
            .collect();
        (data, [indices.len(), preprocess.channels, size, size])
    }

    /// Images per class, for `classes` classes.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &label in &self.labels {
            counts[label] += 1;
        }
        counts
    }
}

/// A training batch: the images at `indices`, normalised, then augmented in the order given,
/// every random choice drawn from `rng`.
pub fn augmented_batch(
    data: &LabelledImages,
    indices: &[usize],
    preprocess: &Preprocess,
    augmentations: &[Augmentation],
    rng: &mut SplitMix64,
) -> (Vec<f32>, [usize; 4]) {
    let (mut images, dims) = data.stacked(indices, preprocess);
    for augmentation in augmentations {
        images = augmentation.apply(&images, dims, rng);
    }
    (images, dims)
}

/// `planes` with the checkpoint's per-channel normalisation applied.
pub fn normalised(planes: &Planes, preprocess: &Preprocess) -> Vec<f32> {
    let plane = planes.height * planes.width;
    planes
        .data
        .iter()
        .enumerate()
        .map(|(i, v)| (v - preprocess.mean[i / plane]) / preprocess.std[i / plane])
        .collect()
}

/// Per-channel mean and standard deviation of sized images: the normalisation of a model
/// trained from scratch.
pub fn channel_statistics(images: &[Planes], channels: usize) -> (Vec<f32>, Vec<f32>) {
    let mut sums = vec![(0.0f64, 0.0f64, 0usize); channels];
    for planes in images {
        let plane = planes.height * planes.width;
        for (i, &v) in planes.data.iter().enumerate() {
            let s = &mut sums[i / plane];
            s.0 += f64::from(v);
            s.1 += f64::from(v) * f64::from(v);
            s.2 += 1;
        }
    }
    sums.iter()
        .map(|&(sum, squares, n)| {
            let mean = sum / n.max(1) as f64;
            let std = (squares / n.max(1) as f64 - mean * mean).max(1e-12).sqrt();
            (mean as f32, std as f32)
        })
        .unzip()
}

/// sklearn's "balanced" class weights: N / (classes · count of the class).
pub fn balanced_weights(labels: &[usize], classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; classes];
    for &label in labels {
        counts[label] += 1;
    }
    counts
        .iter()
        .map(|&c| labels.len() as f32 / (classes as f32 * c.max(1) as f32))
        .collect()
}
