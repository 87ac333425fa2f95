//! Tissue or background: a slide's thumbnail thresholded by Otsu's method on each pixel's
//! saturation (stained tissue is coloured, glass is gray-white), or on its darkness for a gray
//! slide; a tile is analysed when enough of it is tissue.

use super::super::Planes;

/// The least threshold Otsu's method may set: on a slide of bare glass the histogram is noise,
/// and its split would call half the noise tissue.
const MIN_THRESHOLD: f32 = 0.05;

/// How tissue-like a pixel is, in [0, 1]: HSV saturation (max − min) / max of RGB, or for a gray
/// slide its darkness 1 − value.
pub fn tissue_score(rgb: [f32; 3], gray: bool) -> f32 {
    let max = rgb[0].max(rgb[1]).max(rgb[2]);
    let min = rgb[0].min(rgb[1]).min(rgb[2]);
    match gray {
        true => 1.0 - max,
        false if max > 0.0 => (max - min) / max,
        false => 0.0,
    }
}

/// Otsu's threshold of values in [0, 1] over 256 bins: the split that maximises the variance
/// between the two classes. Values above the returned bin edge are the upper class.
pub fn otsu_threshold(values: &[f32]) -> f32 {
    let mut histogram = [0u64; 256];
    for &value in values {
        histogram[(value.clamp(0.0, 1.0) * 255.0).round() as usize] += 1;
    }
    let total = values.len() as f64;
    let weighted_sum: f64 = histogram
        .iter()
        .enumerate()
        .map(|(bin, &count)| bin as f64 * count as f64)
        .sum();
    let (mut below, mut below_sum) = (0.0f64, 0.0f64);
    let (mut best, mut best_bin) = (-1.0f64, 0usize);
    for (bin, &count) in histogram.iter().enumerate() {
        below += count as f64;
        below_sum += bin as f64 * count as f64;
        let above = total - below;
        if below == 0.0 || above == 0.0 {
            continue;
        }
        let mean_below = below_sum / below;
        let mean_above = (weighted_sum - below_sum) / above;
        let between = below * above * (mean_below - mean_above).powi(2);
        if between > best {
            best = between;
            best_bin = bin;
        }
    }
    (best_bin as f32 + 0.5) / 255.0
}

/// Which pixels of a thumbnail are tissue, and the thumbnail's scale to a level's pixels.
#[derive(Clone, Debug)]
pub struct TissueMask {
    pub width: usize,
    pub height: usize,
    pub tissue: Vec<bool>,
    /// The threshold used (Otsu's, at least [`MIN_THRESHOLD`]).
    pub threshold: f32,
}

impl TissueMask {
    pub fn new(thumbnail: &Planes, gray: bool) -> Self {
        let plane = thumbnail.height * thumbnail.width;
        let channel =
            |c: usize, p: usize| thumbnail.data[c.min(thumbnail.channels - 1) * plane + p];
        let scores: Vec<f32> = (0..plane)
            .map(|p| tissue_score([channel(0, p), channel(1, p), channel(2, p)], gray))
            .collect();
        let threshold = otsu_threshold(&scores).max(MIN_THRESHOLD);
        Self {
            width: thumbnail.width,
            height: thumbnail.height,
            tissue: scores.iter().map(|&score| score > threshold).collect(),
            threshold,
        }
    }

    /// The share of tissue under the region (x, y, width, height) of a level of
    /// `level_width` × `level_height` pixels: the thumbnail pixels it touches (at least one).
    pub fn fraction(
        &self,
        (x, y): (usize, usize),
        (width, height): (usize, usize),
        (level_width, level_height): (usize, usize),
    ) -> f32 {
        let span = |start: usize, extent: usize, level: usize, thumb: usize| {
            let scale = thumb as f64 / level as f64;
            let first = ((start as f64 * scale).floor() as usize).min(thumb - 1);
            let last = (((start + extent) as f64 * scale).ceil() as usize).clamp(first + 1, thumb);
            first..last
        };
        let rows = span(y, height, level_height, self.height);
        let columns = span(x, width, level_width, self.width);
        let mut tissue = 0usize;
        for row in rows.clone() {
            tissue += self.tissue[row * self.width..][columns.clone()]
                .iter()
                .filter(|&&t| t)
                .count();
        }
        tissue as f32 / (rows.len() * columns.len()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otsu_splits_two_clusters_between_them() {
        let mut values = vec![0.02f32; 900];
        values.extend(vec![0.4f32; 100]);
        let threshold = otsu_threshold(&values);
        assert!(threshold > 0.02 && threshold < 0.4, "{threshold}");
    }

    #[test]
    fn saturation_tells_stain_from_glass_and_darkness_gray_tissue() {
        assert!(tissue_score([0.94, 0.94, 0.93], false) < 0.02);
        assert!(tissue_score([0.85, 0.55, 0.75], false) > 0.3);
        assert!(tissue_score([0.3, 0.3, 0.3], true) > 0.6);
    }
}
