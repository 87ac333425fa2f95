//! A tiled, pyramidal RGB TIFF or BigTIFF writer (the `tiff` crate writes strips only): tiles
//! are produced one at a time by the caller and written as they come, so that a slide of any
//! size is written in the memory of one tile. Used to generate test slides.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use image::ImageEncoder;

use crate::error::{Error, Result};

/// How tiles are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    /// zlib (TIFF compression 8).
    Deflate,
    /// One baseline JPEG per tile, YCbCr (TIFF compression 7).
    Jpeg,
    /// JPEG as Aperio's scanners store it: each tile an abbreviated stream without tables, the
    /// quantisation and Huffman tables once in the JPEGTables tag.
    JpegSharedTables,
}

impl Compression {
    fn tag_value(self) -> u16 {
        match self {
            Compression::None => 1,
            Compression::Deflate => 8,
            Compression::Jpeg | Compression::JpegSharedTables => 7,
        }
    }

    fn compress(self, rgb: &[u8], width: usize, height: usize) -> std::io::Result<Vec<u8>> {
        match self {
            Compression::None => Ok(rgb.to_vec()),
            Compression::Deflate => {
                let mut encoder =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(rgb)?;
                encoder.finish()
            }
            Compression::Jpeg | Compression::JpegSharedTables => {
                let mut encoded = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 90)
                    .write_image(
                        rgb,
                        width as u32,
                        height as u32,
                        image::ExtendedColorType::Rgb8,
                    )
                    .map_err(std::io::Error::other)?;
                Ok(encoded)
            }
        }
    }
}

/// One image written: where its directory's values come from.
struct WrittenLevel {
    width: u32,
    height: u32,
    /// The tile side; None for an image in one strip (a scanner's thumbnail or label).
    tile: Option<u32>,
    offsets: Vec<u64>,
    counts: Vec<u64>,
    /// The JPEGTables tag of `Compression::JpegSharedTables`.
    jpeg_tables: Option<Vec<u8>>,
}

/// A TIFF being written: levels first, their directories at the end.
pub struct TiledTiff {
    out: BufWriter<File>,
    big: bool,
    compression: Compression,
    levels: Vec<WrittenLevel>,
    path: String,
}

