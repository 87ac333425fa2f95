//! Resizing as PIL's bilinear filter does it (torchvision's Resize on PIL images): a triangle
//! filter whose support widens with the downscale factor, so shrinking averages instead of
//! aliasing; then torchvision's centre crop.

use super::Planes;

/// Resizes every plane to new_height × new_width.
pub fn resize(image: &Planes, new_height: usize, new_width: usize) -> Planes {
    let horizontal = filter_taps(image.width, new_width);
    let vertical = filter_taps(image.height, new_height);
    let mut rows = vec![0.0f32; image.channels * image.height * new_width];
    for c in 0..image.channels {
        for y in 0..image.height {
            let source = &image.data[(c * image.height + y) * image.width..][..image.width];
            for (x, (first, weights)) in horizontal.iter().enumerate() {
                rows[(c * image.height + y) * new_width + x] = weights
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * source[first + k])
                    .sum();
            }
        }
    }
    let mut data = vec![0.0f32; image.channels * new_height * new_width];
    for c in 0..image.channels {
        for (y, (first, weights)) in vertical.iter().enumerate() {
            for x in 0..new_width {
                data[(c * new_height + y) * new_width + x] = weights
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * rows[(c * image.height + first + k) * new_width + x])
                    .sum();
            }
        }
    }
    Planes {
        channels: image.channels,
        height: new_height,
        width: new_width,
        data,
    }
}

/// For each output index: the first input index and the normalised weights (PIL's
/// ImagingResample with the bilinear "triangle" filter, support 1 scaled by the factor).
fn filter_taps(input: usize, output: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = input as f64 / output as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale;
    (0..output)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            let first = ((center - support + 0.5).floor().max(0.0)) as usize;
            let last = ((center + support + 0.5).floor() as usize).min(input);
            let mut weights: Vec<f64> = (first..last)
                .map(|i| {
                    let t = ((i as f64 - center + 0.5) / filter_scale).abs();
                    (1.0 - t).max(0.0)
                })
                .collect();
            let total: f64 = weights.iter().sum();
            if total > 0.0 {
                weights.iter_mut().for_each(|w| *w /= total);
            }
            (first, weights.into_iter().map(|w| w as f32).collect())
        })
        .collect()
}

/// torchvision's CenterCrop: top = round((H − h) / 2), left = round((W − w) / 2), with
/// Python's rounding (half to even).
pub fn center_crop(image: &Planes, height: usize, width: usize) -> Planes {
    let top = ((image.height.saturating_sub(height)) as f64 / 2.0).round_ties_even() as usize;
    let left = ((image.width.saturating_sub(width)) as f64 / 2.0).round_ties_even() as usize;
    let (height, width) = (height.min(image.height), width.min(image.width));
    let mut data = Vec::with_capacity(image.channels * height * width);
    for c in 0..image.channels {
        for y in 0..height {
            let row = (c * image.height + top + y) * image.width + left;
            data.extend_from_slice(&image.data[row..row + width]);
        }
    }
    Planes {
        channels: image.channels,
        height,
        width,
        data,
    }
}
