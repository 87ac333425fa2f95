//! torchvision's ImageFolder layout: one folder per class (sorted by name), images inside.
//! A data set is either DIR/train/<class>/… and DIR/val/<class>/…, or DIR/<class>/… split by
//! a fraction.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::nn::SplitMix64;

/// Image paths with their class indices, and the class names.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    pub classes: Vec<String>,
    pub paths: Vec<PathBuf>,
    pub labels: Vec<usize>,
}

/// The samples under `dir`: one sub-folder per class, PNG and JPEG files in each.
pub fn scan(dir: &Path) -> Result<Samples> {
    let fail = |message: String| Error::Image {
        path: dir.display().to_string(),
        message,
    };
    let mut classes: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| fail(format!("cannot read the folder: {e}")))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    if classes.is_empty() {
        return Err(fail(
            "no class folders (ImageFolder layout: one folder per class)".to_string(),
        ));
    }
    let mut samples = Samples {
        classes: classes.clone(),
        ..Samples::default()
    };
    for (label, class) in classes.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(class))
            .map_err(|e| fail(format!("cannot read {class}: {e}")))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| crate::imaging::is_image_path(path))
            .collect();
        files.sort();
        samples
            .labels
            .extend(std::iter::repeat_n(label, files.len()));
        samples.paths.extend(files);
    }
    if samples.paths.is_empty() {
        return Err(fail(
            "no PNG, JPEG, TIFF or DICOM images in the class folders".to_string(),
        ));
    }
    Ok(samples)
}

/// (training, validation): DIR/train and DIR/val when both exist, else DIR split with
/// `val_fraction` of each class (chosen by `seed`) held out.
pub fn training_split(dir: &Path, val_fraction: f64, seed: u64) -> Result<(Samples, Samples)> {
    let (train_dir, val_dir) = (dir.join("train"), dir.join("val"));
    if train_dir.is_dir() && val_dir.is_dir() {
        let (train, val) = (scan(&train_dir)?, scan(&val_dir)?);
        if train.classes != val.classes {
            return Err(Error::Image {
                path: dir.display().to_string(),
                message: format!(
                    "train/ has classes {:?}, val/ {:?}",
                    train.classes, val.classes
                ),
            });
        }
        return Ok((train, val));
    }
    let all = scan(dir)?;
    let mut rng = SplitMix64::new(seed);
    let mut train = Samples {
        classes: all.classes.clone(),
        ..Samples::default()
    };
    let mut val = train.clone();
    for (path, &label) in all.paths.iter().zip(&all.labels) {
        let target = if rng.uniform() < val_fraction {
            &mut val
        } else {
            &mut train
        };
        target.paths.push(path.clone());
        target.labels.push(label);
    }
    Ok((train, val))
}
