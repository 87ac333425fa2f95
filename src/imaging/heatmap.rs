//! Heat-maps: a saliency map coloured with a perceptual colormap and blended over the image,
//! written as PNG.

use std::path::Path;

use image::ImageEncoder;

use super::Planes;
use crate::error::{Error, Result};

/// Perceptually uniform colormaps (matplotlib's), from polynomial fits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Colormap {
    #[default]
    Inferno,
    Viridis,
}

impl Colormap {
    /// The colour of t ∈ [0, 1] as RGB in [0, 1]. Sixth-degree polynomial fits of matplotlib's
    /// maps (Matt Zucker's, public domain), within a few 1/255 of the originals.
    pub fn color(self, t: f32) -> [f32; 3] {
        let t = t.clamp(0.0, 1.0);
        let c: [[f32; 3]; 7] = match self {
            Colormap::Inferno => [
                [0.000_218_6, 0.001_651_004, -0.019_480_89],
                [0.106_513_4, 0.563_956_4, 3.932_712],
                [11.602_5, -3.972_854, -15.942_39],
                [-41.703_99, 17.436_4, 44.354_15],
                [77.162_94, -33.402_36, -81.807_31],
                [-71.319_43, 32.626_07, 73.209_52],
                [25.131_13, -12.242_66, -23.070_32],
            ],
            Colormap::Viridis => [
                [0.277_727_3, 0.005_407_344, 0.334_099_8],
                [0.105_093, 1.404_614, 1.384_59],
                [-0.330_861_8, 0.214_847_6, 0.095_095_16],
                [-4.634_23, -5.799_101, -19.332_44],
                [6.228_27, 14.179_93, 56.690_55],
                [4.776_385, -13.745_15, -65.353_03],
                [-5.435_456, 4.645_852, 26.312_44],
            ],
        };
        let mut rgb = [0.0; 3];
        for (channel, value) in rgb.iter_mut().enumerate() {
            *value = c
                .iter()
                .rev()
                .fold(0.0, |acc, row| acc * t + row[channel])
                .clamp(0.0, 1.0);
        }
        rgb
    }
}

/// A saliency map's magnitude over `image`, as `gradlens saliency --out` and the browser page
/// draw it: RGB bytes.
pub fn saliency_overlay(image: &Planes, map: &[f32]) -> Vec<u8> {
    let magnitude: Vec<f32> = map.iter().map(|v| v.abs()).collect();
    overlay(image, &magnitude, Colormap::Inferno, 0.6)
}

/// The map (H × W, any range) coloured and blended over `image` (sized to H × W, values in
/// [0, 1], gray or RGB): RGB8 pixels. The map is scaled to [0, 1] by its 99th percentile, so
/// a few extreme pixels do not wash the rest out; `opacity` is the colour's weight.
pub fn overlay(image: &Planes, map: &[f32], colormap: Colormap, opacity: f32) -> Vec<u8> {
    let plane = image.height * image.width;
    let mut sorted: Vec<f32> = map.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f32::total_cmp);
    let low = sorted.first().copied().unwrap_or(0.0);
    let high = sorted
        .get(sorted.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(1.0);
    // A map flat but for rounding (a CAM upsampled from one value) stays flat, not striped.
    let span = (high - low)
        .max(1e-6 * high.abs().max(low.abs()))
        .max(f32::MIN_POSITIVE);
    let mut pixels = Vec::with_capacity(plane * 3);
    for (p, &value) in map.iter().enumerate().take(plane) {
        let t = if value.is_finite() {
            (value - low) / span
        } else {
            0.0
        };
        let color = colormap.color(t);
        for (channel, &c) in color.iter().enumerate() {
            let base = image.data[(channel.min(image.channels - 1)) * plane + p].clamp(0.0, 1.0);
            let value = base * (1.0 - opacity) + c * opacity;
            pixels.push((value * 255.0).round() as u8);
        }
    }
    pixels
}

/// Writes RGB8 pixels as a PNG, through a temporary file renamed into place: a failed write
/// leaves nothing behind.
pub fn write_png(path: &Path, width: usize, height: usize, rgb: &[u8]) -> Result<()> {
    let fail = |message: String| Error::Image {
        path: path.display().to_string(),
        message,
    };
    let mut encoded = Vec::new();
    image::codecs::png::PngEncoder::new(&mut encoded)
        .write_image(
            rgb,
            width as u32,
            height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| fail(format!("cannot encode: {e}")))?;
    crate::weights::write_atomically(path, &encoded).map_err(|e| fail(format!("cannot write: {e}")))
}
