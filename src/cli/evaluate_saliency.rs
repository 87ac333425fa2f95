//! `gradlens evaluate-saliency`: how good each method's maps are over an ImageFolder, each
//! image explained for its labelled class. Per method: deletion and insertion areas, ROAD's
//! MoRF and LeRF areas, and with masks the pointing game and its energy form, each as a mean
//! with a 95% confidence interval; the cascading randomisation test on the first images. A
//! table per method on stdout, all of it (curves included) as JSON, and the curves as an SVG.

use std::path::{Path, PathBuf};
use std::time::Instant;

use gradlens::imaging::{self, Preprocess};
use gradlens::nn::SplitMix64;
use gradlens::saliency::{
    Explained, Method, MethodSettings, Road, cascading_randomisation, deletion_insertion,
    energy_pointing_game, method_maps, pointing_game_hit, road,
};
use gradlens::weights::write_atomically;
use gradlens::{Error, Gpu, Result, Tensor};
use serde_json::json;

use super::curves_plot::{Panel, Series, curves_svg};
use gradlens::train::data::normalised;

use super::train::decode;

pub struct Request<'a> {
    pub weights: &'a Path,
    pub data: &'a Path,
    pub masks: Option<&'a Path>,
    pub methods: Vec<Method>,
    pub settings: MethodSettings,
    /// At most this many images, a seeded shuffle of the folder's.
    pub limit: Option<usize>,
    pub batch: usize,
    /// Deletion and insertion steps.
    pub steps: usize,
    /// Images of the cascading randomisation test (0: none).
    pub randomisation_images: usize,
    pub seed: u64,
    pub json: Option<&'a Path>,
    pub plot: Option<&'a Path>,
}

/// Every image's measures under one method, in image order.
#[derive(Default)]
struct Scores {
    deletion: Vec<f32>,
    insertion: Vec<f32>,
    road_morf: Vec<f32>,
    road_lerf: Vec<f32>,
    pointing: Vec<f32>,
    energy: Vec<f32>,
    /// Per image, its curves: deletion, insertion, ROAD MoRF, ROAD LeRF.
    curves: [Vec<Vec<f32>>; 4],
}

/// A mean with its 95% confidence interval: ± 1.96 standard errors, or for a share of hits
/// (`hits`: every value 0 or 1) Wilson's score interval, which stays within [0, 1] and is not
/// empty at 0 or n hits.
fn summary(values: &[f32], hits: bool) -> serde_json::Value {
    const Z: f64 = 1.96;
    let n = values.len();
    if n == 0 {
        return json!(null);
    }
    let count = n as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / count;
    let (low, high) = if hits {
        let centre = (mean + Z * Z / (2.0 * count)) / (1.0 + Z * Z / count);
        let half = Z / (1.0 + Z * Z / count)
            * (mean * (1.0 - mean) / count + Z * Z / (4.0 * count * count)).sqrt();
        (centre - half, centre + half)
    } else {
        let variance = if n > 1 {
            values
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / (count - 1.0)
        } else {
            0.0
        };
        let half = Z * (variance / count).sqrt();
        (mean - half, mean + half)
    };
    json!({"mean": mean, "ci95": [low, high], "n": n})
}

/// The mean curve, point by point.
fn mean_curve(curves: &[Vec<f32>]) -> Vec<f32> {
    let Some(first) = curves.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|i| curves.iter().map(|c| c[i]).sum::<f32>() / curves.len() as f32)
        .collect()
}