impl TiledTiff {
    /// `big`: BigTIFF (64-bit offsets), needed beyond 4 GB.
    pub fn create(path: &Path, big: bool, compression: Compression) -> Result<Self> {
        let shown = path.display().to_string();
        let file = File::create(path).map_err(|e| Error::Output {
            path: shown.clone(),
            message: format!("cannot create: {e}"),
        })?;
        let mut tiff = Self {
            out: BufWriter::new(file),
            big,
            compression,
            levels: Vec::new(),
            path: shown,
        };
        // The header; its first directory's offset is filled in by `finish`.
        let header: &[u8] = match big {
            true => &[b'I', b'I', 43, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            false => &[b'I', b'I', 42, 0, 0, 0, 0, 0],
        };
        tiff.out.write_all(header).map_err(|e| tiff.fail(e))?;
        Ok(tiff)
    }

    fn fail(&self, error: std::io::Error) -> Error {
        Error::Output {
            path: self.path.clone(),
            message: format!("cannot write: {error}"),
        }
    }

    /// A level of `width` × `height` pixels in square tiles of `tile` (a multiple of 16):
    /// `pixels(x, y, w, h)` gives the RGB bytes of the w × h region at (x, y), tile by tile,
    /// row by row. Edge tiles are padded to the full tile, as TIFF stores them.
    pub fn add_level(
        &mut self,
        (width, height): (usize, usize),
        tile: usize,
        mut pixels: impl FnMut(usize, usize, usize, usize) -> Vec<u8>,
    ) -> Result<()> {
        let mut level = WrittenLevel {
            width: width as u32,
            height: height as u32,
            tile: Some(tile as u32),
            offsets: Vec::new(),
            counts: Vec::new(),
            jpeg_tables: None,
        };
        for top in (0..height).step_by(tile) {
            for left in (0..width).step_by(tile) {
                let (w, h) = (tile.min(width - left), tile.min(height - top));
                let region = pixels(left, top, w, h);
                let mut padded = vec![0u8; tile * tile * 3];
                for row in 0..h {
                    padded[row * tile * 3..][..w * 3]
                        .copy_from_slice(&region[row * w * 3..][..w * 3]);
                }
                let mut data = self
                    .compression
                    .compress(&padded, tile, tile)
                    .map_err(|e| self.fail(e))?;
                if self.compression == Compression::JpegSharedTables {
                    let (tables, stream) = split_jpeg_tables(&data).map_err(|e| self.fail(e))?;
                    match &level.jpeg_tables {
                        None => level.jpeg_tables = Some(tables),
                        // The encoder's tables are fixed by its quality: every tile shares them.
                        Some(first) if *first == tables => {}
                        Some(_) => {
                            return Err(self.fail(std::io::Error::other(
                                "the JPEG encoder changed its tables between tiles",
                            )));
                        }
                    }
                    data = stream;
                }
                level.offsets.push(self.position()?);
                level.counts.push(data.len() as u64);
                self.out.write_all(&data).map_err(|e| self.fail(e))?;
                self.align()?;
            }
        }
        self.levels.push(level);
        Ok(())
    }

    /// An uncompressed RGB image of `width` × `height` in one strip, as scanners store a
    /// slide's thumbnail, label and macro photographs between and after the levels: a reader
    /// must pass over it.
    pub fn add_strip_image(&mut self, (width, height): (usize, usize), rgb: &[u8]) -> Result<()> {
        let offset = self.position()?;
        self.out.write_all(rgb).map_err(|e| self.fail(e))?;
        self.align()?;
        self.levels.push(WrittenLevel {
            width: width as u32,
            height: height as u32,
            tile: None,
            offsets: vec![offset],
            counts: vec![rgb.len() as u64],
            jpeg_tables: None,
        });
        Ok(())
    }

    fn position(&mut self) -> Result<u64> {
        let at = self.out.stream_position().map_err(|e| self.fail(e))?;
        if !self.big && at > u64::from(u32::MAX) {
            return Err(Error::Output {
                path: self.path.clone(),
                message: "beyond 4 GB: write a BigTIFF".to_string(),
            });
        }
        Ok(at)
    }

    /// TIFF offsets are even.
    fn align(&mut self) -> Result<()> {
        if self.position()? % 2 == 1 {
            self.out.write_all(&[0]).map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// Writes every level's directory, chained in the order the levels were added.
    pub fn finish(mut self) -> Result<()> {
        let levels = std::mem::take(&mut self.levels);
        let mut first = None;
        let mut previous_next: Option<u64> = None;
        for (index, level) in levels.iter().enumerate() {
            let at = self.directory(level, index > 0)?;
            match previous_next {
                None => first = Some(at),
                Some(slot) => self.patch(slot, at)?,
            }
            // The next-directory offset is the directory's last field.
            previous_next = Some(self.position()? - self.offset_size());
        }
        let slot = if self.big { 8 } else { 4 };
        self.patch(slot, first.unwrap_or(0))?;
        self.out.flush().map_err(|e| self.fail(e))
    }

    fn offset_size(&self) -> u64 {
        if self.big { 8 } else { 4 }
    }

    fn patch(&mut self, at: u64, value: u64) -> Result<()> {
        let end = self.position()?;
        let bytes = match self.big {
            true => value.to_le_bytes().to_vec(),
            false => (value as u32).to_le_bytes().to_vec(),
        };
        self.out
            .seek(SeekFrom::Start(at))
            .map_err(|e| self.fail(e))?;
        self.out.write_all(&bytes).map_err(|e| self.fail(e))?;
        self.out
            .seek(SeekFrom::Start(end))
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Writes one directory (values that do not fit in an entry first) and returns its offset.
    fn directory(&mut self, level: &WrittenLevel, reduced: bool) -> Result<u64> {
        const SHORT: u16 = 3;
        const LONG: u16 = 4;
        const LONG8: u16 = 16;
        const UNDEFINED: u16 = 7;
        let photometric = match (self.compression, level.tile) {
            (Compression::Jpeg | Compression::JpegSharedTables, Some(_)) => 6,
            _ => 2,
        };
        let compression = match level.tile {
            Some(_) => self.compression.tag_value(),
            None => 1,
        };
        let offsets_type = if self.big { LONG8 } else { LONG };
        let words = |values: &[u64], big: bool| -> Vec<u8> {
            values
                .iter()
                .flat_map(|&v| match big {
                    true => v.to_le_bytes().to_vec(),
                    false => (v as u32).to_le_bytes().to_vec(),
                })
                .collect()
        };
        let shorts =
            |values: &[u16]| -> Vec<u8> { values.iter().flat_map(|v| v.to_le_bytes()).collect() };
        let long = |v: u32| v.to_le_bytes().to_vec();
        let offsets = (
            offsets_type,
            level.offsets.len() as u64,
            words(&level.offsets, self.big),
        );
        let counts = (
            offsets_type,
            level.counts.len() as u64,
            words(&level.counts, self.big),
        );
        // In ascending tag order, as TIFF requires.
        let mut entries: Vec<(u16, u16, u64, Vec<u8>)> = vec![
            (254, LONG, 1, long(u32::from(reduced))),
            (256, LONG, 1, long(level.width)),
            (257, LONG, 1, long(level.height)),
            (258, SHORT, 3, shorts(&[8, 8, 8])),
            (259, SHORT, 1, shorts(&[compression])),
            (262, SHORT, 1, shorts(&[photometric])),
        ];
        match level.tile {
            None => entries.extend([
                (273, offsets.0, offsets.1, offsets.2),
                (277, SHORT, 1, shorts(&[3])),
                (278, LONG, 1, long(level.height)),
                (279, counts.0, counts.1, counts.2),
                (284, SHORT, 1, shorts(&[1])),
            ]),
            Some(tile) => entries.extend([
                (277, SHORT, 1, shorts(&[3])),
                (284, SHORT, 1, shorts(&[1])),
                (322, LONG, 1, long(tile)),
                (323, LONG, 1, long(tile)),
                (324, offsets.0, offsets.1, offsets.2),
                (325, counts.0, counts.1, counts.2),
            ]),
        }
        if let Some(tables) = &level.jpeg_tables {
            entries.push((347, UNDEFINED, tables.len() as u64, tables.clone()));
        }
        let inline = self.offset_size() as usize;
        let mut placed = Vec::new();
        for (_, _, _, bytes) in &entries {
            if bytes.len() > inline {
                placed.push(Some(self.position()?));
                self.out.write_all(bytes).map_err(|e| self.fail(e))?;
                self.align()?;
            } else {
                placed.push(None);
            }
        }
        let at = self.position()?;
        let mut ifd = Vec::new();
        match self.big {
            true => ifd.extend((entries.len() as u64).to_le_bytes()),
            false => ifd.extend((entries.len() as u16).to_le_bytes()),
        }
        for ((tag, kind, count, bytes), place) in entries.iter().zip(&placed) {
            ifd.extend(tag.to_le_bytes());
            ifd.extend(kind.to_le_bytes());
            let mut value = match place {
                Some(offset) => words(&[*offset], self.big),
                None => bytes.clone(),
            };
            value.resize(inline, 0);
            match self.big {
                true => ifd.extend(count.to_le_bytes()),
                false => ifd.extend((*count as u32).to_le_bytes()),
            }
            ifd.extend(value);
        }
        ifd.extend(vec![0u8; inline]);
        self.out.write_all(&ifd).map_err(|e| self.fail(e))?;
        Ok(at)
    }
}

/// A baseline JPEG stream split into its tables (SOI, every DQT and DHT segment, EOI: the
/// JPEGTables tag) and the abbreviated stream without them (SOI, the frame header and the
/// scan; application segments dropped).
fn split_jpeg_tables(jpeg: &[u8]) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let bad = || std::io::Error::other("the JPEG encoder wrote an unexpected stream");
    if jpeg.get(..2) != Some(&[0xFF, 0xD8][..]) {
        return Err(bad());
    }
    let (mut tables, mut stream) = (vec![0xFF, 0xD8], vec![0xFF, 0xD8]);
    let mut at = 2;
    loop {
        let header = jpeg.get(at..at + 4).ok_or_else(bad)?;
        if header[0] != 0xFF {
            return Err(bad());
        }
        let marker = header[1];
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let segment = jpeg.get(at..at + 2 + length).ok_or_else(bad)?;
        match marker {
            // DQT, DHT: the tables.
            0xDB | 0xC4 => tables.extend_from_slice(segment),
            // APPn: not needed to decode.
            0xE0..=0xEF => {}
            // SOS: the scan runs to the end of the stream (its EOI included).
            0xDA => {
                stream.extend_from_slice(&jpeg[at..]);
                break;
            }
            _ => stream.extend_from_slice(segment),
        }
        at += 2 + length;
    }
    tables.extend_from_slice(&[0xFF, 0xD9]);
    Ok((tables, stream))
}
