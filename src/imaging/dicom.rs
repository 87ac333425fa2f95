//! DICOM images into f32 planes, at their full bit depth: the file is parsed and its pixel data
//! decoded (native, deflated, RLE lossless and baseline JPEG transfer syntaxes) by dicom-rs;
//! the stored values then go through the modality rescale (slope, intercept) and the VOI
//! window (the file's first, or one given) in f64, never through 8 bits. Without a window the
//! frame's own range is stretched to [0, 1]. MONOCHROME1 is inverted, so that bright is dense
//! in both; RGB comes in as it is stored, scaled by its bit depth.

use std::io::Cursor;

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::{
    ConvertOptions, DecodedPixelData, ModalityLutOption, PhotometricInterpretation, PixelDecoder,
    PlanarConfiguration, VoiLutFunction, VoiLutOption,
};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::dicom_scan::check_structure;
use super::{MAX_FILE_BYTES, MAX_PIXELS, MAX_SIDE, Planes, gray, one_line};
use crate::error::{Error, Result};

/// A step that fails with a message for the file's error line.
type Checked<T> = std::result::Result<T, String>;

/// A VOI window: values from center − width/2 to center + width/2 span [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub center: f64,
    pub width: f64,
}

/// What to take from a DICOM file: which frame, and the window to apply in place of the
/// file's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DicomOptions {
    pub window: Option<Window>,
    pub frame: usize,
}

/// Whether `bytes` look like a DICOM file: "DICM" after the 128-byte preamble.
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM".as_slice())
}

/// How many frames a DICOM file holds (its header checked as for decoding, its pixel data not
/// decoded): what `--frame all` expands a file into.
pub fn dicom_frame_count(bytes: &[u8], name: &str) -> Result<usize> {
    let fail = |message: String| Error::Image {
        path: name.to_string(),
        message: one_line(&message),
    };
    let object = open_checked(bytes).map_err(fail)?;
    let [_, _, frames] = geometry(&object).map_err(fail)?;
    Ok(frames)
}

/// The file parsed by dicom-rs once its marker and structure (dicom_scan) pass.
fn open_checked(bytes: &[u8]) -> Checked<DefaultDicomObject> {
    if !is_dicom(bytes) {
        return Err("not a DICOM file (no \"DICM\" after a 128-byte preamble)".into());
    }
    check_structure(bytes, MAX_FILE_BYTES)?;
    OpenFileOptions::new()
        .read_preamble(ReadPreamble::Auto)
        .from_reader(Cursor::new(bytes))
        .map_err(|e| format!("not a readable DICOM file: {e}"))
}

