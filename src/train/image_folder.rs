//! torchvision's ImageFolder layout: one folder per class (sorted by name), images inside.
//! A data set is either DIR/train/<class>/… and DIR/val/<class>/…, or DIR/<class>/… split by
//! a fraction. On disk (`scan`, `training_split`) or as a list of relative paths (`list`: a
//! folder picked in a browser, a zip's entries), with the same classes and the same seeded
//! split.

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
    let mut train = Samples {
        classes: all.classes.clone(),
        ..Samples::default()
    };
    let mut val = train.clone();
    let held = held_out(all.paths.len(), val_fraction, seed);
    for ((path, &label), held) in all.paths.iter().zip(&all.labels).zip(held) {
        let target = if held { &mut val } else { &mut train };
        target.paths.push(path.clone());
        target.labels.push(label);
    }
    Ok((train, val))
}

/// Which of `count` images (in class order, then file order) are held out for validation:
/// each with probability `val_fraction`, drawn from `seed`.
pub fn held_out(count: usize, val_fraction: f64, seed: u64) -> Vec<bool> {
    let mut rng = SplitMix64::new(seed);
    (0..count).map(|_| rng.uniform() < val_fraction).collect()
}

/// An ImageFolder given as relative paths.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedFolder {
    pub classes: Vec<String>,
    /// The images in class order, then path order (the order `scan` gives).
    pub files: Vec<ListedFile>,
    /// Whether the folder came split into train/ and val/.
    pub presplit: bool,
}

/// One image of a [`ListedFolder`].
#[derive(Clone, Debug, PartialEq)]
pub struct ListedFile {
    /// Its index in the paths given to [`list`].
    pub index: usize,
    pub label: usize,
    /// In a presplit folder: whether it lies under val/.
    pub validation: bool,
}

/// The ImageFolder that `paths` (relative, '/'-separated) describe. A folder above the classes
/// that every path shares (the folder picked, a zip's top folder) is skipped; files that are
/// not images, hidden files and macOS's `__MACOSX` entries are passed over. A data set with
/// top folders `train` and `val` is presplit: the class folders are inside them.
pub fn list(paths: &[String]) -> Result<ListedFolder> {
    let fail = |message: String| Error::Image {
        path: "the chosen folder".to_string(),
        message,
    };
    let images: Vec<(usize, Vec<&str>)> = paths
        .iter()
        .enumerate()
        .map(|(index, path)| (index, path.split('/').filter(|c| !c.is_empty()).collect()))
        .filter(|(_, parts): &(usize, Vec<&str>)| {
            !parts.iter().any(|p| p.starts_with('.') || *p == "__MACOSX")
                && parts
                    .last()
                    .is_some_and(|name| crate::imaging::is_image_path(Path::new(name)))
        })
        .collect();
    if images.is_empty() {
        return Err(fail("no PNG, JPEG, TIFF or DICOM images in it".to_string()));
    }
    // Folders every image lies under, kept to at least one folder above each image.
    let shallowest = images.iter().map(|(_, p)| p.len() - 1).min().unwrap_or(0);
    let first = &images[0].1;
    let shared = (0..shallowest.saturating_sub(1))
        .take_while(|&depth| images.iter().all(|(_, p)| p[depth] == first[depth]))
        .count();
    let relative: Vec<(usize, &[&str])> = images.iter().map(|(i, p)| (*i, &p[shared..])).collect();
    // train/ and val/ side by side hold the split; anything beside them (gradlens lesions's
    // masks/) is not training data, as `training_split` reads a folder.
    let top = |name: &str| relative.iter().any(|(_, p)| p.len() >= 3 && p[0] == name);
    let presplit = top("train") && top("val");
    let relative: Vec<(usize, &[&str])> = match presplit {
        true => relative
            .into_iter()
            .filter(|(_, p)| p.len() >= 3 && (p[0] == "train" || p[0] == "val"))
            .collect(),
        false => relative,
    };
    let class_of = |parts: &[&str]| -> Result<String> {
        match (presplit, parts) {
            (true, [_, class, _, ..]) | (false, [class, _, ..]) => Ok(class.to_string()),
            _ => Err(fail(format!(
                "{} is not inside a class folder (ImageFolder layout: one folder per class)",
                parts.join("/")
            ))),
        }
    };
    let mut classes: Vec<String> = relative
        .iter()
        .map(|(_, p)| class_of(p))
        .collect::<Result<_>>()?;
    classes.sort();
    classes.dedup();
    let mut files: Vec<(usize, &str, ListedFile)> = relative
        .iter()
        .map(|&(index, parts)| {
            let class = class_of(parts)?;
            let label = classes.binary_search(&class).expect("a listed class");
            let validation = presplit && parts[0] == "val";
            Ok((
                label,
                paths[index].as_str(),
                ListedFile {
                    index,
                    label,
                    validation,
                },
            ))
        })
        .collect::<Result<_>>()?;
    files.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    Ok(ListedFolder {
        classes,
        files: files.into_iter().map(|(_, _, file)| file).collect(),
        presplit,
    })
}

impl ListedFolder {
    /// (training, validation) files: the presplit folders, or each file held out with
    /// probability `val_fraction` drawn from `seed` (as `training_split` splits a folder).
    pub fn split(&self, val_fraction: f64, seed: u64) -> (Vec<&ListedFile>, Vec<&ListedFile>) {
        let held = match self.presplit {
            true => self.files.iter().map(|f| f.validation).collect(),
            false => held_out(self.files.len(), val_fraction, seed),
        };
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for (file, held) in self.files.iter().zip(held) {
            match held {
                true => val.push(file),
                false => train.push(file),
            }
        }
        (train, val)
    }
}
