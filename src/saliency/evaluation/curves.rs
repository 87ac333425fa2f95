//! Curves of a class's probability as pixels leave the image in the map's order: deletion and
//! insertion (Petsiuk et al. 2018), pixels replaced by a baseline, and ROAD (Rong et al. 2022),
//! pixels filled by noisy linear imputation, most relevant first (MoRF) or least relevant first
//! (LeRF). Every point of a curve is one forward pass; each curve's points run as one batch.

use super::imputation::noisy_linear_imputation;
use crate::error::{Error, Result};
use crate::nn::SplitMix64;
use crate::saliency::gradient::content_hash;
use crate::saliency::{Attribution, Explained, Question, Score, scores};
use crate::tensor::Tensor;

/// One image's deletion and insertion curves: the class's probability at 0, 1/steps, …, 1 of
/// the pixels changed.
#[derive(Clone, Debug, PartialEq)]
pub struct DeletionInsertion {
    pub deletion: Vec<f32>,
    pub insertion: Vec<f32>,
}

impl DeletionInsertion {
    /// The areas under the deletion and insertion curves over the fraction of pixels
    /// (trapezoid rule). Low deletion and high insertion areas mean a faithful map.
    pub fn areas(&self) -> (f32, f32) {
        let area = |curve: &[f32]| {
            curve.windows(2).map(|p| (p[0] + p[1]) / 2.0).sum::<f32>() / (curve.len() - 1) as f32
        };
        (area(&self.deletion), area(&self.insertion))
    }
}

/// Deletion and insertion curves of one image's map: pixels are removed from the image
/// (deletion: replaced by `baseline`) or added to the baseline (insertion) in order of
/// decreasing saliency, in `steps` equal parts, the class's probability read after each.
pub async fn deletion_insertion(
    explained: Explained<'_>,
    image: &Tensor,
    class: usize,
    map: &[f32],
    baseline: &[f32],
    steps: usize,
) -> Result<DeletionInsertion> {
    const OP: &str = "deletion_insertion";
    let &[1, c, h, w] = image.dims() else {
        return Err(Error::invalid(
            OP,
            format!("needs one image [1, C, H, W], got {:?}", image.dims()),
        ));
    };
    let plane = h * w;
    if map.len() != plane || baseline.len() != c * plane || steps == 0 {
        return Err(Error::invalid(
            OP,
            format!(
                "a map of {} and a baseline of {} values for a {c}×{h}×{w} image, {steps} steps",
                map.len(),
                baseline.len()
            ),
        ));
    }
    let original = image.read().await?;
    let mut order: Vec<usize> = (0..plane).collect();
    order.sort_by(|&a, &b| map[b].total_cmp(&map[a]));
    let mut curves = Vec::new();
    for inserting in [false, true] {
        let mut batch = Vec::with_capacity((steps + 1) * c * plane);
        for step in 0..=steps {
            let changed = plane * step / steps;
            let mut picture = if inserting {
                baseline.to_vec()
            } else {
                original.clone()
            };
            for &p in &order[..changed] {
                for ch in 0..c {
                    let i = ch * plane + p;
                    picture[i] = if inserting { original[i] } else { baseline[i] };
                }
            }
            batch.extend(picture);
        }
        let batch = Tensor::from_slice(image.gpu(), [steps + 1, c, h, w], &batch)?;
        let classes = vec![class; steps + 1];
        let asked = Question::new(explained, &batch, &classes, Score::Probability)?;
        curves.push(scores(asked).await?);
    }
    let insertion = curves.pop().expect("two curves");
    let deletion = curves.pop().expect("two curves");
    Ok(DeletionInsertion {
        deletion,
        insertion,
    })
}

/// ROAD's settings.
#[derive(Clone, Debug)]
pub struct Road {
    /// The fractions of pixels removed, each one point of both curves (0, the image itself,
    /// is always added first).
    pub fractions: Vec<f32>,
    /// The standard deviation of the noise added to imputed pixels, in the model's input scale.
    pub noise: f32,
    pub seed: u64,
    /// Imputed images per forward pass.
    pub batch: usize,
}

impl Default for Road {
    /// The paper's 10%, 20%, …, 90% and noise 0.01.
    fn default() -> Self {
        Self {
            fractions: (1..10).map(|k| k as f32 / 10.0).collect(),
            noise: 0.01,
            seed: 0,
            batch: 32,
        }
    }
}

