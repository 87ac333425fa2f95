//! `gradlens saliency`: a saliency map per image, as a heat-map overlay (PNG) and as raw values
//! (safetensors); with --tile, explained tile by tile at full resolution and stitched into one
//! map of the whole image.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gradlens::imaging::tiles::{Pooling, Stitcher, pool_logits};
use gradlens::imaging::{Planes, saliency_overlay, write_png};
use gradlens::saliency::{self, Attribution, Explained, Method, MethodSettings, method_maps};
use gradlens::{Error, Gpu, Result, Tensor};

use super::model::{self, TILES_PER_BATCH, Tiled};

pub struct Request<'a> {
    pub model: &'a super::ImagesAndModel,
    pub method: Method,
    pub settings: MethodSettings,
    pub class: &'a str,
    pub out: Option<&'a Path>,
    pub raw_out: Option<&'a Path>,
    /// Tile side and stride in image pixels.
    pub tile: Option<(usize, Option<usize>)>,
    pub check_finite: bool,
}

/// One image's map [height × width] over `image` (what the overlay is drawn on), for `class`.
struct Explanation {
    image: Planes,
    map: Vec<f32>,
    class: usize,
}

pub fn run(request: &Request) -> Result<()> {
    // Several images write <stem>.png into one folder: two with one stem would overwrite.
    let mut stems = std::collections::HashSet::new();
    for path in &request.model.images {
        let stem = path
            .file_stem()
            .map(|s| s.to_os_string())
            .unwrap_or_default();
        if request.model.images.len() > 1 && !stems.insert(stem) {
            return Err(Error::Image {
                path: path.display().to_string(),
                message:
                    "another image has the same file name; their maps would overwrite each other"
                        .to_string(),
            });
        }
    }
    let gpu = Gpu::new()?;
    let loaded = model::load(&gpu, &request.model.weights, request.model.arch.as_deref())?;
    let explained = Explained {
        model: loaded.model.as_ref(),
        store: &loaded.store,
    };
    let class = model::parse_class(&loaded.info, request.class)?;
    model::start_finite_checks(&gpu, request.check_finite);
    let explanations = match request.tile {
        None => {
            let (batch, sized) = model::images(&gpu, &loaded.info, &request.model.images)?;
            let classes = match class {
                Some(class) => vec![class; request.model.images.len()],
                None => pollster::block_on(saliency::top_classes(explained, &batch))?,
            };
            let maps = compute(explained, &batch, &classes, request)?;
            let plane = maps.dims[1] * maps.dims[2];
            sized
                .into_iter()
                .zip(maps.data.chunks(plane))
                .zip(classes)
                .map(|((image, map), class)| Explanation {
                    image,
                    map: map.to_vec(),
                    class,
                })
                .collect()
        }
        Some((tile, stride)) => request
            .model
            .images
            .iter()
            .map(|path| {
                let tiled = Tiled::open(&loaded.info, path, tile, stride)?;
                explain_tiles(&gpu, explained, tiled, class, request)
            })
            .collect::<Result<Vec<_>>>()?,
    };
    model::end_finite_checks(&gpu, request.check_finite)?;
    let several = request.model.images.len() > 1;
    for (path, explanation) in request.model.images.iter().zip(&explanations) {
        let Explanation { image, map, class } = explanation;
        let stem = path
            .file_stem()
            .map_or("image".into(), |s| s.to_string_lossy().into_owned());
        let name = &loaded.info.class_names[*class];
        if let Some(out) = request.out {
            let target = output_path(out, several, &stem, "png")?;
            let pixels = saliency_overlay(image, map);
            write_png(&target, image.width, image.height, &pixels)?;
            println!(
                "{}: {:?} for class {class} ({name}) → {}",
                path.display(),
                request.method,
                target.display()
            );
        }
        if let Some(raw) = request.raw_out {
            let target = output_path(raw, several, &stem, "safetensors")?;
            write_map(
                &target,
                map,
                [image.height, image.width],
                &loaded.info.arch,
                request.method,
                name,
            )?;
        }
        if request.out.is_none() && request.raw_out.is_none() {
            println!(
                "{}: {:?} for class {class} ({name}); pass --out or --raw-out to keep the map",
                path.display(),
                request.method,
            );
        }
    }
    Ok(())
}

/// Every tile explained for one class — `class`, or the image's top class with the tiles'
/// logits max-pooled as `classify --tile` does — and the maps stitched.
fn explain_tiles(
    gpu: &Gpu,
    explained: Explained,
    tiled: Tiled,
    class: Option<usize>,
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
    let mut stitcher = Stitcher::new(tiled.grid);
    for chunk in positions.chunks(TILES_PER_BATCH) {
        let maps = compute(
            explained,
            &tiled.batch(gpu, chunk)?,
            &vec![class; chunk.len()],
            request,
        )?;
        let side = maps.dims[1];
        for (map, &position) in maps.data.chunks(side * side).zip(chunk) {
            stitcher.add(map, side, position)?;
        }
    }
    Ok(Explanation {
        image: tiled.image,
        map: stitcher.finish(),
        class,
    })
}

/// Maps [N, H, W] at the model's input resolution by the request's method; its notes go to
/// stderr.
fn compute(
    explained: Explained,
    x: &Tensor,
    classes: &[usize],
    request: &Request,
) -> Result<Attribution> {
    let computed = pollster::block_on(method_maps(
        explained,
        x,
        classes,
        request.method,
        &request.settings,
    ))?;
    for note in &computed.notes {
        eprintln!("{note}");
    }
    Ok(computed.maps)
}

/// With one image `out` is the file; with several it is a folder (created) holding
/// `<image stem>.<extension>`.
fn output_path(out: &Path, several: bool, stem: &str, extension: &str) -> Result<PathBuf> {
    if !several {
        return Ok(out.to_path_buf());
    }
    std::fs::create_dir_all(out).map_err(|e| Error::Image {
        path: out.display().to_string(),
        message: format!("cannot create the output folder: {e}"),
    })?;
    Ok(out.join(format!("{stem}.{extension}")))
}

/// One tensor `saliency` [H, W] with the arch, method and class in the metadata; written to a
/// temporary file and renamed.
fn write_map(
    path: &Path,
    map: &[f32],
    [h, w]: [usize; 2],
    arch: &str,
    method: Method,
    class: &str,
) -> Result<()> {
    let metadata = HashMap::from([
        ("arch".to_string(), arch.to_string()),
        ("method".to_string(), format!("{method:?}")),
        ("class".to_string(), class.to_string()),
    ]);
    gradlens::weights::save_f32(path, &[("saliency", &[h, w], map)], &metadata)
}