/// Decodes frame `options.frame` of a DICOM file into `channels` (1 or 3) planes in [0, 1];
/// `name` names the file in errors.
pub fn decode_dicom(
    bytes: &[u8],
    name: &str,
    channels: usize,
    options: &DicomOptions,
) -> Result<Planes> {
    let fail = |message: String| Error::Image {
        path: name.to_string(),
        message: one_line(&message),
    };
    if channels != 1 && channels != 3 {
        return Err(fail(format!("{channels} channels requested; 1 or 3")));
    }
    let object = open_checked(bytes).map_err(fail)?;
    let [rows, columns, frames] = geometry(&object).map_err(fail)?;
    if options.frame >= frames {
        return Err(fail(format!(
            "frame {} asked of a file with {frames} frame(s)",
            options.frame
        )));
    }
    let syntax = object.meta().transfer_syntax().trim_end_matches('\0');
    let syntax_name = TransferSyntaxRegistry
        .get(syntax)
        .map_or("an unknown transfer syntax", |ts| ts.name());
    // dicom_scan checked what the codecs are known to trust; a panic left in one of them
    // still ends as an error here.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        object.decode_pixel_data_frame(options.frame as u32)
    }));
    let cannot = |why: String| {
        fail(format!(
            "cannot decode its pixel data ({syntax_name}, {syntax}): {why}"
        ))
    };
    let pixels = match decoded {
        Ok(Ok(pixels)) => pixels,
        Ok(Err(e)) => return Err(cannot(e.to_string())),
        Err(_) => return Err(cannot("the decoder failed on malformed data".into())),
    };
    if (pixels.rows() as usize, pixels.columns() as usize) != (rows, columns) {
        return Err(fail(
            "the decoded frame's size differs from the header's".into(),
        ));
    }
    let samples = pixels.samples_per_pixel() as usize;
    let sample = Sample::of(&pixels).map_err(fail)?;
    let planes = match (pixels.photometric_interpretation(), samples) {
        (PhotometricInterpretation::Monochrome1 | PhotometricInterpretation::Monochrome2, 1) => {
            vec![gray_plane(&pixels, &sample, options.window).map_err(fail)?]
        }
        (PhotometricInterpretation::Rgb, 3) if !sample.signed => {
            rgb_planes(&pixels, &sample, rows * columns).map_err(fail)?
        }
        (other, samples) => {
            return Err(fail(format!(
                "photometric interpretation {other} with {samples} sample(s) per pixel is not \
                 supported (MONOCHROME1, MONOCHROME2 and unsigned RGB are)"
            )));
        }
    };
    Ok(to_channels(planes, channels, rows, columns))
}

fn read_failed(error: dicom_pixeldata::Error) -> String {
    format!("cannot read its samples: {error}")
}

