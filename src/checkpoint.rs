//! What a weights file says about its model, in its safetensors metadata: the architecture,
//! the classes and their names, the input channels, and the preprocessing the model was
//! trained with — so that classify, saliency and evaluate need only `--weights`.
//!
//! Keys (all strings): `arch`; `classes`; `class_names` (JSON list); `in_channels`;
//! `resize` ("shorter_side_then_crop" or "whole"); `resize_size`; `input_size`; `mean` and
//! `std` (JSON lists); `transform_input` ("true" / "false"); `width` (a narrow ResNet's
//! base width). The classes and input channels are always read from the tensors themselves
//! (`classes` and `in_channels` are written for people reading the file); `input_size`
//! without `resize` means torchvision's shorter-side resize and centre crop. tools/export_torchvision.py writes
//! the ImageNet ones; `gradlens train` writes all of them. Missing keys fall back to
//! torchvision's ImageNet conventions.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::imaging::{Preprocess, Sizing};
use crate::models::adapt::{classes_in, head_prefixes};
use crate::models::{ARCHS, Classifier, ModelConfig, build};
use crate::nn::ParamStore;
use crate::weights::WeightsFile;

/// The largest `input_size` and `resize_size` a file may ask for. Each image is resized to it
/// on the host before anything reaches the GPU, so the bound is on memory a header field can
/// claim: at imaging::MAX_SIDE (16384) one RGB image's planes were 3.2 GB; at 4096 they are
/// 200 MB, and the networks' activations at that size already fill a large GPU.
pub const MAX_INPUT_SIZE: usize = 4096;

/// ImageNet's 1000 class names, in torchvision's order.
pub fn imagenet_classes() -> Vec<String> {
    include_str!("imagenet_classes.txt")
        .lines()
        .map(str::to_string)
        .collect()
}

/// A model built from a weights file, its weights loaded.
pub struct LoadedModel {
    pub info: ModelInfo,
    pub store: ParamStore,
    pub model: Box<dyn Classifier>,
}

/// Builds the architecture `file` names (or `arch`) and loads its weights. The file is checked
/// against a shape-only build first, so a file claiming a huge head is refused before
/// anything is allocated.
pub fn load(gpu: &Gpu, file: &WeightsFile, arch: Option<&str>) -> Result<LoadedModel> {
    let info = crate::validate::model_info(gpu, file, arch)?;
    crate::validate::model_fits(gpu, file, &info)?;
    let mut store = ParamStore::new(gpu);
    let model = build(&info.arch, &mut store, &info.config)?;
    file.load_into(&mut store, model.optional_prefixes())?;
    Ok(LoadedModel { info, store, model })
}

/// A model as its weights file describes it.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub arch: String,
    pub config: ModelConfig,
    pub class_names: Vec<String>,
    pub preprocess: Preprocess,
}

