//! Run manifests: what a `gradlens saliency` run explained and how, written as JSON beside its
//! outputs, and read back by `gradlens saliency --manifest FILE` to run it again. A manifest
//! names the weights and every input by path and SHA-256 (a replay refuses files that
//! changed), every method setting with its seeds, the class asked for, the tiling and the
//! batch, how DICOM images were read, and the adapter, driver and gradlens version that ran it. On the same adapter a
//! replay's maps are bit-identical to the first run's.

use std::io::Read;
use std::path::{Path, PathBuf};

use gradlens::imaging::DicomOptions;
use gradlens::saliency::{Method, MethodSettings};
use gradlens::weights::write_atomically;
use gradlens::{Error, Gpu, Result};

use super::model::Source;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Everything that decides a saliency run's maps.
#[derive(Clone, Debug)]
pub struct Run {
    /// The images and folders as named on the command line.
    pub images: Vec<PathBuf>,
    /// On a replay, the images the run explained (files, or frames of them) with their keys
    /// (their paths below the folder named, which name their outputs), instead of expanding
    /// `images` again.
    pub listed: Option<Vec<Source>>,
    pub weights: PathBuf,
    pub arch: Option<String>,
    pub methods: Vec<Method>,
    /// `--methods` (a grid per image) rather than `--method`.
    pub grid: bool,
    pub settings: MethodSettings,
    pub class: String,
    /// Tile side and stride in image pixels.
    pub tile: Option<(usize, Option<usize>)>,
    pub batch: usize,
    /// How DICOM images were read (frame and window).
    pub dicom: DicomOptions,
    /// `--frame all`: every frame of a multi-frame DICOM file is an image (a replay reads the
    /// frames `listed` names).
    pub every_frame: bool,
}

/// The file's SHA-256 in hex.
pub fn sha256(path: &Path) -> Result<String> {
    let fail = |message: String| Error::Image {
        path: path.display().to_string(),
        message,
    };
    let mut file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// Writes `run`'s manifest to `path`, with the adapter that ran it and the outputs it wrote.
/// Paths are recorded absolute, so that a replay from another folder finds the same files.
/// `images` are the files explained, each with its name.
pub fn write(
    path: &Path,
    run: &Run,
    images: &[Source],
    gpu: &Gpu,
    outputs: &[PathBuf],
) -> Result<()> {
    let info = gpu.adapter_info();
    let absolute = |file: &Path| std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let images = images
        .iter()
        .map(|image| {
            Ok(json!({
                "path": absolute(&image.path),
                "name": image.key,
                "frame": image.frame,
                "sha256": sha256(&image.path)?,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let inputs: Vec<PathBuf> = run.images.iter().map(|input| absolute(input)).collect();
    let outputs: Vec<PathBuf> = outputs.iter().map(|file| absolute(file)).collect();
    let manifest = json!({
        "gradlens": env!("CARGO_PKG_VERSION"),
        "command": "saliency",
        "weights": {"path": absolute(&run.weights), "sha256": sha256(&run.weights)?},
        "arch": run.arch,
        "inputs": inputs,
        "images": images,
        "methods": run.methods.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "grid": run.grid,
        "settings": run.settings,
        "class": run.class,
        "tile": run.tile.map(|(side, stride)| json!({"side": side, "stride": stride})),
        "batch": run.batch,
        "dicom": run.dicom,
        "adapter": {
            "name": info.name,
            "backend": format!("{:?}", info.backend),
            "device_type": format!("{:?}", info.device_type),
            "driver": info.driver,
            "driver_info": info.driver_info,
        },
        "outputs": outputs,
    });
    let text = serde_json::to_string_pretty(&manifest).expect("a JSON value serialises");
    write_atomically(path, text.as_bytes()).map_err(|error| Error::Output {
        path: path.display().to_string(),
        message: format!("cannot write the manifest: {error}"),
    })
}

/// The run a manifest records, its weights and images checked against their digests.
pub fn read(path: &Path) -> Result<Run> {
    let fail = |message: String| Error::Image {
        path: path.display().to_string(),
        message: format!("manifest: {message}"),
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    let field = |name: &str| {
        manifest
            .get(name)
            .ok_or_else(|| fail(format!("no {name:?} field")))
    };
    let checked = |entry: &serde_json::Value, what: &str| -> Result<PathBuf> {
        let (Some(file), Some(digest)) = (entry["path"].as_str(), entry["sha256"].as_str()) else {
            return Err(fail(format!("{what} has no path and sha256")));
        };
        let file = PathBuf::from(file);
        let now = sha256(&file)?;
        if now != digest {
            return Err(fail(format!(
                "{} changed since the run (SHA-256 {now}, recorded {digest})",
                file.display()
            )));
        }
        Ok(file)
    };
    let weights = checked(field("weights")?, "weights")?;
    let listed = field("images")?
        .as_array()
        .ok_or_else(|| fail("\"images\" is not a list".to_string()))?
        .iter()
        .map(|entry| {
            let name = entry["name"]
                .as_str()
                .ok_or_else(|| fail("an image has no name".to_string()))?;
            let frame = match &entry["frame"] {
                serde_json::Value::Null => None,
                frame => Some(
                    frame
                        .as_u64()
                        .ok_or_else(|| fail(format!("{name}: the frame is not an index")))?
                        as usize,
                ),
            };
            Ok(Source {
                path: checked(entry, "an image")?,
                key: name.to_string(),
                frame,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let inputs = field("inputs")?
        .as_array()
        .ok_or_else(|| fail("\"inputs\" is not a list".to_string()))?
        .iter()
        .map(|input| input.as_str().map(PathBuf::from))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| fail("an input is not a path".to_string()))?;
    let methods = field("methods")?
        .as_array()
        .ok_or_else(|| fail("\"methods\" is not a list".to_string()))?
        .iter()
        .map(|name| {
            name.as_str()
                .and_then(Method::from_name)
                .ok_or_else(|| fail(format!("unknown method {name}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let settings: MethodSettings = serde_json::from_value(field("settings")?.clone())
        .map_err(|e| fail(format!("settings: {e}")))?;
    let tile = match field("tile")? {
        serde_json::Value::Null => None,
        tile => Some((
            tile["side"]
                .as_u64()
                .ok_or_else(|| fail("tile without a side".to_string()))? as usize,
            tile["stride"].as_u64().map(|s| s as usize),
        )),
    };
    Ok(Run {
        images: inputs,
        listed: Some(listed),
        weights,
        arch: field("arch")?.as_str().map(str::to_string),
        methods,
        grid: field("grid")?.as_bool().unwrap_or(false),
        settings,
        class: field("class")?
            .as_str()
            .ok_or_else(|| fail("\"class\" is not a string".to_string()))?
            .to_string(),
        tile,
        batch: field("batch")?.as_u64().unwrap_or(16).max(1) as usize,
        // Manifests from before DICOM input have no field: the defaults read as they did.
        dicom: match manifest.get("dicom") {
            Some(dicom) => {
                serde_json::from_value(dicom.clone()).map_err(|e| fail(format!("dicom: {e}")))?
            }
            None => DicomOptions::default(),
        },
        every_frame: false,
    })
}
