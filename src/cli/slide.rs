//! `gradlens slide`: a whole-slide image classified and explained tile by tile, in bounded
//! memory. Background tiles are skipped (tissue detection on a thumbnail); tissue tiles go
//! through the model a batch at a time; the heat map and the slide are written as Deep Zoom
//! pyramids, one band of tiles at a time, with an overview PNG and one JSON line per tissue
//! tile.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use gradlens::checkpoint::ModelInfo;
use gradlens::imaging::slide::{
    Compression, DeepZoom, Level, Slide, SyntheticSlide, TileFormat, TissueMask, box_downsample,
};
use gradlens::imaging::{Colormap, Planes, Preprocess, Sizing, gray, resize, write_png};
use gradlens::reference::softmax::softmax;
use gradlens::saliency::{self, Explained, Method, MethodSettings, method_maps};
use gradlens::{Error, Gpu, Result, Tensor};
use serde_json::json;

use super::model;

#[derive(clap::Args)]
pub struct SlideArgs {
    /// A tiled TIFF or BigTIFF, pyramidal or not (generic tiled TIFF, Aperio SVS).
    slide: PathBuf,
    /// A safetensors checkpoint (a gradlens checkpoint, or torchvision's exported weights).
    #[arg(long)]
    weights: PathBuf,
    /// The architecture, when the file does not name it.
    #[arg(long)]
    arch: Option<String>,
    /// The folder for heatmap.dzi, slide.dzi, heatmap.png, tiles.jsonl and slide.json.
    #[arg(long)]
    out: PathBuf,
    /// The class explained: an index, a class name stored with the weights, or "top" (each
    /// tile's own predicted class).
    #[arg(long, default_value = "top")]
    class: String,
    #[arg(long, default_value = "gradcam", value_parser = super::method_parser())]
    method: Method,
    /// Tiles' side in pixels of the level read (default: the model's input size); each tile is
    /// resized to the model's input.
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u32).range(1..=4096))]
    tile: Option<u32>,
    /// The pyramid level read, 0 the full resolution.
    #[arg(long, value_name = "L", default_value_t = 0)]
    level: usize,
    /// Tiles explained per batch.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// The least share of tissue that makes a tile worth analysing (0 analyses every tile).
    #[arg(long, value_name = "F", default_value_t = 0.2)]
    min_tissue: f32,
    /// The pyramids' full size is the level read shrunk this many times (a divisor of the
    /// tile).
    #[arg(long, value_name = "D", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    downsample: u32,
    /// The layer of the CAM methods (default: the last convolutional block).
    #[arg(long, value_name = "NAME")]
    layer: Option<String>,
}

#[derive(clap::Args)]
pub struct SyntheticArgs {
    /// The TIFF written.
    out: PathBuf,
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u32).range(64..=1_048_576))]
    width: u32,
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u32).range(64..=1_048_576))]
    height: u32,
    /// Tissue sections (each holds one lesion).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    sections: u32,
    /// Pyramid levels, each half the one above.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=16))]
    levels: u32,
    /// TIFF tiles' side (a multiple of 16).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(16..=4096))]
    tile: u32,
    /// Write a BigTIFF (64-bit offsets; needed past 4 GB of tiles).
    #[arg(long)]
    bigtiff: bool,
    /// Laid out as an Aperio SVS file: JPEG tiles sharing one set of tables, a thumbnail and a
    /// label in strips beside the levels (deflate tiles otherwise).
    #[arg(long)]
    svs: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// `gradlens synthetic-slide`.
