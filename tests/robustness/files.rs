//! Files for the robustness tests, honest and hostile: checkpoints of a small model, `run`
//! input files, safetensors headers written by hand (so that they can lie), images in every
//! format, and PNG headers claiming any size. Shared by tests/properties.rs and
//! tests/hostile.rs (the fuzz crate does not need them: it gets its files from libFuzzer).
#![allow(dead_code)] // each includer uses a different part of this module

use std::io::Cursor;

use gradlens::checkpoint::ModelInfo;
use gradlens::imaging::{Preprocess, Sizing};

use super::robustness::{self, families};

/// A safetensors file written by hand, so that its header may lie: `header` is the JSON
/// verbatim and `length` the header length the first 8 bytes claim (None: the true one).
pub fn raw_safetensors(header: &str, length: Option<u64>, data: &[u8]) -> Vec<u8> {
    let mut bytes = length.unwrap_or(header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// A whole small model's checkpoint with its metadata: the resnet18 family's (width 4, one
/// input channel, two classes).
pub fn resnet_checkpoint() -> Vec<u8> {
    let info = ModelInfo {
        arch: "resnet18".to_string(),
        config: robustness::small_config(),
        class_names: vec!["lesion".to_string(), "no lesion".to_string()],
        preprocess: Preprocess {
            channels: 1,
            sizing: Sizing::Whole { size: 32 },
            mean: vec![0.5],
            std: vec![0.25],
        },
    };
    robustness::checkpoint_bytes(&families()[0].store, 0.01, Some(info.metadata()))
}

pub fn lesion_net_checkpoint() -> Vec<u8> {
    let lesion = families().iter().find(|f| f.name == "lesion_net").unwrap();
    robustness::checkpoint_bytes(&lesion.store, 0.01, None)
}

/// A `run` input file of one tensor `name` with `dims`, as f32 values from `values` (cycled).
pub fn input_file(name: &str, dims: &[usize], values: &[f32]) -> Vec<u8> {
    let count: usize = dims.iter().product();
    let bytes: Vec<u8> = (0..count)
        .flat_map(|i| values[i % values.len()].to_le_bytes())
        .collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, dims.to_vec(), &bytes)
        .unwrap();
    safetensors::serialize([(name, view)], None).unwrap()
}

/// An image of `width` × `height` in `format` (0: gray 8-bit PNG, 1: RGB 8-bit, 2: RGBA
/// 8-bit, 3: gray 16-bit, 4: RGB 16-bit, 5: JPEG, 6: gray 16-bit TIFF, 7: RGB 8-bit TIFF),
/// with pixel values from `seed`.
pub fn encoded_image(format: u8, width: u32, height: u32, seed: u8) -> Vec<u8> {
    use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, Rgba};
    let v = |x: u32, y: u32| (x * 37 + y * 11 + u32::from(seed)) as u8;
    let image = match format {
        0 => DynamicImage::ImageLuma8(ImageBuffer::from_fn(width, height, |x, y| Luma([v(x, y)]))),
        1 | 5 | 7 => DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| {
            Rgb([v(x, y), v(y, x), 255 - v(x, y)])
        })),
        2 => DynamicImage::ImageRgba8(ImageBuffer::from_fn(width, height, |x, y| {
            Rgba([v(x, y), 0, 9, v(y, x)])
        })),
        3 | 6 => DynamicImage::ImageLuma16(ImageBuffer::from_fn(width, height, |x, y| {
            Luma([u16::from(v(x, y)) * 257 + u16::from(seed % 7)])
        })),
        _ => DynamicImage::ImageRgb16(ImageBuffer::from_fn(width, height, |x, y| {
            Rgb([u16::from(v(x, y)) * 257, 0, 65535])
        })),
    };
    let mut bytes = Cursor::new(Vec::new());
    let kind = match format {
        5 => ImageFormat::Jpeg,
        6 | 7 => ImageFormat::Tiff,
        _ => ImageFormat::Png,
    };
    image.write_to(&mut bytes, kind).unwrap();
    bytes.into_inner()
}

/// A small TIFF whose first directory's ImageWidth and ImageLength are patched to claim
/// `width` × `height` (its strip still holds 4 × 4 pixels).
pub fn tiff_header_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = encoded_image(6, 4, 4, 0);
    assert_eq!(
        &bytes[..4],
        b"II*\0",
        "the image crate writes little-endian TIFF"
    );
    let word = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
    let directory = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    for entry in 0..usize::from(word(&bytes, directory)) {
        let at = directory + 2 + 12 * entry;
        let value = match word(&bytes, at) {
            256 => width,
            257 => height,
            _ => continue,
        };
        // As a LONG: the type at +2, the count at +4, the value at +8.
        bytes[at + 2..at + 4].copy_from_slice(&4u16.to_le_bytes());
        bytes[at + 4..at + 8].copy_from_slice(&1u32.to_le_bytes());
        bytes[at + 8..at + 12].copy_from_slice(&value.to_le_bytes());
    }
    bytes
}

/// A PNG whose IHDR claims `width` × `height`, with correct CRCs and no pixel data.
pub fn png_header_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit gray, deflate, no filter, no interlace
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&13u32.to_be_bytes());
    bytes.extend_from_slice(&ihdr);
    bytes.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // An IDAT (an empty zlib stream): decoders read the header up to the first one.
    let idat = [
        b"IDAT".as_slice(),
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ]
    .concat();
    bytes.extend_from_slice(&8u32.to_be_bytes());
    bytes.extend_from_slice(&idat);
    bytes.extend_from_slice(&crc32(&idat).to_be_bytes());
    bytes.extend_from_slice(&0u32.to_be_bytes());
    bytes.extend_from_slice(b"IEND");
    bytes.extend_from_slice(&crc32(b"IEND").to_be_bytes());
    bytes
}

/// CRC-32 (IEEE), as PNG chunks carry it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}