pub fn run(request: &Request) -> Result<()> {
    let gpu = Gpu::new()?;
    let loaded = super::model::load(&gpu, request.weights, None)?;
    let dir = if request.data.join("val").is_dir() {
        request.data.join("val")
    } else {
        request.data.to_path_buf()
    };
    let mut samples = gradlens::train::image_folder::scan(&dir)?;
    if samples.classes != loaded.info.class_names {
        return Err(Error::Image {
            path: dir.display().to_string(),
            message: format!(
                "the folder's classes {:?} differ from the checkpoint's {:?}",
                samples.classes, loaded.info.class_names
            ),
        });
    }
    // A seeded shuffle, so that --limit takes images of every class.
    let mut order: Vec<usize> = (0..samples.paths.len()).collect();
    let mut rng = SplitMix64::new(request.seed);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order.truncate(request.limit.unwrap_or(usize::MAX).max(1));
    samples.paths = order.iter().map(|&i| samples.paths[i].clone()).collect();
    samples.labels = order.iter().map(|&i| samples.labels[i]).collect();

    let preprocess = &loaded.info.preprocess;
    let sized = decode(&samples, preprocess.channels, &preprocess.sizing)?;
    let masks = match request.masks {
        Some(root) => load_masks(&samples.paths, &dir, root, preprocess)?,
        None => vec![None; samples.paths.len()],
    };
    let size = preprocess.input_size();
    let (c, plane) = (preprocess.channels, size * size);
    let inputs: Vec<f32> = sized
        .images
        .iter()
        .flat_map(|p| normalised(p, preprocess))
        .collect();
    let explained = Explained {
        model: loaded.model.as_ref(),
        store: &loaded.store,
    };
    // Zhang et al.'s 15 pixels at 224, scaled to the input.
    let tolerance = 15.0 * size as f32 / 224.0;
    let road_settings = Road {
        seed: request.seed,
        ..Road::default()
    };
    println!(
        "{} images of {} classes at {size}×{size}, {} with masks",
        samples.paths.len(),
        samples.classes.len(),
        masks.iter().filter(|m| m.is_some()).count()
    );

    let mut report = serde_json::Map::new();
    let mut panels: Vec<Panel> = ["deletion ↓", "insertion ↑", "ROAD MoRF ↓", "ROAD LeRF ↑"]
        .iter()
        .map(|title| Panel::new(title, "fraction of pixels", "probability"))
        .collect();
    panels.push(Panel::new(
        "cascading randomisation ↓",
        "blocks re-initialised (output first)",
        "rank correlation",
    ));
    for (m, &method) in request.methods.iter().enumerate() {
        let started = Instant::now();
        let mut scores = Scores::default();
        for first in (0..samples.paths.len()).step_by(request.batch.max(1)) {
            let count = request.batch.max(1).min(samples.paths.len() - first);
            let x = Tensor::from_slice(
                &gpu,
                [count, c, size, size],
                &inputs[first * c * plane..(first + count) * c * plane],
            )?;
            let classes = &samples.labels[first..first + count];
            let maps = pollster::block_on(method_maps(
                explained,
                &x,
                classes,
                method,
                &request.settings,
            ))?
            .maps;
            let road_curves =
                pollster::block_on(road(explained, &x, classes, &maps, &road_settings))?;
            for (i, curves) in road_curves.iter().enumerate() {
                let image = first + i;
                let map = &maps.data[i * plane..(i + 1) * plane];
                let one = Tensor::from_slice(
                    &gpu,
                    [1, c, size, size],
                    &inputs[image * c * plane..(image + 1) * c * plane],
                )?;
                // Deleted pixels take 0, the normalised mean colour.
                let baseline = vec![0.0; c * plane];
                let changed = pollster::block_on(deletion_insertion(
                    explained,
                    &one,
                    classes[i],
                    map,
                    &baseline,
                    request.steps,
                ))?;
                let (deletion, insertion) = changed.areas();
                let (morf, lerf) = curves.areas();
                scores.deletion.push(deletion);
                scores.insertion.push(insertion);
                scores.road_morf.push(morf);
                scores.road_lerf.push(lerf);
                scores.curves[0].push(changed.deletion);
                scores.curves[1].push(changed.insertion);
                scores.curves[2].push(curves.most_relevant_first.clone());
                scores.curves[3].push(curves.least_relevant_first.clone());
                if let Some(mask) = &masks[image] {
                    let hit = pointing_game_hit(map, mask, size, tolerance);
                    scores.pointing.push(if hit { 1.0 } else { 0.0 });
                    scores.energy.push(energy_pointing_game(map, mask));
                }
            }
        }
        let seconds = started.elapsed().as_secs_f64() / samples.paths.len() as f64;
        let randomisation = randomisation(
            explained,
            &gpu,
            &inputs,
            &samples.labels,
            method,
            request,
            [c, size],
        )?;

        let mut entry = serde_json::Map::new();
        for (name, values, hits) in [
            ("deletion_auc", &scores.deletion, false),
            ("insertion_auc", &scores.insertion, false),
            ("road_morf_area", &scores.road_morf, false),
            ("road_lerf_area", &scores.road_lerf, false),
            ("pointing_game", &scores.pointing, true),
            ("energy_pointing_game", &scores.energy, false),
        ] {
            entry.insert(name.to_string(), summary(values, hits));
        }
        let steps = request.steps;
        let deletion_fractions: Vec<f32> = (0..=steps).map(|k| k as f32 / steps as f32).collect();
        let mut road_fractions = vec![0.0];
        road_fractions.extend(&road_settings.fractions);
        let curves: Vec<Vec<f32>> = scores.curves.iter().map(|c| mean_curve(c)).collect();
        entry.insert(
            "curves".to_string(),
            json!({
                "deletion": {"fractions": deletion_fractions, "probability": curves[0]},
                "insertion": {"fractions": deletion_fractions, "probability": curves[1]},
                "road_morf": {"fractions": road_fractions, "probability": curves[2]},
                "road_lerf": {"fractions": road_fractions, "probability": curves[3]},
            }),
        );
        entry.insert("randomisation".to_string(), randomisation.clone());
        entry.insert("seconds_per_image".to_string(), json!(seconds));
        report.insert(
            method.name().to_string(),
            serde_json::Value::Object(entry.clone()),
        );

        for (panel, (fractions, curve)) in panels.iter_mut().zip([
            (&deletion_fractions, &curves[0]),
            (&deletion_fractions, &curves[1]),
            (&road_fractions, &curves[2]),
            (&road_fractions, &curves[3]),
        ]) {
            panel.series.push(Series {
                name: method.name().to_string(),
                colour: m,
                points: fractions
                    .iter()
                    .copied()
                    .zip(curve.iter().copied())
                    .collect(),
            });
        }
        if let Some(steps) = randomisation["steps"].as_array() {
            panels[4].series.push(Series {
                name: method.name().to_string(),
                colour: m,
                points: steps
                    .iter()
                    .enumerate()
                    .map(|(k, s)| {
                        (
                            (k + 1) as f32,
                            s["rank_correlation"].as_f64().unwrap_or(0.0) as f32,
                        )
                    })
                    .collect(),
            });
        }
        print_table(method, &entry, seconds);
    }

    let document = json!({
        "weights": request.weights.display().to_string(),
        "data": dir.display().to_string(),
        "images": samples.paths.len(),
        "input_size": size,
        "road": {"fractions": road_settings.fractions, "noise": road_settings.noise},
        "deletion_steps": request.steps,
        "pointing_game_tolerance": tolerance,
        "seed": request.seed,
        "adapter": gpu.describe(),
        "methods": report,
    });
    if let Some(path) = request.json {
        let text = serde_json::to_string_pretty(&document).expect("a JSON value serialises");
        write(path, text.as_bytes(), "the JSON report")?;
        println!("JSON → {}", path.display());
    }
    if let Some(path) = request.plot {
        write(path, curves_svg(&panels).as_bytes(), "the curves plot")?;
        println!("curves → {}", path.display());
    }
    Ok(())
}