/// A monochrome frame rescaled and windowed into [0, 1] (the `given` window, else the file's,
/// else the frame's own range), MONOCHROME1 inverted.
fn gray_plane(
    pixels: &DecodedPixelData<'_>,
    sample: &Sample,
    given: Option<Window>,
) -> Checked<Vec<f32>> {
    let raw: Vec<f64> = pixels
        .to_vec_frame_with_options(0, &raw_values())
        .map_err(read_failed)?;
    let rescale = pixels.rescale().map_err(read_failed)?[0];
    if !rescale.slope.is_finite() || !rescale.intercept.is_finite() {
        return Err(format!(
            "rescale slope {} and intercept {} are not numbers",
            rescale.slope, rescale.intercept
        ));
    }
    let values: Vec<f64> = raw
        .iter()
        .map(|&v| rescale.slope * sample.stored(v) + rescale.intercept)
        .collect();
    let window = match given {
        Some(window) => Some((window, VoiLutFunction::Linear)),
        None => file_window(pixels)?,
    };
    let mut gray = match window {
        Some((window, function)) => apply_window(&values, window, function)?,
        None => stretch(&values),
    };
    if *pixels.photometric_interpretation() == PhotometricInterpretation::Monochrome1 {
        gray.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    Ok(gray)
}

/// An RGB frame of `plane` pixels as three planes, each sample over its stored range; 8-bit
/// samples in either planar configuration.
fn rgb_planes(
    pixels: &DecodedPixelData<'_>,
    sample: &Sample,
    plane: usize,
) -> Checked<Vec<Vec<f32>>> {
    let full = ((1u64 << sample.bits) - 1) as f64;
    let interleaved: Vec<f64> = match (pixels.bits_allocated(), pixels.planar_configuration()) {
        // Eight-bit samples are read as stored, either layout.
        (8, layout) => {
            let data = pixels.frame_data(0).map_err(read_failed)?;
            if data.len() < 3 * plane {
                return Err("its pixel data is shorter than its frame".into());
            }
            (0..3 * plane)
                .map(|i| match layout {
                    PlanarConfiguration::Standard => f64::from(data[i]),
                    PlanarConfiguration::PixelFirst => f64::from(data[(i % 3) * plane + i / 3]),
                })
                .collect()
        }
        (_, PlanarConfiguration::Standard) => pixels
            .to_vec_frame_with_options(0, &raw_values())
            .map_err(read_failed)?,
        (bits, _) => {
            return Err(format!(
                "{bits}-bit RGB stored plane by plane is not supported"
            ));
        }
    };
    Ok((0..3)
        .map(|c| {
            (0..plane)
                .map(|p| (sample.stored(interleaved[3 * p + c]) / full) as f32)
                .collect()
        })
        .collect())
}

/// How a stored sample is laid out in its allocated bits (DICOM PS3.5 8.1.1): `bits` stored,
/// its highest at `high_bit`, two's complement when `signed`.
struct Sample {
    allocated: u32,
    bits: u32,
    high_bit: u32,
    signed: bool,
}

impl Sample {
    fn of(pixels: &DecodedPixelData<'_>) -> Checked<Self> {
        let (allocated, bits, high_bit) = (
            u32::from(pixels.bits_allocated()),
            u32::from(pixels.bits_stored()),
            u32::from(pixels.high_bit()),
        );
        if bits == 0 || bits > allocated || high_bit + 1 < bits || high_bit >= allocated {
            return Err(format!(
                "{bits} bits stored with the high bit {high_bit} in {allocated} allocated"
            ));
        }
        let signed = pixels.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed;
        Ok(Self {
            allocated,
            bits,
            high_bit,
            signed,
        })
    }

    /// The stored value in a sample as dicom-rs reads it (which keeps the allocated bits but
    /// neither masks them to the stored ones nor always sign-extends): the stored bits taken
    /// from below the high bit, sign-extended when signed.
    fn stored(&self, read: f64) -> f64 {
        let pattern = (read as i64 as u64) & ((1u64 << self.allocated) - 1);
        let value = (pattern >> (self.high_bit + 1 - self.bits)) & ((1u64 << self.bits) - 1);
        match self.signed && value >> (self.bits - 1) & 1 == 1 {
            true => value as f64 - (1u64 << self.bits) as f64,
            false => value as f64,
        }
    }
}

/// The stored values, no rescale and no window (applied here in f64).
fn raw_values() -> ConvertOptions {
    ConvertOptions::new()
        .with_modality_lut(ModalityLutOption::None)
        .with_voi_lut(VoiLutOption::Identity)
}

/// Rows, columns and frames from the header, checked against the decoding limits before any
/// pixel data is decoded.
fn geometry(object: &DefaultDicomObject) -> Checked<[usize; 3]> {
    let integer = |tag, what: &str| -> Checked<Option<u64>> {
        match object.element_opt(tag) {
            Ok(Some(element)) => element
                .to_int::<u64>()
                .map(Some)
                .map_err(|e| format!("its {what} is not a number: {e}")),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("cannot read its {what}: {e}")),
        }
    };
    let rows = integer(tags::ROWS, "rows")?.ok_or("it holds no image (no Rows)")?;
    let columns = integer(tags::COLUMNS, "columns")?.ok_or("it holds no image (no Columns)")?;
    let frames = integer(tags::NUMBER_OF_FRAMES, "number of frames")?.unwrap_or(1);
    if rows == 0 || columns == 0 || frames == 0 {
        return Err(format!("the image is {columns}×{rows}, {frames} frame(s)"));
    }
    if rows.max(columns) > u64::from(MAX_SIDE) {
        return Err(format!(
            "the image is {columns}×{rows}, beyond {MAX_SIDE} pixels a side"
        ));
    }
    if rows * columns > MAX_PIXELS {
        return Err(format!(
            "the image is {columns}×{rows}, more than {MAX_PIXELS} pixels"
        ));
    }
    if frames > 1 << 16 {
        return Err(format!("it claims {frames} frames"));
    }
    let bits = integer(tags::BITS_ALLOCATED, "bits allocated")?.unwrap_or(0);
    let samples = integer(tags::SAMPLES_PER_PIXEL, "samples per pixel")?.unwrap_or(1);
    if ![8, 16].contains(&bits) || ![1, 3].contains(&samples) {
        return Err(format!(
            "{bits} bits allocated with {samples} sample(s) per pixel are not supported (8 or 16 \
             bits; 1 or 3 samples)"
        ));
    }
    // Native pixel data must hold every frame it claims: a header cannot make a decoder
    // allocate more than the file holds.
    let pixel_data = object
        .element_opt(tags::PIXEL_DATA)
        .map_err(|e| format!("cannot read its pixel data: {e}"))?
        .ok_or("it holds no pixel data")?;
    if let Some(native) = pixel_data.value().primitive() {
        let needed = frames * rows * columns * samples * bits / 8;
        let held = native.calculate_byte_len() as u64;
        if held < needed {
            return Err(format!(
                "its pixel data holds {held} bytes where {frames} frame(s) of {columns}×{rows} \
                 need {needed}"
            ));
        }
    }
    Ok([rows as usize, columns as usize, frames as usize])
}

