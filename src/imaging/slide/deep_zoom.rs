//! Deep Zoom pyramids written as a stream of rows: `NAME.dzi` and `NAME_files/L/C_R.EXT`, the
//! format OpenSeadragon and the browser page open. Rows arrive top to bottom at full size; each
//! level keeps at most one row of tiles (plus what the last push brought), writes its tiles
//! as soon as a row of them is complete and hands that row, halved, to the level below. The
//! memory is a few rows of tiles per level, whatever the image's height.

use std::path::{Path, PathBuf};

use image::ImageEncoder;

use crate::error::{Error, Result};

/// Tiles' side in pixels (no overlap between tiles).
const TILE: usize = 256;

/// How tiles are stored: JPEG for the slide's pixels (RGB), PNG for the heat map (RGBA, so
/// that where nothing was analysed stays transparent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileFormat {
    Jpeg,
    Png,
}

impl TileFormat {
    fn extension(self) -> &'static str {
        match self {
            TileFormat::Jpeg => "jpeg",
            TileFormat::Png => "png",
        }
    }

    fn bytes_per_pixel(self) -> usize {
        match self {
            TileFormat::Jpeg => 3,
            TileFormat::Png => 4,
        }
    }
}

/// Turns one pixel's values (interleaved, `channels` of them) into RGBA bytes; JPEG tiles drop
/// the alpha.
pub type Render = Box<dyn Fn(&[f32]) -> [u8; 4]>;

/// One level's rows not yet written as tiles.
struct Band {
    width: usize,
    /// Rows written as tiles so far.
    done: usize,
    rows: Vec<f32>,
}

/// A pyramid being written.
pub struct DeepZoom {
    name: String,
    dir: PathBuf,
    width: usize,
    height: usize,
    channels: usize,
    format: TileFormat,
    render: Render,
    /// By level, 0 the 1 × 1 one.
    levels: Vec<Band>,
    /// A level kept whole (see [`DeepZoom::keeping`]) and its rows so far.
    kept: Option<(usize, Vec<f32>)>,
}

impl DeepZoom {
    /// A pyramid of a `width` × `height` image of `channels` values per pixel, written under
    /// `dir` as `name.dzi` (last, when [`DeepZoom::finish`] runs) and `name_files/`.
    pub fn create(
        dir: &Path,
        name: &str,
        (width, height): (usize, usize),
        channels: usize,
        format: TileFormat,
        render: Render,
    ) -> Result<Self> {
        let top = level_count(width.max(height)) - 1;
        let levels: Vec<Band> = (0..=top)
            .map(|level| Band {
                width: width.div_ceil(1 << (top - level)),
                done: 0,
                rows: Vec::new(),
            })
            .collect();
        for level in 0..levels.len() {
            let folder = dir.join(format!("{name}_files")).join(level.to_string());
            std::fs::create_dir_all(&folder).map_err(|e| Error::Output {
                path: folder.display().to_string(),
                message: format!("cannot create the folder: {e}"),
            })?;
        }
        Ok(Self {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            width,
            height,
            channels,
            format,
            render,
            levels,
            kept: None,
        })
    }

    /// Also keeps the largest level no wider or taller than `max_side` whole, returned by
    /// [`DeepZoom::finish`] (an overview image).
    pub fn keeping(mut self, max_side: usize) -> Self {
        let top = self.levels.len() - 1;
        let level = (0..=top)
            .rev()
            .find(|&level| self.level_size(level).0.max(self.level_size(level).1) <= max_side)
            .unwrap_or(0);
        self.kept = Some((level, Vec::new()));
        self
    }

    /// Level `level`'s width and height.
    pub fn level_size(&self, level: usize) -> (usize, usize) {
        let shift = self.levels.len() - 1 - level;
        (
            self.width.div_ceil(1 << shift),
            self.height.div_ceil(1 << shift),
        )
    }

    /// The next rows of the full-size image: interleaved values, `channels` per pixel, whole
    /// rows of `width` pixels.
    pub fn push_rows(&mut self, rows: &[f32]) -> Result<()> {
        debug_assert_eq!(rows.len() % (self.width * self.channels), 0);
        let top = self.levels.len() - 1;
        self.push(top, rows)
    }

    fn push(&mut self, level: usize, rows: &[f32]) -> Result<()> {
        self.levels[level].rows.extend_from_slice(rows);
        let row_length = self.levels[level].width * self.channels;
        while self.levels[level].rows.len() >= TILE * row_length {
            let rest = self.levels[level].rows.split_off(TILE * row_length);
            let full = std::mem::replace(&mut self.levels[level].rows, rest);
            self.emit(level, &full)?;
        }
        Ok(())
    }