/// The cascading randomisation test on the first `randomisation_images` images: per block,
/// the mean rank correlation and SSIM with the trained model's maps.
fn randomisation(
    explained: Explained,
    gpu: &Gpu,
    inputs: &[f32],
    labels: &[usize],
    method: Method,
    request: &Request,
    [c, size]: [usize; 2],
) -> Result<serde_json::Value> {
    let count = request.randomisation_images.min(labels.len());
    if count == 0 {
        return Ok(json!(null));
    }
    let x = Tensor::from_slice(
        gpu,
        [count, c, size, size],
        &inputs[..count * c * size * size],
    )?;
    let (_, steps) = pollster::block_on(cascading_randomisation(
        explained,
        &x,
        &labels[..count],
        method,
        &request.settings,
        request.seed,
    ))?;
    let mean = |values: &[f32]| values.iter().sum::<f32>() / values.len() as f32;
    // SSIM is undefined where a map is constant (a CAM that a damaged model zeroes): the mean
    // is over the images where it is defined, and says over how many.
    let steps: Vec<serde_json::Value> = steps
        .iter()
        .map(|step| {
            let ssim: Vec<f32> = step.ssim.iter().flatten().copied().collect();
            json!({
                "block": step.block,
                "rank_correlation": mean(&step.rank_correlation),
                "ssim": if ssim.is_empty() { json!(null) } else { json!(mean(&ssim)) },
                "ssim_images": ssim.len(),
            })
        })
        .collect();
    Ok(json!({"images": count, "steps": steps}))
}