pub fn synthetic(args: &SyntheticArgs) -> Result<()> {
    if !args.tile.is_multiple_of(16) {
        return Err(Error::InvalidArgument {
            op: "--tile",
            message: format!(
                "{} is not a multiple of 16, as TIFF tiles must be",
                args.tile
            ),
        });
    }
    let started = Instant::now();
    let size = (args.width as usize, args.height as usize);
    let slide = SyntheticSlide::new(size, args.sections as usize, args.seed);
    let (tile, levels) = (args.tile as usize, args.levels as usize);
    match args.svs {
        true => slide.write_like_svs(&args.out, args.bigtiff, tile, levels)?,
        false => slide.write(&args.out, args.bigtiff, Compression::Deflate, tile, levels)?,
    }
    println!(
        "{}×{} slide, {} levels → {} in {:.1} s",
        size.0,
        size.1,
        args.levels,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The overview (heatmap.png) is at most this wide and tall.
const OVERVIEW_SIDE: usize = 2048;

/// Bands of tiles held waiting for their batch before a partial batch is run: the memory held
/// whatever the tissue's layout.
const MAX_WAITING_BANDS: usize = 8;

/// One row of tiles of the output being assembled: the slide's pixels and the heat,
/// interleaved rows of the pyramids' full width, and its tissue tiles not yet explained.
struct Band {
    slide: Vec<f32>,
    heat: Vec<f32>,
    waiting: usize,
}

/// A tissue tile waiting for its batch.
struct Waiting {
    band: usize,
    /// The tile's corner and size in the level read (edge tiles are smaller).
    at: (usize, usize),
    size: (usize, usize),
    tissue: f32,
    /// The model's input, normalised.
    input: Vec<f32>,
}

/// Everything one run holds.
struct Run<'a> {
    explained: Explained<'a>,
    gpu: &'a Gpu,
    info: &'a ModelInfo,
    class: Option<usize>,
    method: Method,
    settings: MethodSettings,
    args: &'a SlideArgs,
    tile: usize,
    downsample: usize,
    output_width: usize,
    bands: VecDeque<Band>,
    /// The absolute index of `bands[0]`.
    first_band: usize,
    queue: Vec<Waiting>,
    slide_pyramid: DeepZoom,
    heat_pyramid: DeepZoom,
    lines: std::io::BufWriter<std::fs::File>,
    explained_tiles: usize,
}

pub fn run(args: &SlideArgs) -> Result<()> {
    let started = Instant::now();
    let mut slide = Slide::open(&args.slide)?;
    let level = slide.level(args.level)?;
    let gpu = Gpu::new()?;
    let loaded = model::load(&gpu, &args.weights, args.arch.as_deref())?;
    let info = &loaded.info;
    let class = model::parse_class(info, &args.class)?;
    let tile = args
        .tile
        .map_or(info.preprocess.input_size(), |tile| tile as usize);
    let downsample = args.downsample as usize;
    check_geometry(&slide, &level, tile, downsample, args)?;
    let (thumbnail, _) = slide.thumbnail(OVERVIEW_SIDE)?;
    let tissue = TissueMask::new(&thumbnail, slide.is_gray());
    drop(thumbnail);

    std::fs::create_dir_all(&args.out).map_err(|e| Error::Output {
        path: args.out.display().to_string(),
        message: format!("cannot create the folder: {e}"),
    })?;
    let output = (
        level.width.div_ceil(downsample),
        level.height.div_ceil(downsample),
    );
    let (slide_pyramid, heat_pyramid) = pyramids(&args.out, output)?;
    let lines_path = args.out.join("tiles.jsonl.partial");
    let lines = std::fs::File::create(&lines_path).map_err(|e| Error::Output {
        path: lines_path.display().to_string(),
        message: format!("cannot create: {e}"),
    })?;
    let mut run = Run {
        explained: Explained {
            model: loaded.model.as_ref(),
            store: &loaded.store,
        },
        gpu: &gpu,
        info,
        class,
        method: args.method,
        settings: MethodSettings {
            layer: args.layer.clone(),
            ..Default::default()
        },
        args,
        tile,
        downsample,
        output_width: output.0,
        bands: VecDeque::new(),
        first_band: 0,
        queue: Vec::new(),
        slide_pyramid,
        heat_pyramid,
        lines: std::io::BufWriter::new(lines),
        explained_tiles: 0,
    };
    let (tiles, imagery_level) = run.read_level(&mut slide, &level, &tissue)?;
    run.explain_queue()?;
    run.write_finished_bands()?;
    let explained_tiles = run.explained_tiles;
    let Run {
        slide_pyramid,
        heat_pyramid,
        mut lines,
        ..
    } = run;
    lines.flush().map_err(|e| Error::Output {
        path: lines_path.display().to_string(),
        message: format!("cannot write: {e}"),
    })?;
    drop(lines);
    let final_lines = args.out.join("tiles.jsonl");
    std::fs::rename(&lines_path, &final_lines).map_err(|e| Error::Output {
        path: final_lines.display().to_string(),
        message: format!("cannot write: {e}"),
    })?;
    let overview_slide = slide_pyramid.finish()?;
    let overview_heat = heat_pyramid.finish()?;
    if let (Some((width, height, rgb)), Some((_, _, heat))) = (overview_slide, overview_heat) {
        write_png(
            &args.out.join("heatmap.png"),
            width,
            height,
            &overview(&rgb, &heat),
        )?;
    }
    let counts = Counts {
        tiles,
        imagery_level,
        explained: explained_tiles,
        seconds: started.elapsed().as_secs_f64(),
    };
    let class = class.map(|c| (c, info.class_names[c].as_str()));
    let geometry = (tile, output);
    write_summary(
        args, &slide, &level, geometry, class, &tissue, &counts, &gpu,
    )
}

/// Refuses a tile the downsampling does not divide, and a level smaller than one tile.
fn check_geometry(
    slide: &Slide<std::io::BufReader<std::fs::File>>,
    level: &Level,
    tile: usize,
    downsample: usize,
    args: &SlideArgs,
) -> Result<()> {
    if !tile.is_multiple_of(downsample) {
        return Err(Error::InvalidArgument {
            op: "--downsample",
            message: format!("{downsample} does not divide the tile side {tile}"),
        });
    }
    if level.width < tile || level.height < tile {
        return Err(Error::Image {
            path: slide.name().to_string(),
            message: format!(
                "level {} ({}×{}) is smaller than one tile of {tile}",
                args.level, level.width, level.height
            ),
        });
    }
    if !(0.0..=1.0).contains(&args.min_tissue) {
        return Err(Error::InvalidArgument {
            op: "--min-tissue",
            message: format!("{} is not a share between 0 and 1", args.min_tissue),
        });
    }
    Ok(())
}

impl Run<'_> {
    /// Reads the level band by band: each tile's pixels into its band, each tissue tile queued
    /// for its batch, the finished bands written. Returns how many tiles it read, and the level
    /// the slide's own pyramid came from when not from the level read.
    fn read_level(
        &mut self,
        slide: &mut Slide<std::io::BufReader<std::fs::File>>,
        level: &Level,
        tissue: &TissueMask,
    ) -> Result<(usize, Option<usize>)> {
        let (tile, downsample) = (self.tile, self.downsample);
        let preprocess = Preprocess {
            sizing: Sizing::Whole {
                size: self.info.preprocess.input_size(),
            },
            ..self.info.preprocess.clone()
        };
        // The slide's own pyramid comes from the level of its size where the file has one (a
        // scanner's pyramid halves each level): glass is then never decoded at the level read.
        let output_height = level.height.div_ceil(downsample);
        let imagery = (downsample > 1)
            .then(|| {
                slide
                    .levels()
                    .iter()
                    .position(|l| (l.width, l.height) == (self.output_width, output_height))
            })
            .flatten();
        let mut tiles = 0;
        for (band, y) in (0..level.height).step_by(tile).enumerate() {
            let height = tile.min(level.height - y);
            let rows = height.div_ceil(downsample);
            self.bands.push_back(Band {
                slide: vec![0.0; rows * self.output_width * 3],
                heat: vec![0.0; rows * self.output_width],
                waiting: 0,
            });
            if let Some(imagery) = imagery {
                let pixels =
                    slide.read_region(imagery, (0, y / downsample), (self.output_width, rows))?;
                self.place_slide_pixels(band, 0, &pixels, 1);
            }
            for x in (0..level.width).step_by(tile) {
                tiles += 1;
                let size = (tile.min(level.width - x), height);
                let share = tissue.fraction((x, y), size, (level.width, level.height));
                // --min-tissue 0 analyses every tile, bare glass included.
                let analysed =
                    self.args.min_tissue == 0.0 || (share > 0.0 && share >= self.args.min_tissue);
                if !analysed && imagery.is_some() {
                    continue;
                }
                let pixels = slide.read_region(self.args.level, (x, y), size)?;
                if imagery.is_none() {
                    self.place_slide_pixels(band, x, &pixels, downsample);
                }
                if analysed {
                    let input = model_input(&pixels, tile, &preprocess)?;
                    self.bands[band - self.first_band].waiting += 1;
                    self.queue.push(Waiting {
                        band,
                        at: (x, y),
                        size,
                        tissue: share,
                        input,
                    });
                    if self.queue.len() == self.args.batch as usize {
                        self.explain_queue()?;
                    }
                }
            }
            if self.bands.len() > MAX_WAITING_BANDS && !self.queue.is_empty() {
                self.explain_queue()?;
            }
            self.write_finished_bands()?;
        }
        Ok((tiles, imagery))
    }

    /// Pixels at `x` of the level read (`x` at the pyramid's size when `shrink` is 1) shrunk
    /// `shrink` times into their band's slide rows.
    fn place_slide_pixels(&mut self, band: usize, x: usize, pixels: &Planes, shrink: usize) {
        let small = match shrink {
            1 => None,
            _ => Some(box_downsample(pixels, shrink)),
        };
        let small = small.as_ref().unwrap_or(pixels);
        let width = self.output_width;
        let target = &mut self.bands[band - self.first_band].slide;
        let plane = small.height * small.width;
        for row in 0..small.height {
            for column in 0..small.width {
                let at = (row * width + x / shrink + column) * 3;
                for c in 0..3 {
                    target[at + c] = small.data[c * plane + row * small.width + column];
                }
            }
        }
    }

    /// Classifies and explains the waiting tiles as one batch, writes their heat into their
    /// bands and their JSON lines.
    fn explain_queue(&mut self) -> Result<()> {
        if self.queue.is_empty() {
            return Ok(());
        }
        let queue = std::mem::take(&mut self.queue);
        let size = self.info.preprocess.input_size();
        let channels = self.info.preprocess.channels;
        let data: Vec<f32> = queue.iter().flat_map(|w| w.input.iter().copied()).collect();
        let x = Tensor::from_slice(self.gpu, [queue.len(), channels, size, size], &data)?;
        let logits = pollster::block_on(saliency::logits(self.explained, &x))?;
        let classes_count = logits.dims[1];
        let probabilities: Vec<Vec<f32>> = softmax(&logits.data, classes_count)
            .chunks(classes_count)
            .map(<[f32]>::to_vec)
            .collect();
        let classes: Vec<usize> = match self.class {
            Some(class) => vec![class; queue.len()],
            None => probabilities.iter().map(|p| argmax(p)).collect(),
        };
        let maps = pollster::block_on(method_maps(
            self.explained,
            &x,
            &classes,
            self.method,
            &self.settings,
        ))?
        .maps;
        let plane = size * size;
        for (i, waiting) in queue.iter().enumerate() {
            let probability = probabilities[i][classes[i]];
            let heat = tile_heat(&maps.data[i * plane..][..plane], probability);
            self.place_heat(waiting, &heat);
            self.bands[waiting.band - self.first_band].waiting -= 1;
            let names = &self.info.class_names;
            let line = json!({
                "x": waiting.at.0,
                "y": waiting.at.1,
                "width": waiting.size.0,
                "height": waiting.size.1,
                "level": self.args.level,
                "tissue": waiting.tissue,
                "class": classes[i],
                "class_name": names[classes[i]],
                "probabilities": names.iter().zip(&probabilities[i])
                    .map(|(name, &p)| (name.clone(), json!(p)))
                    .collect::<serde_json::Map<_, _>>(),
            });
            writeln!(self.lines, "{line}").map_err(|e| Error::Output {
                path: self.args.out.join("tiles.jsonl").display().to_string(),
                message: format!("cannot write: {e}"),
            })?;
        }
        self.explained_tiles += queue.len();
        Ok(())
    }

    /// A tile's heat (`tile / downsample` a side) into its band, cut at the slide's edges.
    fn place_heat(&mut self, waiting: &Waiting, heat: &[f32]) {
        let side = self.tile / self.downsample;
        let small = Planes {
            channels: 1,
            height: self.info.preprocess.input_size(),
            width: self.info.preprocess.input_size(),
            data: heat.to_vec(),
        };
        let small = match small.width == side {
            true => small,
            false => resize(&small, side, side),
        };
        let (columns, rows) = (
            waiting.size.0.div_ceil(self.downsample),
            waiting.size.1.div_ceil(self.downsample),
        );
        let left = waiting.at.0 / self.downsample;
        let band = &mut self.bands[waiting.band - self.first_band];
        for row in 0..rows {
            for column in 0..columns {
                band.heat[row * self.output_width + left + column] =
                    small.data[row * side + column];
            }
        }
    }

    /// Writes the bands at the front whose tiles are all explained, in order.
    fn write_finished_bands(&mut self) -> Result<()> {
        while self.bands.front().is_some_and(|band| band.waiting == 0) {
            let band = self.bands.pop_front().expect("a front band");
            self.slide_pyramid.push_rows(&band.slide)?;
            self.heat_pyramid.push_rows(&band.heat)?;
            self.first_band += 1;
        }
        Ok(())
    }
}

