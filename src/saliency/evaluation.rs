//! Judging saliency maps: the pointing game (Zhang et al. 2016), deletion and insertion curves
//! (Petsiuk et al. 2018), and the rank correlation behind the model-randomisation sanity check
//! (Adebayo et al. 2018).

use super::{Explained, Question, Score, scores};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Whether the map's maximum lies within `tolerance` pixels (Euclidean) of a mask pixel (the
/// lesion). `map` and `mask` are one image's [H, W]; mask pixels are those > 0.5. Where the
/// maximum is a plateau (a perturbation mask clamped at 0 over a region), the point is the
/// plateau's pixel nearest its centroid, not its first pixel in scan order.
pub fn pointing_game_hit(map: &[f32], mask: &[f32], width: usize, tolerance: f32) -> bool {
    let peak = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !peak.is_finite() {
        return false;
    }
    let position = |i: usize| ((i / width) as f32, (i % width) as f32);
    let plateau: Vec<usize> = (0..map.len()).filter(|&i| map[i] == peak).collect();
    let count = plateau.len() as f32;
    let (cy, cx) = plateau.iter().fold((0.0, 0.0), |(sy, sx), &i| {
        let (y, x) = position(i);
        (sy + y / count, sx + x / count)
    });
    let distance =
        |(y, x): (f32, f32), (py, px): (f32, f32)| ((y - py).powi(2) + (x - px).powi(2)).sqrt();
    let point = plateau
        .iter()
        .map(|&i| position(i))
        .min_by(|&a, &b| distance(a, (cy, cx)).total_cmp(&distance(b, (cy, cx))))
        .expect("the peak is attained");
    mask.iter()
        .enumerate()
        .any(|(i, &m)| m > 0.5 && distance(position(i), point) <= tolerance)
}

/// Deletion and insertion AUC of one image's map: pixels are removed from the image (deletion:
/// replaced by `baseline`) or added to the baseline (insertion) in order of decreasing
/// saliency, in `steps` equal parts; the areas under the class-probability curves over the
/// fraction of pixels. Low deletion and high insertion AUC mean a faithful map.
pub async fn deletion_insertion_auc(
    explained: Explained<'_>,
    image: &Tensor,
    class: usize,
    map: &[f32],
    baseline: &[f32],
    steps: usize,
) -> Result<(f32, f32)> {
    const OP: &str = "deletion_insertion_auc";
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
        let probabilities = scores(asked).await?;
        // Trapezoid rule over the fraction of pixels changed.
        let area: f32 = probabilities
            .windows(2)
            .map(|p| (p[0] + p[1]) / 2.0)
            .sum::<f32>()
            / steps as f32;
        curves.push(area);
    }
    Ok((curves[0], curves[1]))
}

/// Spearman's rank correlation of two maps: near 1 for maps that order pixels alike. The
/// sanity check compares a trained model's maps with those of the same model with randomised
/// weights: a method that explains the model must give maps that differ (low correlation).
pub fn rank_correlation(a: &[f32], b: &[f32]) -> f32 {
    let ranks = |values: &[f32]| -> Vec<f64> {
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
        let mut ranks = vec![0.0; values.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start;
            while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
                end += 1;
            }
            let rank = (start + end) as f64 / 2.0; // ties share their mean rank
            for &i in &order[start..=end] {
                ranks[i] = rank;
            }
            start = end + 1;
        }
        ranks
    };
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    if va == 0.0 || vb == 0.0 {
        return 0.0;
    }
    (cov / (va * vb).sqrt()) as f32
}