    /// Writes `rows` (one row of tiles, or the last, shorter one) of `level` and passes them,
    /// halved, to the level below.
    fn emit(&mut self, level: usize, rows: &[f32]) -> Result<()> {
        let width = self.levels[level].width;
        let count = rows.len() / (width * self.channels);
        let tile_row = self.levels[level].done / TILE;
        for column in 0..width.div_ceil(TILE) {
            let left = column * TILE;
            let tile_width = TILE.min(width - left);
            let mut pixels = Vec::with_capacity(tile_width * count * 4);
            for row in 0..count {
                for x in left..left + tile_width {
                    let at = (row * width + x) * self.channels;
                    let rgba = (self.render)(&rows[at..at + self.channels]);
                    pixels.extend_from_slice(&rgba[..self.format.bytes_per_pixel()]);
                }
            }
            let path = self
                .dir
                .join(format!("{}_files", self.name))
                .join(level.to_string())
                .join(format!("{column}_{tile_row}.{}", self.format.extension()));
            write_tile(&path, self.format, (tile_width, count), &pixels)?;
        }
        if let Some((kept, values)) = &mut self.kept
            && *kept == level
        {
            values.extend_from_slice(rows);
        }
        self.levels[level].done += count;
        if level > 0 {
            let halved = downsample_2x(rows, width, self.channels);
            self.push(level - 1, &halved)?;
        }
        Ok(())
    }

    /// Writes what every level still holds, then the descriptor `name.dzi` (its presence
    /// marks a complete pyramid). Returns the kept level (see [`DeepZoom::keeping`]): its width,
    /// height and interleaved values.
    pub fn finish(mut self) -> Result<Option<(usize, usize, Vec<f32>)>> {
        for level in (0..self.levels.len()).rev() {
            let rows = std::mem::take(&mut self.levels[level].rows);
            if !rows.is_empty() {
                self.emit(level, &rows)?;
            }
            debug_assert_eq!(self.levels[level].done, self.level_size(level).1);
        }
        let descriptor = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <Image xmlns=\"http://schemas.microsoft.com/deepzoom/2008\" TileSize=\"{TILE}\" \
             Overlap=\"0\" Format=\"{}\">\n  <Size Width=\"{}\" Height=\"{}\"/>\n</Image>\n",
            self.format.extension(),
            self.width,
            self.height
        );
        let path = self.dir.join(format!("{}.dzi", self.name));
        crate::weights::write_atomically(&path, descriptor.as_bytes()).map_err(|e| {
            Error::Output {
                path: path.display().to_string(),
                message: format!("cannot write: {e}"),
            }
        })?;
        Ok(self.kept.take().map(|(level, values)| {
            let (width, height) = self.level_size(level);
            (width, height, values)
        }))
    }
}

/// Levels of a Deep Zoom pyramid whose larger side is `side`: 1 × 1 up to full size.
fn level_count(side: usize) -> usize {
    let mut levels = 1;
    while (1usize << (levels - 1)) < side {
        levels += 1;
    }
    levels
}

/// Interleaved rows of `width` pixels halved in both directions, each output pixel the mean of
/// the (up to four) input pixels it covers.
pub fn downsample_2x(rows: &[f32], width: usize, channels: usize) -> Vec<f32> {
    let height = rows.len() / (width * channels);
    let (half_width, half_height) = (width.div_ceil(2), height.div_ceil(2));
    let mut out = vec![0.0f32; half_width * half_height * channels];
    for y in 0..half_height {
        for x in 0..half_width {
            let ys = (2 * y)..(2 * y + 2).min(height);
            let xs = (2 * x)..(2 * x + 2).min(width);
            let count = (ys.len() * xs.len()) as f32;
            for c in 0..channels {
                let mut sum = 0.0;
                for yy in ys.clone() {
                    for xx in xs.clone() {
                        sum += rows[(yy * width + xx) * channels + c];
                    }
                }
                out[(y * half_width + x) * channels + c] = sum / count;
            }
        }
    }
    out
}

fn write_tile(
    path: &Path,
    format: TileFormat,
    (width, height): (usize, usize),
    pixels: &[u8],
) -> Result<()> {
    let fail = |message: String| Error::Output {
        path: path.display().to_string(),
        message,
    };
    let mut encoded = Vec::new();
    let (w, h) = (width as u32, height as u32);
    let result = match format {
        TileFormat::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 90)
            .write_image(pixels, w, h, image::ExtendedColorType::Rgb8),
        TileFormat::Png => image::codecs::png::PngEncoder::new_with_quality(
            &mut encoded,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        )
        .write_image(pixels, w, h, image::ExtendedColorType::Rgba8),
    };
    result.map_err(|e| fail(format!("cannot encode: {e}")))?;
    std::fs::write(path, encoded).map_err(|e| fail(format!("cannot write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_run_from_one_pixel_to_full_size() {
        assert_eq!(level_count(1), 1);
        assert_eq!(level_count(2), 2);
        assert_eq!(level_count(257), 10);
        assert_eq!(level_count(40_000), 17);
    }

    #[test]
    fn halving_averages_the_pixels_each_output_covers() {
        // 3 × 3, one channel: the far column and row average fewer pixels.
        let rows = [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0, 17.0];
        assert_eq!(downsample_2x(&rows, 3, 1), vec![5.0, 8.0, 14.0, 17.0]);
    }
}