/// One image's ROAD curves: the class's probability after removing each fraction of pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct RoadCurves {
    /// 0, then the settings' fractions.
    pub fractions: Vec<f32>,
    /// Most relevant first: a faithful map makes this fall fast (low area).
    pub most_relevant_first: Vec<f32>,
    /// Least relevant first: a faithful map keeps this high (high area).
    pub least_relevant_first: Vec<f32>,
}

impl RoadCurves {
    /// The areas under the MoRF and LeRF curves over the fractions (trapezoid rule), each
    /// divided by the span of the fractions: mean probabilities.
    pub fn areas(&self) -> (f32, f32) {
        let area = |curve: &[f32]| {
            let span = self.fractions.last().copied().unwrap_or(0.0) - self.fractions[0];
            let total: f32 = self
                .fractions
                .windows(2)
                .zip(curve.windows(2))
                .map(|(f, p)| (f[1] - f[0]) * (p[0] + p[1]) / 2.0)
                .sum();
            if span > 0.0 { total / span } else { curve[0] }
        };
        (
            area(&self.most_relevant_first),
            area(&self.least_relevant_first),
        )
    }
}

/// ROAD (remove and debias) for each image of `images` [N, C, H, W] with its map in `maps`
/// [N, H, W] and its class in `classes`: pixels removed in the map's order (most and least
/// relevant first; ties in pixel order) and filled by noisy linear imputation, the class's
/// probability read after each fraction. An image's noise comes from the seed and the image's
/// values alone, so a curve does not depend on the batch it ran in or its place there.
pub async fn road(
    explained: Explained<'_>,
    images: &Tensor,
    classes: &[usize],
    maps: &Attribution,
    settings: &Road,
) -> Result<Vec<RoadCurves>> {
    const OP: &str = "road";
    let &[n, c, h, w] = images.dims() else {
        return Err(Error::invalid(
            OP,
            format!("needs images [N, C, H, W], got {:?}", images.dims()),
        ));
    };
    if maps.dims != [n, h, w] || classes.len() != n {
        return Err(Error::invalid(
            OP,
            format!(
                "maps {:?} and {} classes for images {:?}",
                maps.dims,
                classes.len(),
                images.dims()
            ),
        ));
    }
    let fractions_ok = settings.fractions.iter().all(|f| (0.0..=1.0).contains(f))
        && settings.fractions.windows(2).all(|pair| pair[0] < pair[1]);
    if !fractions_ok {
        return Err(Error::invalid(
            OP,
            format!(
                "fractions {:?}: each within 0 to 1, in increasing order",
                settings.fractions
            ),
        ));
    }
    let plane = h * w;
    let pixels = images.read().await?;
    let mut fractions = vec![0.0];
    fractions.extend(&settings.fractions);
    let mut curves = Vec::with_capacity(n);
    for image in 0..n {
        let original = &pixels[image * c * plane..(image + 1) * c * plane];
        let map = &maps.data[image * plane..(image + 1) * plane];
        let mut order: Vec<usize> = (0..plane).collect();
        order.sort_by(|&a, &b| map[b].total_cmp(&map[a]));
        let mut rng = SplitMix64::new(settings.seed ^ content_hash(original));
        // The unchanged image, then MoRF's images, then LeRF's.
        let mut inputs = original.to_vec();
        for least_first in [false, true] {
            for &fraction in &settings.fractions {
                let count = ((fraction * plane as f32).round() as usize).min(plane);
                let mut removed = vec![false; plane];
                let chosen = if least_first {
                    &order[plane - count..]
                } else {
                    &order[..count]
                };
                for &p in chosen {
                    removed[p] = true;
                }
                inputs.extend(noisy_linear_imputation(
                    original,
                    [c, h, w],
                    &removed,
                    settings.noise,
                    &mut rng,
                )?);
            }
        }
        let copies = inputs.len() / (c * plane);
        let mut probabilities = Vec::with_capacity(copies);
        for first in (0..copies).step_by(settings.batch.max(1)) {
            let count = settings.batch.max(1).min(copies - first);
            let chunk = &inputs[first * c * plane..(first + count) * c * plane];
            let batch = Tensor::from_slice(images.gpu(), [count, c, h, w], chunk)?;
            let asked_classes = vec![classes[image]; count];
            let asked = Question::new(explained, &batch, &asked_classes, Score::Probability)?;
            probabilities.extend(scores(asked).await?);
        }
        let steps = settings.fractions.len();
        let curve = |start: usize| {
            let mut curve = vec![probabilities[0]];
            curve.extend(&probabilities[start..start + steps]);
            curve
        };
        curves.push(RoadCurves {
            fractions: fractions.clone(),
            most_relevant_first: curve(1),
            least_relevant_first: curve(1 + steps),
        });
    }
    Ok(curves)
}
