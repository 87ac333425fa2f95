//! Whole-slide images: tiled, pyramidal TIFF (BigTIFF included), read a tile at a time through
//! the `tiff` crate, so that a slide of any size costs the memory of the tiles in use, never
//! of the slide. Also what `gradlens slide` needs around it: tissue detection (tissue.rs), the
//! Deep Zoom pyramids it writes (deep_zoom.rs), and a tiled TIFF writer with a generated slide
//! for tests and demonstrations (tiff_writer.rs, synthetic.rs).

mod deep_zoom;
mod synthetic;
mod tiff_writer;
mod tissue;

pub use deep_zoom::{DeepZoom, TileFormat, downsample_2x};
pub use synthetic::SyntheticSlide;
pub use tiff_writer::{Compression, TiledTiff};
pub use tissue::{TissueMask, otsu_threshold, tissue_score};

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;
use std::rc::Rc;

use tiff::ColorType;
use tiff::decoder::{ChunkType, Decoder, DecodingResult, Limits};
use tiff::tags::Tag;

use super::{Planes, one_line};
use crate::error::{Error, Result};

/// The widest and tallest slide level read (a million pixels a side: four times the largest
/// scanners' output).
pub const MAX_SLIDE_SIDE: u32 = 1 << 20;

/// The largest TIFF tile read, a side.
pub const MAX_TILE_SIDE: u32 = 4096;

/// The most image directories walked looking for pyramid levels (slides hold a handful).
const MAX_DIRECTORIES: usize = 64;

/// One resolution of the pyramid, 0 the full one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    pub width: usize,
    pub height: usize,
    pub tile_width: usize,
    pub tile_height: usize,
    /// The image directory (IFD) that holds it.
    directory: usize,
    samples: Samples,
}

impl Level {
    fn tiles_across(&self) -> usize {
        self.width.div_ceil(self.tile_width)
    }

    /// How many times smaller than `full` this level is (its width's ratio).
    pub fn downsample(&self, full: &Level) -> f64 {
        full.width as f64 / self.width as f64
    }
}

/// The pixel layouts read: 8 or 16 bits, gray, RGB (or YCbCr from JPEG tiles) with or without
/// alpha, interleaved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Samples {
    Gray,
    GrayAlpha,
    Rgb,
    Rgba,
    /// JPEG-compressed tiles whose JPEG data is YCbCr (the tiff crate leaves the conversion to
    /// the caller).
    YCbCr,
}

impl Samples {
    fn count(self) -> usize {
        match self {
            Samples::Gray => 1,
            Samples::GrayAlpha => 2,
            Samples::Rgb | Samples::YCbCr => 3,
            Samples::Rgba => 4,
        }
    }
}

/// A decoded TIFF tile: interleaved samples scaled to [0, 1] on reading.
enum TilePixels {
    Bits8(Vec<u8>),
    Bits16(Vec<u16>),
}

struct Tile {
    width: usize,
    height: usize,
    pixels: TilePixels,
}

impl Tile {
    fn sample(&self, index: usize) -> f32 {
        match &self.pixels {
            TilePixels::Bits8(values) => f32::from(values[index]) / 255.0,
            TilePixels::Bits16(values) => f32::from(values[index]) / 65535.0,
        }
    }
}

/// A slide open for reading: its levels, and the decoded tiles kept for reuse (about two rows
/// of the level being read: a band of analysis tiles spans at most two rows of TIFF tiles
/// when it is no taller than one).
pub struct Slide<R: Read + Seek> {
    name: String,
    decoder: Decoder<R>,
    levels: Vec<Level>,
    /// The directory the decoder stands on.
    directory: usize,
    cache: HashMap<(usize, usize), (u64, Rc<Tile>)>,
    clock: u64,
}

impl Slide<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::Image {
            path: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        Slide::from_reader(BufReader::new(file), &path.display().to_string())
    }
}

