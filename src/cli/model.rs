//! What the subcommands share: a model from a weights file, and images as a batch.

use std::path::{Path, PathBuf};

use gradlens::checkpoint::{LoadedModel, ModelInfo};
use gradlens::imaging::tiles::{TileGrid, crop};
use gradlens::imaging::{self, DicomOptions, Planes, Preprocess, Sizing};
use gradlens::weights::WeightsFile;
use gradlens::{Error, Gpu, Result, Tensor};

/// Builds the architecture the weights name (or `arch`) and loads them.
pub fn load(gpu: &Gpu, weights: &Path, arch: Option<&str>) -> Result<LoadedModel> {
    gradlens::checkpoint::load(gpu, &WeightsFile::open(weights)?, arch)
}

/// One image to read: a file, or with `--frame all` one frame of a multi-frame DICOM file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    pub path: PathBuf,
    /// The partition key (`archive::Shard`) and the mark of a finished image (`--jsonl`): the
    /// path below the folder named (the file name for a file named), `#K` after it for frame K.
    pub key: String,
    pub frame: Option<usize>,
}

impl Source {
    /// How to read it: its own frame, if it is one.
    pub fn dicom(&self, options: &DicomOptions) -> DicomOptions {
        DicomOptions {
            frame: self.frame.unwrap_or(options.frame),
            ..*options
        }
    }

    /// As messages and JSON name it: the path, `#K` after it for frame K.
    pub fn shown(&self) -> String {
        match self.frame {
            Some(frame) => format!("{}#{frame}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    /// Its outputs' name below an output folder: the key without the file's extension,
    /// `_frameK` after it for frame K.
    pub fn output_name(&self) -> String {
        let stem = |file_key: &str| {
            Path::new(file_key)
                .with_extension("")
                .to_string_lossy()
                .into_owned()
        };
        match self.frame {
            Some(frame) => {
                let file_key = self
                    .key
                    .strip_suffix(&format!("#{frame}"))
                    .unwrap_or(&self.key);
                format!("{}_frame{frame}", stem(file_key))
            }
            // A file name may hold '#' itself.
            None => stem(&self.key),
        }
    }
}

/// The images `paths` name: files as given, keyed by their file name; folders replaced by the
/// PNG, JPEG, TIFF and DICOM files in them and their sub-folders, in name order, keyed by their
/// path below the folder. With `every_frame`, a multi-frame DICOM file becomes one source per
/// frame.
pub fn expand_images(paths: &[PathBuf], every_frame: bool) -> Result<Vec<Source>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            collect_images(path, &mut found)?;
            if found.is_empty() {
                return Err(Error::Image {
                    path: path.display().to_string(),
                    message: "the folder holds no PNG, JPEG, TIFF or DICOM images".to_string(),
                });
            }
            found.sort();
            files.extend(found.into_iter().map(|file| {
                let below = file.strip_prefix(path).unwrap_or(&file);
                let key = below
                    .components()
                    .map(|part| part.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                (file, key)
            }));
        } else {
            let key = path
                .file_name()
                .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
            files.push((path.clone(), key));
        }
    }
    let mut sources = Vec::with_capacity(files.len());
    for (path, key) in files {
        let frames = match every_frame {
            true => dicom_frames(&path)?,
            false => 1,
        };
        if frames == 1 {
            sources.push(Source {
                path,
                key,
                frame: None,
            });
            continue;
        }
        sources.extend((0..frames).map(|frame| Source {
            path: path.clone(),
            key: format!("{key}#{frame}"),
            frame: Some(frame),
        }));
    }
    Ok(sources)
}

/// A DICOM file's frame count; 1 for any other image.
fn dicom_frames(path: &Path) -> Result<usize> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::Image {
        path: shown.clone(),
        message: format!("cannot read: {e}"),
    })?;
    let named = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("dcm") || e.eq_ignore_ascii_case("dicom"));
    match imaging::is_dicom(&bytes) || named {
        true => imaging::dicom_frame_count(&bytes, &shown),
        false => Ok(1),
    }
}

fn collect_images(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Image {
        path: dir.display().to_string(),
        message: format!("cannot read the folder: {e}"),
    })?;
    for entry in entries.filter_map(|entry| entry.ok()) {
        let path = entry.path();
        if path.is_dir() {
            collect_images(&path, found)?;
        } else if imaging::is_image_path(&path) {
            found.push(path);
        }
    }
    Ok(())
}

