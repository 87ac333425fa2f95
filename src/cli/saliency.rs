//! `gradlens saliency`: saliency maps of images (files, or every image in a folder), explained
//! a batch at a time, as heat-map overlays (PNG) and raw values (safetensors); with --methods,
//! several methods per image sharing what they can, drawn side by side in one labelled grid;
//! with --tile, explained tile by tile at full resolution and stitched into one map of the
//! whole image. Each run can leave a manifest that `--manifest` replays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use gradlens::imaging::tiles::{Pooling, Stitcher, pool_logits};
use gradlens::imaging::{Colormap, Planes, labelled_grid, overlay, saliency_overlay, write_png};
use gradlens::saliency::{
    self, Attribution, Explained, Method, MethodMaps, Road, deletion_insertion, methods_maps, road,
};
use gradlens::weights::write_atomically;
use gradlens::{Error, Gpu, Result, Tensor};
use serde_json::json;

use super::archive::{self, JsonLines, Shard};
use super::manifest::{self, Run};
use super::model::{self, Source, TILES_PER_BATCH, Tiled};

/// A run and where its outputs go.
pub struct Request<'a> {
    pub run: Run,
    pub out: Option<&'a Path>,
    pub raw_out: Option<&'a Path>,
    /// Per image and method: deletion, insertion and ROAD areas, and seconds.
    pub json: Option<&'a Path>,
    /// Where the manifest goes (default: beside the outputs).
    pub manifest_out: Option<&'a Path>,
    /// DICOM Secondary Captures of the overlays of DICOM images.
    pub capture: Option<Capture>,
    /// Only this shard of the images.
    pub shard: Option<Shard>,
    /// One JSON line per finished image; the images it already holds are skipped.
    pub jsonl: Option<&'a Path>,
    pub check_finite: bool,
}

/// How overlays of DICOM images are also written as Secondary Captures.
#[derive(Clone, Copy)]
pub struct Capture {
    pub anonymise: bool,
}

/// One image's maps [height × width] over `image` (what the overlays are drawn on), one per
/// method of the run, for `class`.
struct Explanation {
    image: Planes,
    maps: Vec<Vec<f32>>,
    class: usize,
}

