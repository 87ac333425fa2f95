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

/// Whether [`list`] takes the relative, '/'-separated `path` for an image: an image's extension,
/// and no hidden file or folder on the way (macOS's `._` copies, `__MACOSX`).
pub fn is_listed_image(path: &str) -> bool {
    let mut parts = path.split('/').filter(|c| !c.is_empty()).peekable();
    parts.peek().is_some()
        && parts
            .clone()
            .all(|p| !p.starts_with('.') && p != "__MACOSX")
        && parts
            .last()
            .is_some_and(|name| crate::imaging::is_image_path(Path::new(name)))
}

/// The ImageFolder that `paths` (relative, '/'-separated) describe, read as `scan` and
/// `training_split` read the same folder on disk: a folder above the classes that every path
/// shares (the folder picked, a zip's top folder) is skipped; a data set with top folders
/// `train` and `val` is presplit, the class folders inside them. Files that are not images,
/// hidden files (macOS's `._` copies) and `__MACOSX` entries are passed over, which `scan`
/// does not do; and a folder holding no image is no class here (a browser lists no empty
/// folder).
pub fn list(paths: &[String]) -> Result<ListedFolder> {
    let fail = |message: String| Error::Image {
        path: "the chosen folder".to_string(),
        message,
    };
    let images: Vec<(usize, Vec<&str>)> = paths
        .iter()
        .enumerate()
        .filter(|(_, path)| is_listed_image(path))
        .map(|(index, path)| (index, path.split('/').filter(|c| !c.is_empty()).collect()))
        .collect();
    if images.is_empty() {
        return Err(fail("no PNG, JPEG, TIFF or DICOM images in it".to_string()));
    }
    // The data set's folder: the deepest one holding every image (a picked folder, a zip's top
    // folder), or its parent when all lie directly in it (one class folder picked alone).
    let first = &images[0].1;
    let common = (0..)
        .take_while(|&depth| {
            images
                .iter()
                .all(|(_, p)| depth + 1 < p.len() && p[depth] == first[depth])
        })
        .count();
    let all_direct = images.iter().all(|(_, p)| p.len() == common + 1);
    let root = if all_direct {
        common.saturating_sub(1)
    } else {
        common
    };
    let relative: Vec<(usize, &[&str])> = images.iter().map(|(i, p)| (*i, &p[root..])).collect();
    // train/ and val/ side by side hold the split. As `scan` reads a folder, only images
    // directly inside a class folder count: files beside the class folders, deeper folders
    // and anything beside train/ and val/ (gradlens lesions's masks/) are passed over.
    let top = |name: &str| relative.iter().any(|(_, p)| p.len() == 3 && p[0] == name);
    let presplit = top("train") && top("val");
    let relative: Vec<(usize, &[&str])> = relative
        .into_iter()
        .filter(|(_, p)| match presplit {
            true => p.len() == 3 && (p[0] == "train" || p[0] == "val"),
            false => p.len() == 2,
        })
        .collect();
    if relative.is_empty() {
        return Err(fail(
            "no images inside class folders (ImageFolder layout: one folder per class)".to_string(),
        ));
    }
    let class_of = |parts: &[&str]| match presplit {
        true => parts[1].to_string(),
        false => parts[0].to_string(),
    };
    let mut classes: Vec<String> = relative.iter().map(|(_, p)| class_of(p)).collect();
    classes.sort();
    classes.dedup();
    let mut files: Vec<(usize, &str, ListedFile)> = relative
        .iter()
        .map(|&(index, parts)| {
            let label = classes
                .binary_search(&class_of(parts))
                .expect("a listed class");
            let validation = presplit && parts[0] == "val";
            let file = ListedFile {
                index,
                label,
                validation,
            };
            (label, paths[index].as_str(), file)
        })
        .collect();
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