/// The file's first window with its VOI LUT function, if it has one.
fn file_window(pixels: &DecodedPixelData<'_>) -> Checked<Option<(Window, VoiLutFunction)>> {
    let windows = pixels
        .window()
        .map_err(|e| format!("cannot read its window: {e}"))?;
    let Some(first) = windows.and_then(|w| w.first()) else {
        return Ok(None);
    };
    let function = pixels
        .voi_lut_function()
        .map_err(|e| format!("cannot read its VOI LUT function: {e}"))?
        .and_then(|f| f.first().copied())
        .unwrap_or_default();
    Ok(Some((
        Window {
            center: first.center,
            width: first.width,
        },
        function,
    )))
}

/// The VOI LUT functions of DICOM PS3.3 C.11.2.1.2, with output range [0, 1].
pub fn apply_window(values: &[f64], window: Window, function: VoiLutFunction) -> Checked<Vec<f32>> {
    let Window {
        center: c,
        width: w,
    } = window;
    let least = match function {
        VoiLutFunction::Linear => 1.0,
        VoiLutFunction::LinearExact | VoiLutFunction::Sigmoid => f64::MIN_POSITIVE,
    };
    if !c.is_finite() || !w.is_finite() || w < least {
        return Err(format!(
            "window center {c}, width {w}: the width must be at least {}",
            if least == 1.0 { "1" } else { "positive" }
        ));
    }
    let map = |x: f64| -> f64 {
        match function {
            VoiLutFunction::Linear => {
                if x <= c - 0.5 - (w - 1.0) / 2.0 {
                    0.0
                } else if x > c - 0.5 + (w - 1.0) / 2.0 {
                    1.0
                } else {
                    (x - (c - 0.5)) / (w - 1.0) + 0.5
                }
            }
            VoiLutFunction::LinearExact => {
                if x <= c - w / 2.0 {
                    0.0
                } else if x > c + w / 2.0 {
                    1.0
                } else {
                    (x - c) / w + 0.5
                }
            }
            VoiLutFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
        }
    };
    Ok(values.iter().map(|&x| map(x) as f32).collect())
}

/// The values stretched to [0, 1] by their own minimum and maximum (a flat image is 0).
fn stretch(values: &[f64]) -> Vec<f32> {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = high - low;
    values
        .iter()
        .map(|&v| {
            if span > 0.0 {
                ((v - low) / span) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// Gray or RGB planes brought to `channels`: gray repeated for 3, RGB to gray by ITU-R 601
/// weights for 1 (as PNGs are).
fn to_channels(planes: Vec<Vec<f32>>, channels: usize, height: usize, width: usize) -> Planes {
    let data = match (planes.len(), channels) {
        (1, 3) => planes[0].repeat(3),
        (3, 1) => (0..height * width)
            .map(|p| gray([planes[0][p], planes[1][p], planes[2][p]]))
            .collect(),
        _ => planes.concat(),
    };
    Planes {
        channels,
        height,
        width,
        data,
    }
}
