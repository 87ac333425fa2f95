//! `gradlens saliency`: a saliency map per image, as a heat-map overlay (PNG) and as raw values
//! (safetensors).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use gradlens::imaging::{Colormap, overlay, write_png};
use gradlens::saliency::{
    self, Attribution, Explained, IntegratedGradients, Perturbation, Reduce, Score, SmoothGrad,
    to_maps,
};
use gradlens::{Error, Gpu, Result, Tensor};

use super::model;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    Gradient,
    GradientXInput,
    Smoothgrad,
    IntegratedGradients,
    Gradcam,
    GuidedBackprop,
    Perturbation,
}

pub struct Request<'a> {
    pub images: &'a [PathBuf],
    pub weights: &'a Path,
    pub arch: Option<&'a str>,
    pub method: Method,
    pub class: &'a str,
    pub out: Option<&'a Path>,
    pub raw_out: Option<&'a Path>,
}

pub fn run(request: &Request) -> Result<()> {
    // Several images write <stem>.png into one folder: two with one stem would overwrite.
    let mut stems = std::collections::HashSet::new();
    for path in request.images {
        let stem = path
            .file_stem()
            .map(|s| s.to_os_string())
            .unwrap_or_default();
        if request.images.len() > 1 && !stems.insert(stem) {
            return Err(Error::Image {
                path: path.display().to_string(),
                message:
                    "another image has the same file name; their maps would overwrite each other"
                        .to_string(),
            });
        }
    }
    let gpu = Gpu::new()?;
    let loaded = model::load(&gpu, request.weights, request.arch)?;
    let (batch, sized) = model::images(&gpu, &loaded.info, request.images)?;
    let explained = Explained {
        model: loaded.model.as_ref(),
        store: &loaded.store,
    };
    let classes = match model::parse_class(&loaded.info, request.class)? {
        Some(class) => vec![class; request.images.len()],
        None => saliency::top_classes(explained, &batch)?,
    };
    let maps = compute(explained, &batch, &classes, request.method)?;
    let several = request.images.len() > 1;
    for (i, path) in request.images.iter().enumerate() {
        let plane = maps.dims[1] * maps.dims[2];
        let map = &maps.data[i * plane..(i + 1) * plane];
        let stem = path
            .file_stem()
            .map_or("image".into(), |s| s.to_string_lossy().into_owned());
        let class = &loaded.info.class_names[classes[i]];
        if let Some(out) = request.out {
            let target = output_path(out, several, &stem, "png")?;
            let shown: Vec<f32> = map.iter().map(|v| v.abs()).collect();
            let pixels = overlay(&sized[i], &shown, Colormap::Inferno, 0.6);
            write_png(&target, sized[i].width, sized[i].height, &pixels)?;
            println!(
                "{}: {:?} for class {} ({class}) → {}",
                path.display(),
                request.method,
                classes[i],
                target.display()
            );
        }
        if let Some(raw) = request.raw_out {
            let target = output_path(raw, several, &stem, "safetensors")?;
            write_map(
                &target,
                map,
                [maps.dims[1], maps.dims[2]],
                &loaded.info.arch,
                request.method,
                class,
            )?;
        }
        if request.out.is_none() && request.raw_out.is_none() {
            println!(
                "{}: {:?} for class {} ({class}); pass --out or --raw-out to keep the map",
                path.display(),
                request.method,
                classes[i]
            );
        }
    }
    Ok(())
}

/// Maps [N, H, W] at the model's input resolution.
fn compute(
    explained: Explained,
    x: &Tensor,
    classes: &[usize],
    method: Method,
) -> Result<Attribution> {
    let score = Score::Logit;
    Ok(match method {
        Method::Gradient => to_maps(
            &saliency::gradient(explained, x, classes, score)?,
            Reduce::AbsMax,
        )?,
        Method::GradientXInput => to_maps(
            &saliency::gradient_x_input(explained, x, classes, score)?,
            Reduce::Sum,
        )?,
        Method::Smoothgrad => to_maps(
            &saliency::smoothgrad(explained, x, classes, score, &SmoothGrad::default())?,
            Reduce::AbsMax,
        )?,
        Method::IntegratedGradients => {
            let result = saliency::integrated_gradients(
                explained,
                x,
                classes,
                score,
                &IntegratedGradients::default(),
            )?;
            for (error, difference) in result
                .completeness_error
                .iter()
                .zip(&result.score_difference)
            {
                eprintln!(
                    "integrated gradients: attributions sum to F(x) − F(baseline) = {difference:.4} within {error:.4}"
                );
            }
            to_maps(&result.attribution, Reduce::Sum)?
        }
        Method::Gradcam => saliency::grad_cam(explained, x, classes, score, None)?.1,
        Method::GuidedBackprop => to_maps(
            &saliency::guided_backprop(explained, x, classes, score)?,
            Reduce::AbsMax,
        )?,
        Method::Perturbation => {
            saliency::meaningful_perturbation(explained, x, classes, &Perturbation::default())?
                .saliency
        }
    })
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