pub fn run(request: &Request) -> Result<()> {
    let run = &request.run;
    let images = match &run.listed {
        Some(listed) => listed.clone(),
        None => archive::select(
            model::expand_images(&run.images, run.every_frame)?,
            request.shard,
        ),
    };
    if images.is_empty() {
        println!("no image falls in this shard");
        return Ok(());
    }
    // With several images, or a folder of them (whose shard may hold one), the outputs go into
    // folders, named by each image's path below the folder given (its file name for a file
    // given): a tree of outputs mirrors the tree of images, and two images of one name in
    // different sub-folders cannot overwrite each other.
    let several = images.len() > 1 || run.images.iter().any(|path| path.is_dir());
    let mut names = HashMap::new();
    let mut taken = std::collections::HashSet::new();
    for source in &images {
        let name = source.output_name();
        if several && !taken.insert(name.clone()) {
            return Err(Error::Image {
                path: source.shown(),
                message:
                    "another image has the same file name; their maps would overwrite each other"
                        .to_string(),
            });
        }
        names.insert(source.clone(), name);
    }
    let name_of = |source: &Source| several.then(|| names[source].as_str());
    let gpu = Gpu::new()?;
    let loaded = model::load(&gpu, &run.weights, run.arch.as_deref())?;
    let explained = Explained {
        model: loaded.model.as_ref(),
        store: &loaded.store,
    };
    let class = model::parse_class(&loaded.info, &run.class)?;
    let mut lines = request.jsonl.map(JsonLines::open).transpose()?;
    // A restarted shard skips what its earlier run finished: the images its JSON lines hold,
    // or, without them, those whose every output exists (each is written whole or not at all).
    // A run that is not a shard's and keeps no JSON lines redoes everything: the same outputs
    // asked of another method must be that method's.
    let mut remaining = Vec::with_capacity(images.len());
    for source in &images {
        let finished = match &lines {
            Some(lines) => lines.holds(&source.key),
            None if request.shard.is_some() => finished_outputs(name_of(source), request)?,
            None => false,
        };
        if !finished {
            remaining.push(source.clone());
        }
    }
    if remaining.len() < images.len() {
        println!(
            "{} of {} images already done; explaining the other {}",
            images.len() - remaining.len(),
            images.len(),
            remaining.len()
        );
    }
    model::start_finite_checks(&gpu, request.check_finite);
    let mut outputs = Vec::new();
    let mut metrics = Vec::new();
    for chunk in remaining.chunks(run.batch.max(1)) {
        let explanations = match run.tile {
            None => explain_batch(
                &gpu,
                explained,
                &loaded.info,
                chunk,
                class,
                request,
                &mut metrics,
            )?,
            Some((tile, stride)) => chunk
                .iter()
                .map(|source| {
                    let tiled = Tiled::open(&loaded.info, source, (tile, stride), &run.dicom)?;
                    explain_tiles(&gpu, explained, tiled, class, &run.methods, request)
                })
                .collect::<Result<Vec<_>>>()?,
        };
        for (source, explanation) in chunk.iter().zip(&explanations) {
            let name = &loaded.info.class_names[explanation.class];
            let written = write_outputs(
                source,
                explanation,
                name,
                name_of(source),
                &loaded.info.arch,
                request,
            )?;
            if let Some(lines) = &mut lines {
                lines.append(
                    &source.key,
                    &json!({
                        "image": source.path.display().to_string(),
                        "frame": source.frame,
                        "class": explanation.class,
                        "class_name": name,
                        "methods": run.methods.iter().map(|m| m.name()).collect::<Vec<_>>(),
                        "outputs": written,
                    }),
                )?;
            }
            outputs.extend(written);
        }
    }
    model::end_finite_checks(&gpu, request.check_finite)?;
    if let Some(path) = request.json {
        let text = serde_json::to_string_pretty(&json!({"images": metrics}))
            .expect("a JSON value serialises");
        gradlens::weights::write_atomically(path, text.as_bytes()).map_err(|error| {
            Error::Output {
                path: path.display().to_string(),
                message: format!("cannot write the metrics: {error}"),
            }
        })?;
        outputs.push(path.to_path_buf());
    }
    let manifest_path = request.manifest_out.map(Path::to_path_buf).or_else(|| {
        let beside = request.out.or(request.raw_out)?;
        Some(match several {
            true => beside.join("manifest.json"),
            false => beside.with_extension("manifest.json"),
        })
    });
    if let Some(path) = manifest_path.filter(|_| !remaining.is_empty()) {
        // The files explained with their names: a replay checks each one's digest and names
        // its outputs as this run did.
        manifest::write(&path, run, &images, &gpu, &outputs)?;
        println!("manifest → {}", path.display());
    }
    Ok(())
}

/// A batch of whole images: every method's maps, and with --json each map's deletion,
/// insertion and ROAD areas.
fn explain_batch(
    gpu: &Gpu,
    explained: Explained,
    info: &gradlens::checkpoint::ModelInfo,
    sources: &[Source],
    class: Option<usize>,
    request: &Request,
    metrics: &mut Vec<serde_json::Value>,
) -> Result<Vec<Explanation>> {
    let run = &request.run;
    let (batch, sized) = model::images(gpu, info, sources, &run.dicom)?;
    let classes = match class {
        Some(class) => vec![class; sources.len()],
        None => pollster::block_on(saliency::top_classes(explained, &batch))?,
    };
    let started = Instant::now();
    let computed = compute(explained, &batch, &classes, request)?;
    let seconds = started.elapsed().as_secs_f64() / sources.len() as f64;
    let plane = batch.dims()[2] * batch.dims()[3];
    if request.json.is_some() {
        let dims = batch.dims();
        let size: usize = dims[1..].iter().product();
        let values = batch.to_vec()?;
        for (i, source) in sources.iter().enumerate() {
            let one = &values[i * size..(i + 1) * size];
            let image = Tensor::from_slice(gpu, [1, dims[1], dims[2], dims[3]], one)?;
            let mut per_method = serde_json::Map::new();
            for (method, maps) in run.methods.iter().zip(&computed) {
                let map = &maps.data[i * plane..(i + 1) * plane];
                per_method.insert(
                    method.name().to_string(),
                    faithfulness(explained, &image, classes[i], map)?,
                );
            }
            metrics.push(json!({
                "path": source.path,
                "frame": source.frame,
                "class": classes[i],
                "seconds_per_image_all_methods": seconds,
                "methods": per_method,
            }));
        }
    }
    Ok(sized
        .into_iter()
        .enumerate()
        .map(|(i, image)| Explanation {
            image,
            maps: computed
                .iter()
                .map(|maps| maps.data[i * plane..(i + 1) * plane].to_vec())
                .collect(),
            class: classes[i],
        })
        .collect())
}

