//! Big images as overlapping tiles: a small lesion in a large scan stays at full resolution
//! instead of shrinking to a few pixels in a whole-image resize. Tiles' class scores are
//! pooled into one score per image; their saliency maps are stitched into one map of the whole
//! image, overlaps averaged.

use super::{Planes, resize};
use crate::error::{Error, Result};

/// The most tiles one image may be cut into (each is a forward pass).
pub const MAX_TILES: usize = 65536;

/// Square tiles of `tile` pixels every `stride` pixels, the last row and column flush with the
/// image's far edges so that every pixel is covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileGrid {
    pub tile: usize,
    pub stride: usize,
    pub height: usize,
    pub width: usize,
}

impl TileGrid {
    /// Refuses a zero tile or stride, a stride longer than the tile (pixels between tiles would
    /// never be seen), an image smaller than one tile, and grids of more than [`MAX_TILES`].
    pub fn new(tile: usize, stride: usize, height: usize, width: usize) -> Result<Self> {
        let refuse = |message: String| Err(Error::invalid("--tile", message));
        if tile == 0 || stride == 0 {
            return refuse(format!(
                "tile {tile} and stride {stride} must both be at least 1"
            ));
        }
        if stride > tile {
            return refuse(format!(
                "a stride of {stride} leaves gaps between tiles of {tile}: at most the tile size"
            ));
        }
        if height < tile || width < tile {
            return refuse(format!(
                "the image ({height}×{width}) is smaller than one tile ({tile}×{tile}); resize \
                 it instead (leave out --tile)"
            ));
        }
        let count = |extent: usize| (extent - tile).div_ceil(stride) + 1;
        let tiles = count(height) * count(width);
        if tiles > MAX_TILES {
            return refuse(format!(
                "tiles of {tile} every {stride} pixels cut the {height}×{width} image into \
                 {tiles} tiles, more than {MAX_TILES}: use larger tiles or a longer stride"
            ));
        }
        Ok(Self {
            tile,
            stride,
            height,
            width,
        })
    }

    /// Top-left corners (y, x), row by row.
    pub fn positions(&self) -> Vec<(usize, usize)> {
        let starts = |extent: usize| {
            let last = extent - self.tile;
            let mut starts: Vec<usize> = (0..=last).step_by(self.stride).collect();
            if starts.last() != Some(&last) {
                starts.push(last);
            }
            starts
        };
        let columns = starts(self.width);
        starts(self.height)
            .into_iter()
            .flat_map(|y| columns.iter().map(move |&x| (y, x)))
            .collect()
    }
}

/// The tile of `image` whose top-left corner is (y, x).
pub fn crop(image: &Planes, tile: usize, (y, x): (usize, usize)) -> Planes {
    let mut data = Vec::with_capacity(image.channels * tile * tile);
    for c in 0..image.channels {
        let plane = &image.data[c * image.height * image.width..];
        for row in y..y + tile {
            data.extend_from_slice(&plane[row * image.width + x..row * image.width + x + tile]);
        }
    }
    Planes {
        channels: image.channels,
        height: tile,
        width: tile,
        data,
    }
}

/// Sums tile maps into a map of the whole image and averages where tiles overlap.
pub struct Stitcher {
    grid: TileGrid,
    sum: Vec<f32>,
    count: Vec<u32>,
}

impl Stitcher {
    pub fn new(grid: TileGrid) -> Self {
        let pixels = grid.height * grid.width;
        Self {
            grid,
            sum: vec![0.0; pixels],
            count: vec![0; pixels],
        }
    }

    /// Adds a tile's map (any square size: brought to the tile's size bilinearly) at (y, x).
    pub fn add(&mut self, map: &[f32], side: usize, (y, x): (usize, usize)) -> Result<()> {
        if map.len() != side * side {
            return Err(Error::invalid(
                "stitch",
                format!(
                    "a {side}×{side} map needs {} values, got {}",
                    side * side,
                    map.len()
                ),
            ));
        }
        let tile = self.grid.tile;
        let map = Planes {
            channels: 1,
            height: side,
            width: side,
            data: map.to_vec(),
        };
        let map = match side == tile {
            true => map,
            false => resize(&map, tile, tile),
        };
        for row in 0..tile {
            let at = (y + row) * self.grid.width + x;
            for (column, value) in map.data[row * tile..(row + 1) * tile].iter().enumerate() {
                self.sum[at + column] += value;
                self.count[at + column] += 1;
            }
        }
        Ok(())
    }

    /// The stitched map [height × width]; every pixel was covered by the grid.
    pub fn finish(self) -> Vec<f32> {
        self.sum
            .iter()
            .zip(&self.count)
            .map(|(&sum, &count)| sum / count.max(1) as f32)
            .collect()
    }
}

/// How tiles' logits become one image's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Per class, the largest logit of any tile: one tile showing a lesion makes the image
    /// positive (multiple-instance learning's max pooling).
    Max,
    /// Per class, the mean logit over tiles.
    Mean,
}

/// One row of logits from tile rows [tiles × classes].
pub fn pool_logits(logits: &[f32], classes: usize, pooling: Pooling) -> Vec<f32> {
    let tiles = logits.len() / classes.max(1);
    (0..classes)
        .map(|class| {
            let values = (0..tiles).map(|t| logits[t * classes + class]);
            match pooling {
                Pooling::Max => values.fold(f32::NEG_INFINITY, f32::max),
                Pooling::Mean => values.sum::<f32>() / tiles.max(1) as f32,
            }
        })
        .collect()
}