impl<R: Read + Seek> Slide<R> {
    /// Reads the directories: the first must be a tiled image (the full resolution); every
    /// later tiled one with the same aspect ratio and smaller sides is a level. Strip images
    /// (an SVS file's label and macro photographs) are passed over.
    pub fn from_reader(reader: R, name: &str) -> Result<Self> {
        let fail = |message: String| Error::Image {
            path: name.to_string(),
            message: one_line(&message),
        };
        let unreadable = |e: tiff::TiffError| fail(format!("not a readable TIFF: {e}"));
        let mut limits = Limits::default();
        // Tile offsets of a 10⁶ × 10⁶ slide in 256-pixel tiles: 15 million entries.
        limits.ifd_value_size = 128 << 20;
        limits.decoding_buffer_size = 128 << 20;
        limits.intermediate_buffer_size = 128 << 20;
        let mut decoder = Decoder::new(reader)
            .map_err(unreadable)?
            .with_limits(limits);
        let mut levels: Vec<Level> = Vec::new();
        let mut directory = 0;
        loop {
            match level_here(&mut decoder, directory) {
                Ok(level) => {
                    let fits = match levels.last() {
                        None => true,
                        Some(last) => {
                            let full = &levels[0];
                            let ratio = (level.width as f64 / level.height as f64)
                                / (full.width as f64 / full.height as f64);
                            level.width < last.width
                                && level.height < last.height
                                && (ratio - 1.0).abs() < 0.05
                        }
                    };
                    if fits {
                        levels.push(level);
                    }
                }
                Err(problem) if directory == 0 => return Err(fail(problem)),
                Err(_) => {}
            }
            directory += 1;
            // A directory past the full resolution that cannot be read ends the walk: the
            // levels found so far still serve.
            if !decoder.more_images()
                || directory == MAX_DIRECTORIES
                || decoder.next_image().is_err()
            {
                break;
            }
        }
        Ok(Self {
            name: name.to_string(),
            decoder,
            levels,
            // Unknown after the walk (it may have stopped on a broken directory): the first
            // tile read seeks to its level.
            directory: usize::MAX,
            cache: HashMap::new(),
            clock: 0,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The levels, largest first.
    pub fn levels(&self) -> &[Level] {
        &self.levels
    }

    /// `index`, or an error naming the levels there are.
    pub fn level(&self, index: usize) -> Result<Level> {
        self.levels.get(index).copied().ok_or_else(|| Error::Image {
            path: self.name.clone(),
            message: format!(
                "the slide has no level {index}: its {} levels are {}",
                self.levels.len(),
                self.levels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("{i} ({}×{})", l.width, l.height))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// The region of `level` at (x, y) of `width` × `height` pixels, inside the level, as RGB
    /// planes in [0, 1] (gray repeated, alpha dropped, YCbCr converted as JPEG defines it).
    pub fn read_region(
        &mut self,
        level: usize,
        (x, y): (usize, usize),
        (width, height): (usize, usize),
    ) -> Result<Planes> {
        let info = self.level(level)?;
        if width == 0 || height == 0 || x + width > info.width || y + height > info.height {
            return Err(Error::invalid(
                "read_region",
                format!(
                    "{width}×{height} at ({x}, {y}) is not inside level {level} ({}×{})",
                    info.width, info.height
                ),
            ));
        }
        let plane = width * height;
        let mut data = vec![0.0f32; 3 * plane];
        let samples = info.samples.count();
        for tile_y in y / info.tile_height..=(y + height - 1) / info.tile_height {
            for tile_x in x / info.tile_width..=(x + width - 1) / info.tile_width {
                let index = tile_y * info.tiles_across() + tile_x;
                let tile = self.tile(level, index)?;
                let (left, top) = (tile_x * info.tile_width, tile_y * info.tile_height);
                let rows = y.max(top)..(y + height).min(top + tile.height);
                let columns = x.max(left)..(x + width).min(left + tile.width);
                for row in rows {
                    for column in columns.clone() {
                        let at = ((row - top) * tile.width + (column - left)) * samples;
                        let rgb = match info.samples {
                            Samples::Gray | Samples::GrayAlpha => [tile.sample(at); 3],
                            Samples::Rgb | Samples::Rgba => {
                                [tile.sample(at), tile.sample(at + 1), tile.sample(at + 2)]
                            }
                            Samples::YCbCr => ycbcr_to_rgb(
                                tile.sample(at),
                                tile.sample(at + 1),
                                tile.sample(at + 2),
                            ),
                        };
                        let p = (row - y) * width + (column - x);
                        for (c, value) in rgb.into_iter().enumerate() {
                            data[c * plane + p] = value;
                        }
                    }
                }
            }
        }
        Ok(Planes {
            channels: 3,
            height,
            width,
            data,
        })
    }

    /// The smallest level shrunk by a whole factor to at most `max_side` pixels a side (read a
    /// band of rows at a time), and the factor from that level: what tissue detection looks at.
    pub fn thumbnail(&mut self, max_side: usize) -> Result<(Planes, Level)> {
        let smallest = self.levels.len() - 1;
        let level = self.levels[smallest];
        let factor = level
            .width
            .max(level.height)
            .div_ceil(max_side.max(1))
            .max(1);
        let (width, height) = (level.width.div_ceil(factor), level.height.div_ceil(factor));
        let mut data = vec![0.0f32; 3 * width * height];
        for row in 0..height {
            let top = row * factor;
            let rows = factor.min(level.height - top);
            let band = box_downsample(
                &self.read_region(smallest, (0, top), (level.width, rows))?,
                factor,
            );
            for c in 0..3 {
                data[(c * height + row) * width..][..width]
                    .copy_from_slice(&band.data[c * width..][..width]);
            }
        }
        let thumbnail = Planes {
            channels: 3,
            height,
            width,
            data,
        };
        Ok((thumbnail, level))
    }

    /// Whether the slide is gray (tissue is then told by darkness, not saturation).
    pub fn is_gray(&self) -> bool {
        matches!(self.levels[0].samples, Samples::Gray | Samples::GrayAlpha)
    }

    /// A decoded tile, from the cache or the file. The cache keeps the most recently used
    /// tiles, two rows of the level's tiles and a few more.
    fn tile(&mut self, level: usize, index: usize) -> Result<Rc<Tile>> {
        self.clock += 1;
        if let Some((used, tile)) = self.cache.get_mut(&(level, index)) {
            *used = self.clock;
            return Ok(tile.clone());
        }
        let info = self.levels[level];
        let fail = |message: String| Error::Image {
            path: self.name.clone(),
            message: one_line(&message),
        };
        if self.directory != info.directory {
            self.decoder
                .seek_to_image(info.directory)
                .map_err(|e| fail(format!("level {level}: {e}")))?;
            self.directory = info.directory;
        }
        // A codec's panic on malformed data (zune-jpeg's debug assertions, say) still ends as
        // an error naming the tile.
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.decoder.read_chunk(index as u32)
        }));
        let decoded = match decoded {
            Ok(result) => result.map_err(|e| fail(format!("level {level}, tile {index}: {e}")))?,
            Err(_) => {
                return Err(fail(format!(
                    "level {level}, tile {index}: the decoder failed on malformed data"
                )));
            }
        };
        let (width, height) = self.decoder.chunk_data_dimensions(index as u32);
        let (width, height) = (width as usize, height as usize);
        let pixels = match decoded {
            DecodingResult::U8(values) => TilePixels::Bits8(values),
            DecodingResult::U16(values) => TilePixels::Bits16(values),
            _ => {
                return Err(fail(format!(
                    "level {level}: samples are not unsigned integers"
                )));
            }
        };
        let length = match &pixels {
            TilePixels::Bits8(values) => values.len(),
            TilePixels::Bits16(values) => values.len(),
        };
        if length < width * height * info.samples.count() {
            return Err(fail(format!(
                "level {level}, tile {index}: {length} samples decoded for a {width}×{height} tile"
            )));
        }
        let tile = Rc::new(Tile {
            width,
            height,
            pixels,
        });
        let capacity = 2 * info.tiles_across() + 4;
        if self.cache.len() >= capacity {
            let oldest = self
                .cache
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(key, _)| *key);
            if let Some(key) = oldest {
                self.cache.remove(&key);
            }
        }
        self.cache
            .insert((level, index), (self.clock, tile.clone()));
        Ok(tile)
    }
}

/// `image` shrunk `factor` times by averaging each factor × factor block (the blocks at the
/// far edges may be smaller): ⌈H / factor⌉ × ⌈W / factor⌉.
pub fn box_downsample(image: &Planes, factor: usize) -> Planes {
    let (height, width) = (image.height.div_ceil(factor), image.width.div_ceil(factor));
    let mut data = vec![0.0f32; image.channels * height * width];
    let mut counts = vec![0u32; height * width];
    for y in 0..image.height {
        for x in 0..image.width {
            counts[(y / factor) * width + x / factor] += 1;
        }
    }
    for c in 0..image.channels {
        let source = &image.data[c * image.height * image.width..][..image.height * image.width];
        let target = &mut data[c * height * width..][..height * width];
        for y in 0..image.height {
            for x in 0..image.width {
                target[(y / factor) * width + x / factor] += source[y * image.width + x];
            }
        }
        for (value, &count) in target.iter_mut().zip(&counts) {
            *value /= count as f32;
        }
    }
    Planes {
        channels: image.channels,
        height,
        width,
        data,
    }
}

/// The directory the decoder stands on as a level, or why it is not one.
fn level_here<R: Read + Seek>(
    decoder: &mut Decoder<R>,
    directory: usize,
) -> std::result::Result<Level, String> {
    if decoder.get_chunk_type() != ChunkType::Tile {
        return Err(
            "the image is stored in strips, not tiles: a whole-slide image is a tiled TIFF \
             (classify or explain a small image as an image)"
                .to_string(),
        );
    }
    let (width, height) = decoder.dimensions().map_err(|e| e.to_string())?;
    if width == 0 || height == 0 || width.max(height) > MAX_SLIDE_SIDE {
        return Err(format!(
            "the slide claims {width}×{height} pixels; at most {MAX_SLIDE_SIDE} a side"
        ));
    }
    let (tile_width, tile_height) = decoder.chunk_dimensions();
    if tile_width == 0 || tile_height == 0 || tile_width.max(tile_height) > MAX_TILE_SIDE {
        return Err(format!(
            "tiles of {tile_width}×{tile_height}; at most {MAX_TILE_SIDE} a side"
        ));
    }
    let planar = decoder
        .find_tag_unsigned::<u16>(Tag::PlanarConfiguration)
        .map_err(|e| e.to_string())?;
    if planar.is_some_and(|p| p != 1) {
        return Err("samples are stored in separate planes; only interleaved ones are read".into());
    }
    let color = decoder.colortype().map_err(|e| e.to_string())?;
    let samples = match color {
        ColorType::Gray(8 | 16) => Samples::Gray,
        ColorType::GrayA(8 | 16) => Samples::GrayAlpha,
        ColorType::RGB(8 | 16) => Samples::Rgb,
        ColorType::RGBA(8 | 16) => Samples::Rgba,
        // Only JPEG's YCbCr: uncompressed YCbCr is subsampled, which the tiff crate leaves
        // to its caller.
        ColorType::YCbCr(8)
            if decoder
                .find_tag_unsigned::<u16>(Tag::Compression)
                .ok()
                .flatten()
                == Some(7) =>
        {
            Samples::YCbCr
        }
        other => {
            return Err(format!(
                "directory {directory}: {other:?} pixels; gray or RGB of 8 or 16 bits are read"
            ));
        }
    };
    Ok(Level {
        width: width as usize,
        height: height as usize,
        tile_width: tile_width as usize,
        tile_height: tile_height as usize,
        directory,
        samples,
    })
}

/// JPEG's (JFIF's) full-range YCbCr to RGB, all in [0, 1].
fn ycbcr_to_rgb(y: f32, cb: f32, cr: f32) -> [f32; 3] {
    let (cb, cr) = (cb - 128.0 / 255.0, cr - 128.0 / 255.0);
    [
        (y + 1.402 * cr).clamp(0.0, 1.0),
        (y - 0.344_136 * cb - 0.714_136 * cr).clamp(0.0, 1.0),
        (y + 1.772 * cb).clamp(0.0, 1.0),
    ]
}