/// The tile's pixels (edge tiles padded with white to the full tile) as the model's input:
/// gray if the model is, resized whole to its input size and normalised.
fn model_input(pixels: &Planes, tile: usize, preprocess: &Preprocess) -> Result<Vec<f32>> {
    let plane = tile * tile;
    let channels = preprocess.channels;
    let mut data = vec![1.0f32; channels * plane];
    let source_plane = pixels.height * pixels.width;
    for y in 0..pixels.height {
        for x in 0..pixels.width {
            let p = y * pixels.width + x;
            let rgb = [0, 1, 2].map(|c| pixels.data[c * source_plane + p]);
            match channels {
                1 => data[y * tile + x] = gray(rgb),
                _ => {
                    for (c, value) in rgb.into_iter().enumerate() {
                        data[c * plane + y * tile + x] = value;
                    }
                }
            }
        }
    }
    let padded = Planes {
        channels,
        height: tile,
        width: tile,
        data,
    };
    Ok(preprocess.apply(&padded)?.data)
}

/// A tile's heat at the model's input size: the map's magnitude over its 99th percentile
/// (clamped to 1), times the probability of the class explained, so that tiles compare across
/// the slide: a tile the model gives the class little probability stays cold whatever its
/// map's shape.
fn tile_heat(map: &[f32], probability: f32) -> Vec<f32> {
    let mut magnitudes: Vec<f32> = map.iter().map(|v| v.abs()).collect();
    let mut sorted = magnitudes.clone();
    sorted.sort_by(f32::total_cmp);
    let high = sorted[(sorted.len() - 1) * 99 / 100];
    for value in &mut magnitudes {
        *value = match high > 0.0 && value.is_finite() {
            true => (*value / high).min(1.0) * probability,
            false => 0.0,
        };
    }
    magnitudes
}

