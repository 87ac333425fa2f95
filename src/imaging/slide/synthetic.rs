//! A generated whole slide for tests and demonstrations (no patient data): gray-white glass,
//! a few pink tissue sections with purple nuclei, and lesions inside them where the nuclei
//! crowd and darken. Every pixel is a function of its position and the seed, so any level and
//! any region is generated on its own, and a slide of 40 000² pixels is written in the memory
//! of a tile.

use std::path::Path;

use super::tiff_writer::{Compression, TiledTiff};
use crate::error::Result;

/// The glass between sections.
const GLASS: [u8; 3] = [242, 240, 238];
const STROMA: [u8; 3] = [231, 172, 204];
const NUCLEUS: [u8; 3] = [122, 72, 152];
const LESION_NUCLEUS: [u8; 3] = [82, 36, 116];
/// Level-0 pixels between nuclei (one cell of a jittered grid holds at most one).
const NUCLEUS_CELL: f64 = 16.0;

/// A disc with a wavy edge (tissue sections) or a plain one (lesions), in level-0 pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Blob {
    pub x: f64,
    pub y: f64,
    pub radius: f64,
    /// The edge's two waves' phases (0 for a plain disc).
    waves: [f64; 2],
}

impl Blob {
    fn contains(&self, x: f64, y: f64) -> bool {
        let (dx, dy) = (x - self.x, y - self.y);
        let distance = (dx * dx + dy * dy).sqrt();
        if distance > self.radius * 1.25 {
            return false;
        }
        let angle = dy.atan2(dx);
        let wave = 0.12 * (3.0 * angle + self.waves[0]).sin() * f64::from(self.waves[0] != 0.0)
            + 0.08 * (5.0 * angle + self.waves[1]).sin() * f64::from(self.waves[1] != 0.0);
        distance <= self.radius * (1.0 + wave)
    }

    /// Whether the blob may touch the rectangle (its bounding box, edge waves included).
    fn may_touch(&self, (x, y): (f64, f64), (width, height): (f64, f64)) -> bool {
        let reach = self.radius * 1.25;
        x < self.x + reach
            && x + width > self.x - reach
            && y < self.y + reach
            && y + height > self.y - reach
    }
}

/// The slide's layout: where tissue and lesions are.
#[derive(Clone, Debug)]
pub struct SyntheticSlide {
    pub width: usize,
    pub height: usize,
    seed: u64,
    pub sections: Vec<Blob>,
    pub lesions: Vec<Blob>,
}

impl SyntheticSlide {
    /// `sections` tissue sections, each with one lesion, laid out by `seed`.
    pub fn new((width, height): (usize, usize), sections: usize, seed: u64) -> Self {
        let (w, h) = (width as f64, height as f64);
        let side = w.min(h);
        let mut draw = {
            let mut counter = 0u64;
            move || {
                counter += 1;
                unit(hash(seed, counter, 0))
            }
        };
        let mut blobs = Vec::new();
        let mut lesions = Vec::new();
        for _ in 0..sections {
            let radius = side * (0.06 + 0.06 * draw());
            let x = radius * 1.3 + (w - 2.6 * radius).max(0.0) * draw();
            let y = radius * 1.3 + (h - 2.6 * radius).max(0.0) * draw();
            let waves = [1.0 + 5.0 * draw(), 1.0 + 5.0 * draw()];
            blobs.push(Blob {
                x,
                y,
                radius,
                waves,
            });
            // A lesion well inside the section.
            let (angle, reach) = (std::f64::consts::TAU * draw(), 0.4 * radius * draw());
            lesions.push(Blob {
                x: x + reach * angle.cos(),
                y: y + reach * angle.sin(),
                radius: radius * (0.12 + 0.1 * draw()),
                waves: [0.0, 0.0],
            });
        }
        Self {
            width,
            height,
            seed,
            sections: blobs,
            lesions,
        }
    }

