//! `gradlens classify`: the top classes of each image with their probabilities.

use std::path::{Path, PathBuf};

use gradlens::saliency::{Explained, logits};
use gradlens::{Gpu, Result};

use super::model;

pub fn run(
    images: &[PathBuf],
    weights: &Path,
    arch: Option<&str>,
    top: usize,
    json: bool,
) -> Result<()> {
    let gpu = Gpu::new()?;
    let loaded = model::load(&gpu, weights, arch)?;
    let (batch, _) = model::images(&gpu, &loaded.info, images)?;
    let explained = Explained {
        model: loaded.model.as_ref(),
        store: &loaded.store,
    };
    let logits = logits(explained, &batch)?;
    let classes = logits.dims[1];
    let mut results = Vec::new();
    for (path, row) in images.iter().zip(logits.data.chunks(classes)) {
        let peak = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f64> = row.iter().map(|&v| f64::from(v - peak).exp()).collect();
        let total: f64 = exps.iter().sum();
        let mut ranked: Vec<(usize, f64)> = exps.iter().map(|e| e / total).enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(top.max(1));
        if !json {
            println!("{}", path.display());
            for (class, probability) in &ranked {
                println!(
                    "  {:6.2}%  {class:4}  {}",
                    probability * 100.0,
                    loaded.info.class_names[*class]
                );
            }
        }
        results.push(serde_json::json!({
            "image": path.display().to_string(),
            "top": ranked.iter().map(|(class, p)| serde_json::json!({
                "class": class, "name": loaded.info.class_names[*class], "probability": p,
            })).collect::<Vec<_>>(),
        }));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({ "arch": loaded.info.arch, "results": results })
        );
    }
    Ok(())
}