/// One map's deletion and insertion areas (pixels replaced by 0, the normalised mean) and
/// ROAD's MoRF and LeRF areas.
fn faithfulness(
    explained: Explained,
    image: &Tensor,
    class: usize,
    map: &[f32],
) -> Result<serde_json::Value> {
    let baseline = vec![0.0; image.numel()];
    let curves = pollster::block_on(deletion_insertion(
        explained, image, class, map, &baseline, 16,
    ))?;
    let (deletion, insertion) = curves.areas();
    let dims = image.dims();
    let maps = Attribution {
        dims: vec![1, dims[2], dims[3]],
        data: map.to_vec(),
    };
    let roads = pollster::block_on(road(explained, image, &[class], &maps, &Road::default()))?;
    let (morf, lerf) = roads[0].areas();
    Ok(json!({
        "deletion_auc": deletion,
        "insertion_auc": insertion,
        "road_morf_area": morf,
        "road_lerf_area": lerf,
    }))
}

/// Every tile explained for one class — `class`, or the image's top class with the tiles'
/// logits max-pooled as `classify --tile` does — and each method's maps stitched.
fn explain_tiles(
    gpu: &Gpu,
    explained: Explained,
    tiled: Tiled,
    class: Option<usize>,
    methods: &[Method],
    request: &Request,
) -> Result<Explanation> {
    let positions = tiled.grid.positions();
    let class = match class {
        Some(class) => class,
        None => {
            let mut logits = Vec::new();
            for chunk in positions.chunks(TILES_PER_BATCH) {
                logits.extend(
                    pollster::block_on(saliency::logits(explained, &tiled.batch(gpu, chunk)?))?
                        .data,
                );
            }
            let pooled = pool_logits(&logits, logits.len() / positions.len(), Pooling::Max);
            (0..pooled.len())
                .max_by(|&a, &b| pooled[a].total_cmp(&pooled[b]))
                .unwrap_or(0)
        }
    };
    let mut stitchers: Vec<Stitcher> = methods.iter().map(|_| Stitcher::new(tiled.grid)).collect();
    for chunk in positions.chunks(TILES_PER_BATCH) {
        let computed = compute(
            explained,
            &tiled.batch(gpu, chunk)?,
            &vec![class; chunk.len()],
            request,
        )?;
        for (stitcher, maps) in stitchers.iter_mut().zip(&computed) {
            let side = maps.dims[1];
            for (map, &position) in maps.data.chunks(side * side).zip(chunk) {
                stitcher.add(map, side, position)?;
            }
        }
    }
    Ok(Explanation {
        image: tiled.image,
        maps: stitchers.into_iter().map(Stitcher::finish).collect(),
        class,
    })
}

/// Each method's maps [N, H, W] at the model's input resolution; their notes go to stderr.
fn compute(
    explained: Explained,
    x: &Tensor,
    classes: &[usize],
    request: &Request,
) -> Result<Vec<Attribution>> {
    let run = &request.run;
    let computed: Vec<MethodMaps> = pollster::block_on(methods_maps(
        explained,
        x,
        classes,
        &run.methods,
        &run.settings,
    ))?;
    Ok(computed
        .into_iter()
        .map(|computed| {
            for note in &computed.notes {
                eprintln!("{note}");
            }
            computed.maps
        })
        .collect())
}

/// Whether every output of the image named `name` already exists (false when none is asked
/// for).
fn finished_outputs(name: Option<&str>, request: &Request) -> Result<bool> {
    let targets = [(request.out, "png"), (request.raw_out, "safetensors")];
    let asked: Vec<PathBuf> = targets
        .iter()
        .filter_map(|&(out, extension)| Some((out?, extension)))
        .map(|(out, extension)| output_path(out, name, extension))
        .collect::<Result<_>>()?;
    Ok(!asked.is_empty() && asked.iter().all(|target| target.is_file()))
}

