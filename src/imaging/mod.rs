//! Images in and out: decoding PNG, JPEG and TIFF (8- and 16-bit; gray, RGB, RGBA) and DICOM
//! (8 to 16 bits, windowed) into f32 planes, never through 8 bits, torchvision's preprocessing (resize, centre crop,
//! normalise), and heat-map overlays.

mod dicom;
mod dicom_output;
mod dicom_scan;
mod heatmap;
mod label;
mod resize;
pub mod slide;
pub mod tiles;

pub use dicom::{DicomOptions, Window, apply_window, decode_dicom, dicom_frame_count, is_dicom};
pub use dicom_output::{Derivation, secondary_capture};
pub use heatmap::{Colormap, overlay, saliency_overlay, write_png};
pub use label::{draw_label, label_width, labelled_grid};
pub use resize::{center_crop, resize};

use std::io::{BufRead, Cursor, Seek};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

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

/// The most pixels a decoded image may have (2^25, a 5792 × 5792 square, more than any
/// photograph or radiograph gradlens is meant for). MAX_SIDE alone would admit 16384 × 16384:
/// a 300 KB PNG of zeros whose f32 planes alone are 3 GB.
pub const MAX_PIXELS: u64 = 1 << 25;

/// The file extensions read as images (PNG, JPEG, TIFF, DICOM), lower case.
pub const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "tif", "tiff", "dcm", "dicom"];

/// Whether `path` names an image by its extension (folders are searched for these).
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The largest image file read (a DICOM file is read whole before decoding).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Decodes a PNG, JPEG, TIFF or DICOM file into `channels` (1: gray; 3: RGB; alpha dropped) planes
/// in [0, 1]; a DICOM file's first frame with its own window.
pub fn load(path: &Path, channels: usize) -> Result<Planes> {
    load_with(path, channels, &DicomOptions::default())
}

/// As [`load`], with the frame and window taken from a DICOM file.
pub fn load_with(path: &Path, channels: usize, dicom: &DicomOptions) -> Result<Planes> {
    let shown = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|e| read_error(&shown, e))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(Error::Image {
            path: shown,
            message: format!("the file is {size} bytes, beyond {MAX_FILE_BYTES}"),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| read_error(&shown, e))?;
    decode_with(&bytes, &shown, channels, dicom)
}

/// Decodes PNG, JPEG, TIFF or DICOM bytes as [`load`] decodes a file; `name` names them in errors.
pub fn decode(bytes: &[u8], name: &str, channels: usize) -> Result<Planes> {
    decode_with(bytes, name, channels, &DicomOptions::default())
}

/// As [`decode`], with the frame and window taken from DICOM bytes.
pub fn decode_with(
    bytes: &[u8],
    name: &str,
    channels: usize,
    dicom: &DicomOptions,
) -> Result<Planes> {
    let named_dicom = [".dcm", ".dicom"]
        .iter()
        .any(|suffix| name.to_ascii_lowercase().ends_with(suffix));
    if is_dicom(bytes) || named_dicom {
        return decode_dicom(bytes, name, channels, dicom);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| read_error(name, e))?;
    decode_from(reader, name, channels)
}

/// An RGB pixel's gray as PIL's convert("L") and torchvision's Grayscale compute it (ITU-R
/// 601 weights; the image crate's luma uses 709's): every path from colour to a gray model.
pub fn gray([r, g, b]: [f32; 3]) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// `message` on one line: a file's own text (a UID with a newline in it, say) or a decoder's
/// message quoted in an error has its control characters escaped.
pub(crate) fn one_line(message: &str) -> String {
    message
        .chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}

fn read_error(name: &str, error: std::io::Error) -> Error {
    Error::Image {
        path: name.to_string(),
        message: format!("cannot read: {error}"),
    }
}

/// The size checks read the header only: nothing is allocated for an image that fails them.
fn decode_from<R: BufRead + Seek>(
    mut reader: ImageReader<R>,
    name: &str,
    channels: usize,
) -> Result<Planes> {
    let fail = |message: String| Error::Image {
        path: name.to_string(),
        message,
    };
    if channels != 1 && channels != 3 {
        return Err(fail(format!("{channels} channels requested; 1 or 3")));
    }
    // The decoder's own allocations are capped; the sides are checked here, from the header,
    // so that the message can say what the image claims.
    let mut limits = Limits::default();
    limits.max_alloc = Some(1 << 30);
    reader.limits(limits.clone());
    let unreadable =
        |e: image::ImageError| fail(format!("not a readable PNG, JPEG or TIFF image: {e}"));
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(fail(format!("the image is {width}×{height}")));
    }
    if width.max(height) > MAX_SIDE {
        return Err(fail(format!(
            "the image is {width}×{height}, beyond {MAX_SIDE} pixels a side"
        )));
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(fail(format!(
            "the image is {width}×{height}, more than {MAX_PIXELS} pixels"
        )));
    }
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    decoder.set_limits(limits).map_err(unreadable)?;
    let decoded = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    let (width, height) = (decoded.width() as usize, decoded.height() as usize);
    let rgb = decoded.into_rgb32f().into_raw();
    let plane = width * height;
    let mut data = vec![0.0; channels * plane];
    match channels {
        1 => {
            for (value, p) in data.iter_mut().zip(rgb.chunks_exact(3)) {
                *value = gray([p[0], p[1], p[2]]);
            }
        }
        _ => {
            for (i, p) in rgb.chunks_exact(3).enumerate() {
                for (c, &value) in p.iter().enumerate() {
                    data[c * plane + i] = value;
                }
            }
        }
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

impl Sizing {
    /// The image brought to the input size, not normalised. An image so elongated
    /// that its shorter-side resize would exceed MAX_SIDE along the other side is refused (a
    /// 1 × 16384 image would otherwise become 256 × 4 million pixels).
    pub fn apply(&self, image: &Planes) -> Result<Planes> {
        Ok(match *self {
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

    /// Sized, not yet normalised planes (what an overlay is drawn on): `Sizing::apply`.
    pub fn sized(&self, image: &Planes) -> Result<Planes> {
        self.sizing.apply(image)
    }

    /// Sized and normalised: (x − mean_c) / std_c.
    pub fn apply(&self, image: &Planes) -> Result<Planes> {
        if self.mean.len() != image.channels || self.std.len() != image.channels {
            return Err(Error::InvalidArgument {
                op: "normalise",
                message: format!(
                    "mean {:?} and std {:?} for an image of {} channels",
                    self.mean, self.std, image.channels
                ),
            });
        }
        let mut sized = self.sized(image)?;
        let plane = sized.height * sized.width;
        for (i, value) in sized.data.iter_mut().enumerate() {
            let c = i / plane;
            *value = (*value - self.mean[c]) / self.std[c];
        }
        Ok(sized)
    }
}