/// Decodes and preprocesses every image: the batch [N, C, S, S] and the sized (not
/// normalised) images for overlays.
pub fn images(
    gpu: &Gpu,
    info: &ModelInfo,
    sources: &[Source],
    dicom: &DicomOptions,
) -> Result<(Tensor, Vec<Planes>)> {
    let preprocess = &info.preprocess;
    let mut batch = Vec::new();
    let mut sized = Vec::new();
    for source in sources {
        let image = imaging::load_with(&source.path, preprocess.channels, &source.dicom(dicom))?;
        batch.extend(preprocess.apply(&image)?.data);
        sized.push(preprocess.sized(&image)?);
    }
    let size = preprocess.input_size();
    let tensor = Tensor::from_slice(
        gpu,
        [sources.len(), preprocess.channels, size, size],
        &batch,
    )?;
    Ok((tensor, sized))
}

/// With --check-finite, starts flagging every layer's output and gradient that holds NaN or
/// Inf (see [`end_finite_checks`]).
pub fn start_finite_checks(gpu: &Gpu, on: bool) {
    if on {
        gpu.start_finite_checks();
    }
}

/// Ends the checks: an error naming the first layer whose output or gradient held NaN or Inf.
pub fn end_finite_checks(gpu: &Gpu, on: bool) -> Result<()> {
    match on {
        true => pollster::block_on(gpu.finish_finite_checks())?
            .map_or(Ok(()), |bad| Err(Error::NonFinite(bad))),
        false => Ok(()),
    }
}

/// Tiles go through the model this many at a time (bounds host and GPU memory for huge
/// images).
pub const TILES_PER_BATCH: usize = 16;

/// An image for --tile: decoded at full resolution, its grid, and each tile's preprocessing
/// (the whole tile to the model's input size — no crop — and the checkpoint's normalisation).
pub struct Tiled {
    pub image: Planes,
    pub grid: TileGrid,
    preprocess: Preprocess,
}

impl Tiled {
    /// `stride` defaults to half the tile (tiles overlap by half).
    pub fn open(
        info: &ModelInfo,
        source: &Source,
        (tile, stride): (usize, Option<usize>),
        dicom: &DicomOptions,
    ) -> Result<Self> {
        let path = &source.path;
        let image = imaging::load_with(path, info.preprocess.channels, &source.dicom(dicom))?;
        let stride = stride.unwrap_or(tile.div_ceil(2));
        let grid = TileGrid::new(tile, stride, image.height, image.width).map_err(|error| {
            Error::Image {
                path: source.shown(),
                message: error.to_string(),
            }
        })?;
        let preprocess = Preprocess {
            sizing: Sizing::Whole {
                size: info.preprocess.input_size(),
            },
            ..info.preprocess.clone()
        };
        Ok(Self {
            image,
            grid,
            preprocess,
        })
    }

    /// The tiles at `positions` as one batch [n, C, S, S].
    pub fn batch(&self, gpu: &Gpu, positions: &[(usize, usize)]) -> Result<Tensor> {
        let mut data = Vec::new();
        for &position in positions {
            let tile = crop(&self.image, self.grid.tile, position);
            data.extend(self.preprocess.apply(&tile)?.data);
        }
        let size = self.preprocess.input_size();
        let dims = [positions.len(), self.preprocess.channels, size, size];
        Tensor::from_slice(gpu, dims, &data)
    }
}

/// A class given as an index, a name stored with the weights, or "top" (None).
pub fn parse_class(info: &ModelInfo, class: &str) -> Result<Option<usize>> {
    if class == "top" {
        return Ok(None);
    }
    let classes = info.class_names.len();
    if let Ok(index) = class.parse::<usize>() {
        return match index < classes {
            true => Ok(Some(index)),
            false => Err(Error::InvalidArgument {
                op: "--class",
                message: format!("class {index} is out of range: the model has {classes} classes"),
            }),
        };
    }
    info.class_names
        .iter()
        .position(|name| name == class)
        .map(Some)
        .ok_or_else(|| Error::InvalidArgument {
            op: "--class",
            message: format!("no class named {class:?} among the model's {classes}"),
        })
}

#[cfg(test)]
mod tests {
    use super::Source;
    use std::path::PathBuf;

    #[test]
    fn output_names_keep_a_hash_in_a_file_name_and_mark_frames() {
        let source = |key: &str, frame| Source {
            path: PathBuf::from("/archive").join(key),
            key: key.to_string(),
            frame,
        };
        assert_eq!(source("ct/scan#2.png", None).output_name(), "ct/scan#2");
        assert_eq!(
            source("cine#1.dcm#3", Some(3)).output_name(),
            "cine#1_frame3"
        );
        assert_eq!(source("cine.dcm", Some(0)).shown(), "/archive/cine.dcm#0");
    }
}
