//! How alike two maps are: Spearman's rank correlation and SSIM (Wang et al. 2004), the two
//! measures of the model-parameter randomisation test (Adebayo et al. 2018).

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

/// The Gaussian window's σ and radius: skimage's `structural_similarity(gaussian_weights=True)`
/// (σ 1.5, truncated at 3.5 σ: an 11 × 11 window), the setting of Wang et al. 2004.
const SSIM_SIGMA: f64 = 1.5;
const SSIM_RADIUS: usize = 5;

/// SSIM of two maps [height, width], each first scaled to [0, 1] by its own minimum and
/// maximum, with data range 1: the mean over the pixels at least 5 from the border of the SSIM
/// map, as skimage's `structural_similarity` with `gaussian_weights=True,
/// use_sample_covariance=False, data_range=1` computes it (its Gaussian filter mirrors the
/// image at the edges, "reflect"). 1 for identical maps. None when a side is shorter than the
/// 11-pixel window, or when either map is constant: scaled, it has no structure to compare
/// (two all-zero CAMs would otherwise score a perfect 1).
pub fn ssim(a: &[f32], b: &[f32], height: usize, width: usize) -> Option<f32> {
    let side = 2 * SSIM_RADIUS + 1;
    if height < side || width < side || a.len() != height * width || b.len() != a.len() {
        return None;
    }
    let scaled = |map: &[f32]| -> Option<Vec<f64>> {
        let low = map.iter().copied().fold(f32::INFINITY, f32::min);
        let high = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let span = f64::from(high - low);
        (span > 0.0).then(|| map.iter().map(|&v| f64::from(v - low) / span).collect())
    };
    let (x, y) = (scaled(a)?, scaled(b)?);
    let product =
        |p: &[f64], q: &[f64]| -> Vec<f64> { p.iter().zip(q).map(|(p, q)| p * q).collect() };
    let blur = |values: &[f64]| gaussian_filter(values, height, width);
    let (mx, my) = (blur(&x), blur(&y));
    let (xx, yy, xy) = (
        blur(&product(&x, &x)),
        blur(&product(&y, &y)),
        blur(&product(&x, &y)),
    );
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mut total = 0.0;
    let mut count = 0usize;
    for row in SSIM_RADIUS..height - SSIM_RADIUS {
        for column in SSIM_RADIUS..width - SSIM_RADIUS {
            let i = row * width + column;
            let (vx, vy, cov) = (
                xx[i] - mx[i] * mx[i],
                yy[i] - my[i] * my[i],
                xy[i] - mx[i] * my[i],
            );
            total += ((2.0 * mx[i] * my[i] + c1) * (2.0 * cov + c2))
                / ((mx[i] * mx[i] + my[i] * my[i] + c1) * (vx + vy + c2));
            count += 1;
        }
    }
    Some((total / count as f64) as f32)
}

/// A separable Gaussian blur (σ = SSIM_SIGMA, radius SSIM_RADIUS, weights normalised) with the
/// image mirrored about its edges (scipy's "reflect": d c b a | a b c d).
fn gaussian_filter(values: &[f64], height: usize, width: usize) -> Vec<f64> {
    let radius = SSIM_RADIUS as isize;
    let mut weights: Vec<f64> = (-radius..=radius)
        .map(|d| (-(d * d) as f64 / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp())
        .collect();
    let sum: f64 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= sum);
    let reflect = |i: isize, size: usize| -> usize {
        let size = size as isize;
        let mut i = i;
        // One mirror suffices while the radius is below the side (checked by the caller).
        if i < 0 {
            i = -i - 1;
        }
        if i >= size {
            i = 2 * size - i - 1;
        }
        i as usize
    };
    let mut rows = vec![0.0; values.len()];
    for row in 0..height {
        for column in 0..width {
            rows[row * width + column] = weights
                .iter()
                .enumerate()
                .map(|(k, w)| {
                    w * values[row * width + reflect(column as isize + k as isize - radius, width)]
                })
                .sum();
        }
    }
    let mut out = vec![0.0; values.len()];
    for row in 0..height {
        for column in 0..width {
            out[row * width + column] = weights
                .iter()
                .enumerate()
                .map(|(k, w)| {
                    w * rows[reflect(row as isize + k as isize - radius, height) * width + column]
                })
                .sum();
        }
    }
    out
}
