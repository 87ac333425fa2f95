//! Images in and out: decoding PNG and JPEG (8- and 16-bit; gray, RGB, RGBA) into f32 planes,
//! torchvision's preprocessing (resize, centre crop, normalise), and heat-map overlays.

mod heatmap;
mod resize;
pub mod tiles;

pub use heatmap::{Colormap, overlay, write_png};
pub use resize::{center_crop, resize};

use std::path::Path;

use image::{ImageReader, Limits};

use crate::error::{Error, Result};

/// An image as f32 planes [C, H, W] with values in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Planes {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

/// The largest side a decoded image may have: refuses a header claiming 100000×100000 pixels
/// before allocating anything.
pub const MAX_SIDE: u32 = 16384;

/// Decodes a PNG or JPEG into `channels` (1: gray; 3: RGB; alpha dropped) planes in [0, 1].
pub fn load(path: &Path, channels: usize) -> Result<Planes> {
    let shown = path.display().to_string();
    let fail = |message: String| Error::Image {
        path: shown.clone(),
        message,
    };
    let mut reader = ImageReader::open(path)
        .map_err(|e| fail(format!("cannot read: {e}")))?
        .with_guessed_format()
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(1 << 30);
    reader.limits(limits);
    let decoded = reader
        .decode()
        .map_err(|e| fail(format!("not a readable PNG or JPEG image: {e}")))?;
    let (width, height) = (decoded.width() as usize, decoded.height() as usize);
    if width == 0 || height == 0 {
        return Err(fail(format!("the image is {width}×{height}")));
    }
    let rgb = decoded.to_rgb32f().into_raw();
    // Gray as PIL's convert("L") and torchvision's Grayscale compute it (ITU-R 601 weights; the
    // image crate's luma uses 709's).
    let interleaved: Vec<f32> = match channels {
        1 => rgb
            .chunks_exact(3)
            .map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
            .collect(),
        3 => rgb,
        _ => return Err(fail(format!("{channels} channels requested; 1 or 3"))),
    };
    let plane = width * height;
    let mut data = vec![0.0; channels * plane];
    for (i, value) in interleaved.into_iter().enumerate() {
        data[(i % channels) * plane + i / channels] = value;
    }
    Ok(Planes {
        channels,
        height,
        width,
        data,
    })
}

/// How images are brought to the network's input size.
#[derive(Clone, Debug, PartialEq)]
pub enum Sizing {
    /// torchvision's evaluation transform: shorter side to `resize`, then a centre crop of
    /// `crop` (256 → 224; 342 → 299 for Inception v3).
    ShorterSideThenCrop { resize: usize, crop: usize },
    /// The whole image to size × size, aspect ratio not kept: no crop can cut a lesion away.
    Whole { size: usize },
}

/// Sizing plus normalisation: everything between a decoded image and the network.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    pub channels: usize,
    pub sizing: Sizing,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Preprocess {
    /// torchvision's ImageNet evaluation preprocessing for `arch`.
    pub fn imagenet(arch: &str) -> Self {
        let (resize, crop) = if arch == "inception_v3" {
            (342, 299)
        } else {
            (256, 224)
        };
        Self {
            channels: 3,
            sizing: Sizing::ShorterSideThenCrop { resize, crop },
            mean: crate::models::adapt::IMAGENET_MEAN.to_vec(),
            std: crate::models::adapt::IMAGENET_STD.to_vec(),
        }
    }

    /// The network input size (height = width).
    pub fn input_size(&self) -> usize {
        match self.sizing {
            Sizing::ShorterSideThenCrop { crop, .. } => crop,
            Sizing::Whole { size } => size,
        }
    }

    /// Sized, not yet normalised planes (what an overlay is drawn on). An image so elongated
    /// that its shorter-side resize would exceed MAX_SIDE along the other side is refused (a
    /// 1 × 16384 image would otherwise become 256 × 4 million pixels).
    pub fn sized(&self, image: &Planes) -> Result<Planes> {
        Ok(match self.sizing {
            Sizing::ShorterSideThenCrop { resize: side, crop } => {
                let (h, w) = (image.height, image.width);
                let (new_h, new_w) = if h <= w {
                    (side, (side as f64 * w as f64 / h as f64) as usize)
                } else {
                    ((side as f64 * h as f64 / w as f64) as usize, side)
                };
                if new_h.max(new_w) > MAX_SIDE as usize {
                    return Err(Error::InvalidArgument {
                        op: "resize",
                        message: format!(
                            "a {h}×{w} image resized to a shorter side of {side} would be \
                             {new_h}×{new_w}, beyond {MAX_SIDE} pixels"
                        ),
                    });
                }
                center_crop(&resize(image, new_h.max(1), new_w.max(1)), crop, crop)
            }
            Sizing::Whole { size } => resize(image, size, size),
        })
    }

    /// Sized and normalised: (x − mean_c) / std_c.
    pub fn apply(&self, image: &Planes) -> Result<Planes> {
        let mut sized = self.sized(image)?;
        let plane = sized.height * sized.width;
        for (i, value) in sized.data.iter_mut().enumerate() {
            let c = i / plane;
            *value = (*value - self.mean[c]) / self.std[c];
        }
        Ok(sized)
    }
}