fn print_table(method: Method, entry: &serde_json::Map<String, serde_json::Value>, seconds: f64) {
    println!("\n{} ({seconds:.2} s per image)", method.name());
    for (key, label) in [
        ("deletion_auc", "deletion AUC ↓"),
        ("insertion_auc", "insertion AUC ↑"),
        ("road_morf_area", "ROAD MoRF area ↓"),
        ("road_lerf_area", "ROAD LeRF area ↑"),
        ("pointing_game", "pointing game ↑"),
        ("energy_pointing_game", "energy pointing game ↑"),
    ] {
        let value = &entry[key];
        if value.is_null() {
            println!("  {label:<24} (no masks)");
            continue;
        }
        let (mean, ci) = (value["mean"].as_f64().unwrap_or(f64::NAN), &value["ci95"]);
        println!(
            "  {label:<24} {mean:.3}  [{:.3}, {:.3}]  n = {}",
            ci[0].as_f64().unwrap_or(f64::NAN),
            ci[1].as_f64().unwrap_or(f64::NAN),
            value["n"]
        );
    }
    if let Some(steps) = entry["randomisation"]["steps"].as_array() {
        let last = &steps[steps.len() - 1];
        println!(
            "  randomisation: after all {} blocks, rank correlation {:.3} over {} images, SSIM {} \
             over the {} whose maps are not constant",
            steps.len(),
            last["rank_correlation"].as_f64().unwrap_or(f64::NAN),
            entry["randomisation"]["images"],
            last["ssim"]
                .as_f64()
                .map_or("undefined".to_string(), |v| format!("{v:.3}")),
            last["ssim_images"]
        );
    }
}

/// Each image's mask, `root` + the image's path under `dir` (the same name, PNG or JPEG),
/// sized as the image and thresholded at 0.5; None where no such file exists.
fn load_masks(
    paths: &[PathBuf],
    dir: &Path,
    root: &Path,
    preprocess: &Preprocess,
) -> Result<Vec<Option<Vec<f32>>>> {
    if !root.is_dir() {
        return Err(Error::Image {
            path: root.display().to_string(),
            message: "the masks folder does not exist".to_string(),
        });
    }
    paths
        .iter()
        .map(|path| {
            let relative = path.strip_prefix(dir).unwrap_or(path);
            let mask_path = root.join(relative);
            if !mask_path.is_file() {
                return Ok(None);
            }
            let sized = preprocess.sizing.apply(&imaging::load(&mask_path, 1)?)?;
            Ok(Some(
                sized
                    .data
                    .iter()
                    .map(|&v| if v > 0.5 { 1.0 } else { 0.0 })
                    .collect(),
            ))
        })
        .collect()
}

/// Methods named on the command line.
#[derive(Clone, Debug)]
pub struct MethodList(pub Vec<Method>);

/// `--methods`: names separated by commas, or "all".
pub fn parse_methods(text: &str) -> std::result::Result<MethodList, String> {
    if text == "all" {
        return Ok(MethodList(Method::ALL.to_vec()));
    }
    text.split(',')
        .map(|name| {
            Method::from_name(name.trim()).ok_or_else(|| {
                format!(
                    "unknown method {name:?}; the methods are {} (or \"all\")",
                    Method::ALL.map(Method::name).join(", ")
                )
            })
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(MethodList)
}

fn write(path: &Path, bytes: &[u8], what: &str) -> Result<()> {
    write_atomically(path, bytes).map_err(|error| Error::Output {
        path: path.display().to_string(),
        message: format!("cannot write {what}: {error}"),
    })
}