fn argmax(values: &[f32]) -> usize {
    (0..values.len())
        .max_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap_or(0)
}

fn byte(value: f32) -> u8 {
    (value.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// The heat (one value a pixel) blended over the slide (RGB, interleaved): RGB bytes, the
/// colour's weight 0.7 × heat, so that cold tissue shows as itself.
fn overview(rgb: &[f32], heat: &[f32]) -> Vec<u8> {
    let mut pixels = Vec::with_capacity(rgb.len());
    for (pixel, &h) in rgb.chunks_exact(3).zip(heat) {
        let colour = Colormap::Inferno.color(h);
        let weight = 0.7 * h.clamp(0.0, 1.0);
        for c in 0..3 {
            pixels.push(byte(pixel[c] * (1.0 - weight) + colour[c] * weight));
        }
    }
    pixels
}

/// The process's peak resident memory (Linux: VmHWM in /proc/self/status).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// How many tiles a run read and explained, and in how long.
#[derive(Clone, Copy)]
struct Counts {
    tiles: usize,
    /// The level the slide's pyramid came from, when not the level read.
    imagery_level: Option<usize>,
    explained: usize,
    seconds: f64,
}

/// The slide's and the heat's Deep Zoom pyramids, `size` at full size, each keeping an
/// overview level for heatmap.png.
fn pyramids(out: &std::path::Path, size: (usize, usize)) -> Result<(DeepZoom, DeepZoom)> {
    let slide = DeepZoom::create(
        out,
        "slide",
        size,
        3,
        TileFormat::Jpeg,
        Box::new(|rgb| [byte(rgb[0]), byte(rgb[1]), byte(rgb[2]), 255]),
    )?
    .keeping(OVERVIEW_SIDE);
    let heat = DeepZoom::create(
        out,
        "heatmap",
        size,
        1,
        TileFormat::Png,
        Box::new(|heat| {
            let [r, g, b] = Colormap::Inferno.color(heat[0]);
            [byte(r), byte(g), byte(b), byte(heat[0])]
        }),
    )?
    .keeping(OVERVIEW_SIDE);
    Ok((slide, heat))
}

/// slide.json, the run's figures, and the line printed.
#[allow(clippy::too_many_arguments)] // the run's parts, each reported
fn write_summary(
    args: &SlideArgs,
    slide: &Slide<std::io::BufReader<std::fs::File>>,
    level: &Level,
    (tile, output): (usize, (usize, usize)),
    class: Option<(usize, &str)>,
    tissue: &TissueMask,
    counts: &Counts,
    gpu: &Gpu,
) -> Result<()> {
    let Counts {
        tiles,
        imagery_level,
        explained,
        seconds,
    } = *counts;
    let summary = json!({
        "slide": args.slide.display().to_string(),
        "level": args.level,
        "level_size": [level.width, level.height],
        "levels": slide.levels().iter().map(|l| [l.width, l.height]).collect::<Vec<_>>(),
        "tile": tile,
        "downsample": args.downsample,
        "pyramid_size": [output.0, output.1],
        "slide_pyramid_from_level": imagery_level,
        "tiles": tiles,
        "tissue_tiles": explained,
        "tissue_threshold": tissue.threshold,
        "method": args.method.name(),
        "class": class.map(|(index, _)| index),
        "class_name": class.map(|(_, name)| name),
        "seconds": seconds,
        "tissue_tiles_per_second": explained as f64 / seconds,
        "peak_rss_bytes": peak_rss_bytes(),
        "adapter": gpu.describe(),
    });
    let text = serde_json::to_string_pretty(&summary).expect("a JSON value serialises");
    let path = args.out.join("slide.json");
    gradlens::weights::write_atomically(&path, text.as_bytes()).map_err(|e| Error::Output {
        path: path.display().to_string(),
        message: format!("cannot write: {e}"),
    })?;
    println!(
        "{explained} of {tiles} tiles held tissue and were explained ({}) in {seconds:.1} s, \
         {:.1} tiles/s; peak memory {}; → {}",
        args.method.name(),
        explained as f64 / seconds,
        peak_rss_bytes().map_or("unknown".to_string(), |b| format!("{} MB", b >> 20)),
        args.out.display()
    );
    Ok(())
}
