//! `gradlens classify`: the top classes of each image (files, or every image in a folder) with
//! their probabilities; with --tile, scored tile by tile at full resolution and the tiles'
//! logits pooled; with --shard and --jsonl, one restartable shard of an archive.

use std::path::Path;

use clap::ValueEnum;
use serde_json::{Value, json};

use gradlens::imaging::tiles::{Pooling, pool_logits};
use gradlens::saliency::{Explained, logits, top_probabilities};
use gradlens::{Gpu, Result};

use super::archive::{self, JsonLines, Shard};
use super::model::{self, Source, TILES_PER_BATCH, Tiled};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Aggregate {
    /// Per class the largest tile logit: one tile showing a lesion makes the image positive.
    Max,
    /// Per class the mean tile logit.
    Mean,
}

pub struct Request<'a> {
    pub model: &'a super::ImagesAndModel,
    pub top: usize,
    pub json: bool,
    /// Only this shard of the images.
    pub shard: Option<Shard>,
    /// One JSON line per image; the images it already holds are skipped.
    pub jsonl: Option<&'a Path>,
    /// Tile side and stride in image pixels, and how tile logits are pooled.
    pub tile: Option<(usize, Option<usize>, Aggregate)>,
    pub check_finite: bool,
}

/// One image's logits, and with tiles how many there were and where the top class peaked.
struct Scored {
    logits: Vec<f32>,
    tiles: Option<TileSummary>,
}

struct TileSummary {
    count: usize,
    /// (y, x) of the tile with the largest logit for the image's top class.
    strongest: (usize, usize),
}

pub fn run(request: &Request) -> Result<()> {
    let dicom = request.model.dicom;
    let mut images = archive::select(
        model::expand_images(&request.model.images, dicom.every_frame())?,
        request.shard,
    );
    let mut lines = request.jsonl.map(JsonLines::open).transpose()?;
    if let Some(lines) = &lines {
        let before = images.len();
        images.retain(|source| !lines.holds(&source.key));
        if images.len() < before {
            eprintln!(
                "{} of {before} images already in {}; classifying the other {}",
                before - images.len(),
                request
                    .jsonl
                    .map_or(String::new(), |p| p.display().to_string()),
                images.len()
            );
        }
    }
    let gpu = Gpu::new()?;
    let loaded = model::load(&gpu, &request.model.weights, request.model.arch.as_deref())?;
    let explained = Explained {
        model: loaded.model.as_ref(),
        store: &loaded.store,
    };
    model::start_finite_checks(&gpu, request.check_finite);
    let mut results = Vec::new();
    // A batch at a time, each image's line appended as soon as its batch is scored: a killed
    // run loses at most the batch in flight.
    for chunk in images.chunks(IMAGES_PER_BATCH) {
        let scored: Vec<Scored> = match request.tile {
            None => {
                let (batch, _) = model::images(&gpu, &loaded.info, chunk, &dicom.options())?;
                let logits = pollster::block_on(logits(explained, &batch))?;
                logits
                    .data
                    .chunks(logits.dims[1])
                    .map(|row| Scored {
                        logits: row.to_vec(),
                        tiles: None,
                    })
                    .collect()
            }
            Some((tile, stride, aggregate)) => chunk
                .iter()
                .map(|source| {
                    let tiled =
                        Tiled::open(&loaded.info, source, (tile, stride), &dicom.options())?;
                    score_tiles(&gpu, explained, &tiled, aggregate)
                })
                .collect::<Result<_>>()?,
        };
        for (source, scored) in chunk.iter().zip(&scored) {
            let result = report(source, scored, &loaded.info.class_names, request);
            if let Some(lines) = &mut lines {
                lines.append(&source.key, &result)?;
            }
            results.push(result);
        }
    }
    model::end_finite_checks(&gpu, request.check_finite)?;
    if request.json {
        println!(
            "{}",
            json!({ "arch": loaded.info.arch, "results": Value::Array(results) })
        );
    }
    Ok(())
}

/// Images scored per forward pass.
const IMAGES_PER_BATCH: usize = 16;

/// One image's result as JSON, printed as text unless --json.
fn report(source: &Source, scored: &Scored, class_names: &[String], request: &Request) -> Value {
    let ranked = top_probabilities(&scored.logits, request.top);
    if !request.json {
        match &scored.tiles {
            None => println!("{}", source.shown()),
            Some(tiles) => println!(
                "{} ({} tiles; the top class peaks in the tile at y {}, x {})",
                source.shown(),
                tiles.count,
                tiles.strongest.0,
                tiles.strongest.1
            ),
        }
        for (class, probability) in &ranked {
            println!(
                "  {:6.2}%  {class:4}  {}",
                probability * 100.0,
                class_names[*class]
            );
        }
    }
    let mut result = json!({
        "image": source.path.display().to_string(),
        "top": ranked.iter().map(|(class, p)| json!({
            "class": class, "name": class_names[*class], "probability": p,
        })).collect::<Vec<_>>(),
        "logits": scored.logits,
    });
    if let Some(frame) = source.frame {
        result["frame"] = json!(frame);
    }
    if let Some(tiles) = &scored.tiles {
        result["tiles"] = json!(tiles.count);
        result["strongest_tile"] = json!({ "y": tiles.strongest.0, "x": tiles.strongest.1 });
    }
    result
}

/// Logits of every tile, pooled; and the tile where the pooled top class scores highest.
fn score_tiles(
    gpu: &Gpu,
    explained: Explained,
    tiled: &Tiled,
    aggregate: Aggregate,
) -> Result<Scored> {
    let positions = tiled.grid.positions();
    let mut tile_logits = Vec::new();
    for chunk in positions.chunks(TILES_PER_BATCH) {
        tile_logits.extend(pollster::block_on(logits(explained, &tiled.batch(gpu, chunk)?))?.data);
    }
    let classes = tile_logits.len() / positions.len();
    let pooling = match aggregate {
        Aggregate::Max => Pooling::Max,
        Aggregate::Mean => Pooling::Mean,
    };
    let pooled = pool_logits(&tile_logits, classes, pooling);
    let top = top_probabilities(&pooled, 1)[0].0;
    let strongest = (0..positions.len())
        .max_by(|&a, &b| tile_logits[a * classes + top].total_cmp(&tile_logits[b * classes + top]))
        .map(|t| positions[t])
        .unwrap_or_default();
    Ok(Scored {
        logits: pooled,
        tiles: Some(TileSummary {
            count: positions.len(),
            strongest,
        }),
    })
}