/// One image's overlay (or grid, with --methods) and raw maps; the files written.
fn write_outputs(
    source: &Source,
    explanation: &Explanation,
    class_name: &str,
    name: Option<&str>,
    arch: &str,
    request: &Request,
) -> Result<Vec<PathBuf>> {
    let run = &request.run;
    let Explanation { image, maps, class } = explanation;
    let names: Vec<&str> = run.methods.iter().map(|m| m.name()).collect();
    let mut written = Vec::new();
    if let Some(out) = request.out {
        let target = output_path(out, name, "png")?;
        let (width, height, pixels) = if run.grid {
            let plane = image.height * image.width;
            let mut tiles = vec![(
                class_name.to_string(),
                overlay(image, &vec![0.0; plane], Colormap::Inferno, 0.0),
            )];
            for (name, map) in names.iter().zip(maps) {
                tiles.push((name.to_string(), saliency_overlay(image, map)));
            }
            labelled_grid(&tiles, (image.width, image.height), 5)
        } else {
            (image.width, image.height, saliency_overlay(image, &maps[0]))
        };
        write_png(&target, width, height, &pixels)?;
        println!(
            "{}: {} for class {class} ({class_name}) → {}",
            source.shown(),
            names.join(", "),
            target.display()
        );
        written.push(target.clone());
        if let Some(capture) = request.capture {
            let description = format!(
                "gradlens {} saliency: {}, class {class} ({class_name})",
                env!("CARGO_PKG_VERSION"),
                names.join(", ")
            );
            let file = target.with_extension("dcm");
            if write_capture(
                &source.path,
                &file,
                &pixels,
                [height, width],
                &description,
                capture,
            )? {
                written.push(file);
            }
        }
    }
    if let Some(raw) = request.raw_out {
        let target = output_path(raw, name, "safetensors")?;
        let metadata = HashMap::from([
            ("arch".to_string(), arch.to_string()),
            ("methods".to_string(), names.join(",")),
            ("class".to_string(), class_name.to_string()),
        ]);
        // One tensor "saliency" for one method; one per method, by name, for several.
        let tensor_names: Vec<&str> = match run.grid {
            true => names.clone(),
            false => vec!["saliency"],
        };
        let dims = [image.height, image.width];
        let tensors: Vec<(&str, &[usize], &[f32])> = tensor_names
            .iter()
            .zip(maps)
            .map(|(name, map)| (*name, &dims[..], map.as_slice()))
            .collect();
        gradlens::weights::save_f32(&target, &tensors, &metadata)?;
        written.push(target);
    }
    if request.out.is_none() && request.raw_out.is_none() {
        println!(
            "{}: {} for class {class} ({class_name}); pass --out or --raw-out to keep the map",
            source.shown(),
            names.join(", "),
        );
    }
    Ok(written)
}

/// Writes the overlay `rgb` of the image at `source` as a DICOM Secondary Capture at `file`, when
/// the source is a DICOM file (false, with a note, when it is not).
fn write_capture(
    source: &Path,
    file: &Path,
    rgb: &[u8],
    size: [usize; 2],
    description: &str,
    capture: Capture,
) -> Result<bool> {
    let shown = source.display().to_string();
    let bytes = std::fs::read(source).map_err(|e| Error::Image {
        path: shown.clone(),
        message: format!("cannot read: {e}"),
    })?;
    if !gradlens::imaging::is_dicom(&bytes) {
        eprintln!("{shown}: not a DICOM file, so no secondary capture");
        return Ok(false);
    }
    // The output's path and the time make each capture's UIDs its own.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let salt = format!("{}\0{now}", file.display());
    let derivation = gradlens::imaging::Derivation {
        description,
        anonymise: capture.anonymise,
        uid_salt: salt.as_bytes(),
    };
    let dicom = gradlens::imaging::secondary_capture(&bytes, &shown, rgb, size, &derivation)?;
    write_atomically(file, &dicom).map_err(|e| Error::Output {
        path: file.display().to_string(),
        message: format!("cannot write the secondary capture: {e}"),
    })?;
    Ok(true)
}

/// With one image (no `name`) `out` is the file; with several it is a folder holding
/// `<name>.<extension>`, `name` the image's path below the folder it came from (its folders
/// created).
fn output_path(out: &Path, name: Option<&str>, extension: &str) -> Result<PathBuf> {
    let Some(name) = name else {
        return Ok(out.to_path_buf());
    };
    let target = out.join(format!("{name}.{extension}"));
    let folder = target.parent().unwrap_or(out);
    std::fs::create_dir_all(folder).map_err(|e| Error::Image {
        path: folder.display().to_string(),
        message: format!("cannot create the output folder: {e}"),
    })?;
    Ok(target)
}