impl ModelInfo {
    /// Reads the description from `file`'s metadata; `arch` overrides (or supplies) the
    /// architecture.
    pub fn from_file(file: &WeightsFile, arch: Option<&str>) -> Result<Self> {
        let meta = file.metadata();
        let fail = |message: String| Error::Weights {
            path: file.path().to_string(),
            message,
        };
        let arch = match (arch, meta.get("arch")) {
            (Some(arch), _) => arch.to_string(),
            (None, Some(arch)) => arch.clone(),
            (None, None) => {
                return Err(fail(
                    "the file does not name its architecture; pass --arch".to_string(),
                ));
            }
        };
        if !ARCHS.contains(&arch.as_str()) {
            return Err(fail(format!(
                "unknown arch {arch:?}; one of {}",
                ARCHS.join(", ")
            )));
        }
        let classes = classes_in(&arch, file)
            .filter(|&classes| classes > 0)
            .ok_or_else(|| fail(format!("no classification head of a {arch} in the file")))?;
        // The head's rows size the class names and the model built next: a zero-sized head
        // (say [10^12, 0], no bytes at all) must not claim them.
        let head = head_prefixes(&arch).first().map(|p| format!("{p}weight"));
        if head
            .as_deref()
            .and_then(|name| file.get(name))
            .is_none_or(|t| t.data.is_empty())
        {
            return Err(fail(format!(
                "the classification head {} is empty",
                head.unwrap_or_default()
            )));
        }
        let in_channels = first_conv_channels(file).unwrap_or(3);
        let class_names = match meta.get("class_names") {
            Some(json) => parse_list(json).map_err(|e| fail(format!("class_names: {e}")))?,
            None if classes == 1000 => imagenet_classes(),
            None => (0..classes).map(|c| format!("class {c}")).collect(),
        };
        if class_names.len() != classes {
            return Err(fail(format!(
                "{} class names for a head of {classes} classes",
                class_names.len()
            )));
        }
        let mut preprocess = Preprocess::imagenet(&arch);
        preprocess.channels = in_channels;
        let side = |key: &str| -> Result<Option<usize>> {
            match meta.get(key) {
                None => Ok(None),
                Some(text) => match text.parse::<usize>() {
                    Ok(value) if (1..=MAX_INPUT_SIZE).contains(&value) => Ok(Some(value)),
                    _ => Err(fail(format!(
                        "{key} {text:?} is not a size from 1 to {MAX_INPUT_SIZE}"
                    ))),
                },
            }
        };
        if let Some(size) = side("input_size")? {
            preprocess.sizing = match meta.get("resize").map(String::as_str) {
                Some("whole") => Sizing::Whole { size },
                Some("shorter_side_then_crop") | None => {
                    let resize = side("resize_size")?.unwrap_or(size * 8 / 7);
                    if resize < size {
                        return Err(fail(format!(
                            "resize_size {resize} is below the crop {size}"
                        )));
                    }
                    Sizing::ShorterSideThenCrop { resize, crop: size }
                }
                Some(other) => return Err(fail(format!("unknown resize {other:?}"))),
            };
        }
        for (key, target) in [("mean", &mut preprocess.mean), ("std", &mut preprocess.std)] {
            if let Some(json) = meta.get(key) {
                let values: Vec<String> =
                    parse_list(json).map_err(|e| fail(format!("{key}: {e}")))?;
                *target = values
                    .iter()
                    .map(|v| v.parse::<f32>().map_err(|_| fail(format!("{key}: {v:?}"))))
                    .collect::<Result<_>>()?;
            }
        }
        // "NaN" and "inf" parse as f32, and a zero std divides by zero: every input would
        // become NaN or infinite.
        for (key, values) in [("mean", &preprocess.mean), ("std", &preprocess.std)] {
            if values
                .iter()
                .any(|v| !v.is_finite() || (key == "std" && *v <= 0.0))
            {
                let rule = match key {
                    "std" => "finite and positive",
                    _ => "finite",
                };
                return Err(fail(format!("{key} {values:?} must be {rule}")));
            }
        }
        let recorded = meta.contains_key("mean") || meta.contains_key("std");
        if !recorded && in_channels == 1 {
            // No normalisation recorded for a gray model: gradlens's gray one (ImageNet's
            // averaged, what `adapt::grayscale_first_conv` assumes).
            preprocess.mean = vec![crate::models::adapt::GRAY_MEAN];
            preprocess.std = vec![crate::models::adapt::GRAY_STD];
        }
        if preprocess.mean.len() != in_channels || preprocess.std.len() != in_channels {
            return Err(fail(format!(
                "mean {:?} and std {:?} for {in_channels} input channels",
                preprocess.mean, preprocess.std
            )));
        }
        let transform_input = meta.get("transform_input").is_some_and(|v| v == "true");
        let width = match meta.get("width") {
            Some(text) => {
                let width: usize = text
                    .parse()
                    .map_err(|_| fail(format!("width {text:?} is not a number")))?;
                // The width sizes every layer of the model built before the weights are
                // checked against it: it must be the stem's, as the file holds it.
                let stem = file
                    .get("conv1.weight")
                    .filter(|t| !t.data.is_empty())
                    .and_then(|t| t.dims.first().copied());
                let resnet = arch.starts_with("resnet");
                if !resnet && width != 64 {
                    return Err(fail(format!(
                        "width {width} is for ResNets only, not {arch}"
                    )));
                }
                if width == 0 || (resnet && stem != Some(width)) {
                    return Err(fail(format!(
                        "width {width} does not match the stem conv1.weight of the file ({})",
                        stem.map_or("absent or empty".to_string(), |s| format!("{s} channels"))
                    )));
                }
                width
            }
            None => 64,
        };
        Ok(Self {
            config: ModelConfig {
                in_channels,
                classes,
                transform_input: transform_input && in_channels == 3,
                seed: 0,
                dropout: None,
                width,
            },
            arch,
            class_names,
            preprocess,
        })
    }

    /// The metadata a checkpoint of this model carries.
    pub fn metadata(&self) -> HashMap<String, String> {
        let list = |values: &[String]| serde_json::to_string(values).expect("strings serialise");
        let numbers = |values: &[f32]| serde_json::to_string(values).expect("numbers serialise");
        let (kind, resize, size) = match self.preprocess.sizing {
            Sizing::ShorterSideThenCrop { resize, crop } => {
                ("shorter_side_then_crop", resize, crop)
            }
            Sizing::Whole { size } => ("whole", size, size),
        };
        HashMap::from([
            ("arch".to_string(), self.arch.clone()),
            ("classes".to_string(), self.config.classes.to_string()),
            ("class_names".to_string(), list(&self.class_names)),
            (
                "in_channels".to_string(),
                self.config.in_channels.to_string(),
            ),
            ("resize".to_string(), kind.to_string()),
            ("resize_size".to_string(), resize.to_string()),
            ("input_size".to_string(), size.to_string()),
            ("mean".to_string(), numbers(&self.preprocess.mean)),
            ("std".to_string(), numbers(&self.preprocess.std)),
            (
                "transform_input".to_string(),
                self.config.transform_input.to_string(),
            ),
            ("width".to_string(), self.config.width.to_string()),
        ])
    }
}

/// The input channels of the first convolution found in the file (the sorted-first 4-D
/// tensor whose name is a known stem).
fn first_conv_channels(file: &WeightsFile) -> Option<usize> {
    [
        "conv1.weight",
        "conv1.conv.weight",
        "features.0.weight",
        "features.conv0.weight",
        "Conv2d_1a_3x3.conv.weight",
    ]
    .iter()
    .find_map(|name| {
        file.get(name)
            .filter(|t| t.dims.len() == 4 && !t.data.is_empty())
            .map(|t| t.dims[1])
    })
}

/// A flat JSON list of strings or numbers, each as a string.
fn parse_list(json: &str) -> std::result::Result<Vec<String>, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let items = value
        .as_array()
        .ok_or_else(|| format!("not a JSON list: {json:?}"))?;
    items
        .iter()
        .map(|item| match item {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Number(n) => Ok(n.to_string()),
            other => Err(format!("unexpected item {other}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_list;

    #[test]
    fn lists_round_trip() {
        let names = vec!["tench", "a \"quoted\" name", "back\\slash", "x, y"];
        let json = serde_json::to_string(&names).unwrap();
        assert_eq!(parse_list(&json).unwrap(), names);
        assert_eq!(
            parse_list("[0.485, 0.456,0.406]").unwrap(),
            ["0.485", "0.456", "0.406"]
        );
        assert!(parse_list("tench").is_err());
    }
}