    /// The colour at level-0 position (x, y).
    pub fn pixel(&self, x: f64, y: f64) -> [u8; 3] {
        if !self.sections.iter().any(|blob| blob.contains(x, y)) {
            return GLASS;
        }
        let in_lesion = self.lesions.iter().any(|blob| blob.contains(x, y));
        // The nucleus of this grid cell, if it has one, jittered inside the cell.
        let (cell_x, cell_y) = ((x / NUCLEUS_CELL).floor(), (y / NUCLEUS_CELL).floor());
        let key = hash(self.seed, cell_x as u64, cell_y as u64);
        let present = unit(key) < if in_lesion { 0.9 } else { 0.35 };
        let radius = if in_lesion { 5.5 } else { 3.5 };
        let centre_x = (cell_x + 0.3 + 0.4 * unit(key >> 24)) * NUCLEUS_CELL;
        let centre_y = (cell_y + 0.3 + 0.4 * unit(key >> 40)) * NUCLEUS_CELL;
        let inside = (x - centre_x).powi(2) + (y - centre_y).powi(2) <= radius * radius;
        match (present && inside, in_lesion) {
            (true, true) => LESION_NUCLEUS,
            (true, false) => NUCLEUS,
            (false, _) => STROMA,
        }
    }

    /// The RGB bytes of a region of a level `downsample` times smaller than full size, each
    /// pixel sampled at its centre.
    pub fn region(
        &self,
        (x, y): (usize, usize),
        (width, height): (usize, usize),
        downsample: usize,
    ) -> Vec<u8> {
        let f = downsample as f64;
        let origin = (x as f64 * f, y as f64 * f);
        let extent = (width as f64 * f, height as f64 * f);
        if !self
            .sections
            .iter()
            .any(|blob| blob.may_touch(origin, extent))
        {
            return GLASS.repeat(width * height);
        }
        let mut rgb = Vec::with_capacity(width * height * 3);
        for row in 0..height {
            for column in 0..width {
                let (px, py) = ((x + column) as f64 + 0.5, (y + row) as f64 + 0.5);
                rgb.extend(self.pixel(px * f, py * f));
            }
        }
        rgb
    }

    /// Writes the slide as a tiled TIFF of `levels` levels, each half the one above.
    pub fn write(
        &self,
        path: &Path,
        big: bool,
        compression: Compression,
        tile: usize,
        levels: usize,
    ) -> Result<()> {
        let mut tiff = TiledTiff::create(path, big, compression)?;
        for level in 0..levels {
            self.add_level(&mut tiff, tile, level)?;
        }
        tiff.finish()
    }

    /// Writes the slide laid out as an Aperio SVS file is: JPEG tiles sharing one set of tables,
    /// a thumbnail in one strip after the full resolution, the other levels, then a label
    /// photograph in one strip.
    pub fn write_like_svs(&self, path: &Path, big: bool, tile: usize, levels: usize) -> Result<()> {
        let mut tiff = TiledTiff::create(path, big, Compression::JpegSharedTables)?;
        let thumbnail = |side: usize| {
            let factor = self.width.max(self.height).div_ceil(side);
            let size = (self.width.div_ceil(factor), self.height.div_ceil(factor));
            (size, self.region((0, 0), size, factor))
        };
        self.add_level(&mut tiff, tile, 0)?;
        let (size, rgb) = thumbnail(256);
        tiff.add_strip_image(size, &rgb)?;
        for level in 1..levels {
            self.add_level(&mut tiff, tile, level)?;
        }
        let (size, rgb) = thumbnail(96);
        tiff.add_strip_image(size, &rgb)?;
        tiff.finish()
    }

    fn add_level(&self, tiff: &mut TiledTiff, tile: usize, level: usize) -> Result<()> {
        let downsample = 1 << level;
        let size = (
            self.width.div_ceil(downsample),
            self.height.div_ceil(downsample),
        );
        tiff.add_level(size, tile, |x, y, w, h| {
            self.region((x, y), (w, h), downsample)
        })
    }
}

/// SplitMix64's finaliser over the three words: a reproducible hash of a position.
fn hash(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed
        .wrapping_add(a.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The low 24 bits as a number in [0, 1).
fn unit(bits: u64) -> f64 {
    (bits & 0xFF_FFFF) as f64 / (1u64 << 24) as f64
}
