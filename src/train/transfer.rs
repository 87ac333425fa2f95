//! A model to fine-tune on an ImageFolder's classes: a checkpoint's weights with a fresh head
//! for the new classes (and, for gray images, its first convolution adapted from RGB), or an
//! architecture from scratch; and which of its parameters train.

use crate::checkpoint::{LoadedModel, ModelInfo};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::imaging::{Preprocess, Sizing};
use crate::models::adapt::{self, GRAY_MEAN, GRAY_STD};
use crate::models::{ModelConfig, build};
use crate::nn::ParamStore;
use crate::weights::WeightsFile;

/// Which parameters a fine-tuning run updates; the rest stay as loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trainable {
    /// The new head only (the checkpoint's features, fixed).
    Classifier,
    /// The last block of features and the head.
    LastBlock,
    All,
}

impl Trainable {
    pub fn name(self) -> &'static str {
        match self {
            Trainable::Classifier => "classifier",
            Trainable::LastBlock => "last-block",
            Trainable::All => "all",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Trainable::Classifier, Trainable::LastBlock, Trainable::All]
            .into_iter()
            .find(|t| t.name() == name)
    }

    /// The parameter-name prefixes that train in `arch` (`None`: all of them).
    pub fn prefixes(self, arch: &str) -> Option<Vec<&'static str>> {
        let mut prefixes = adapt::head_prefixes(arch).to_vec();
        match self {
            Trainable::All => return None,
            Trainable::Classifier => {}
            Trainable::LastBlock => prefixes.extend(last_block_prefixes(arch)),
        }
        Some(prefixes)
    }
}

/// The last block of features of each architecture (torchvision's names): what "fine-tune the
/// last block" means in the transfer-learning literature for each.
fn last_block_prefixes(arch: &str) -> &'static [&'static str] {
    match arch {
        _ if arch.starts_with("resnet") => &["layer4."],
        _ if arch.starts_with("densenet") => &["features.denseblock4.", "features.norm5."],
        // The fully connected layers before the head.
        _ if arch.starts_with("vgg") => &["classifier.0.", "classifier.3."],
        "googlenet" => &["inception5b."],
        "inception_v3" => &["Mixed_7c."],
        _ => &[],
    }
}

/// What to build: the architecture (a checkpoint's own, or the one to train from scratch),
/// the data's classes, the input channels and side, and for scratch the ResNet width and the
/// initial weights' seed.
#[derive(Clone, Debug)]
pub struct FineTuneSpec {
    pub arch: String,
    pub classes: Vec<String>,
    pub channels: usize,
    pub size: usize,
    pub width: usize,
    pub seed: u64,
}

/// A model for `spec`, from `checkpoint` (gradlens's, `tools/export_torchvision.py`'s, or a bare
/// state dict of `spec.arch`) or from scratch; `statistics` gives a scratch model its
/// normalisation (the training images' per-channel mean and standard deviation). Only the
/// `trainable` parameters will update.
pub fn fine_tune_model(
    gpu: &Gpu,
    checkpoint: Option<WeightsFile>,
    spec: &FineTuneSpec,
    trainable: Trainable,
    statistics: impl FnOnce() -> (Vec<f32>, Vec<f32>),
) -> Result<LoadedModel> {
    let sizing = Sizing::Whole { size: spec.size };
    let mut config = ModelConfig {
        in_channels: spec.channels,
        classes: spec.classes.len(),
        width: spec.width,
        seed: spec.seed,
        ..ModelConfig::default()
    };
    let (file, (mean, std)) = match checkpoint {
        None => (None, statistics()),
        Some(mut file) => {
            let bare = !file.metadata().contains_key("arch");
            let info = ModelInfo::from_file(&file, Some(&spec.arch))?;
            // torchvision sets transform_input when it loads GoogLeNet's and Inception v3's
            // pretrained weights, which then expect (0.5, 0.5) normalisation underneath; a
            // file with metadata says so itself, a bare state dict is taken to be those weights.
            let remaps = info.config.transform_input
                || (bare && matches!(spec.arch.as_str(), "googlenet" | "inception_v3"));
            config.width = info.config.width;
            adapt::drop_head(&spec.arch, &mut file);
            let normalisation = match (info.preprocess.channels, spec.channels) {
                (from, to) if from == to => {
                    config.transform_input = remaps && to == 3;
                    (info.preprocess.mean.clone(), info.preprocess.std.clone())
                }
                (3, 1) => {
                    let rgb = |values: &[f32]| [values[0], values[1], values[2]];
                    let (mean, std) = match remaps {
                        true => ([0.5; 3], [0.5; 3]),
                        false => (rgb(&info.preprocess.mean), rgb(&info.preprocess.std)),
                    };
                    adapt::grayscale_first_conv(&spec.arch, &mut file, mean, std)?;
                    (vec![GRAY_MEAN], vec![GRAY_STD])
                }
                (from, to) => {
                    return Err(Error::Weights {
                        path: file.path().to_string(),
                        message: format!(
                            "a model of {from} input channels cannot be fine-tuned on \
                             {to}-channel images (gray images fit an RGB model, adapted)"
                        ),
                    });
                }
            };
            (Some(file), normalisation)
        }
    };
    let mut store = ParamStore::new(gpu);
    let model = build(&spec.arch, &mut store, &config)?;
    if let Some(file) = &file {
        let mut optional = model.optional_prefixes().to_vec();
        optional.extend(adapt::head_prefixes(&spec.arch));
        file.load_into(&mut store, &optional)?;
    }
    if let Some(prefixes) = trainable.prefixes(&spec.arch) {
        let present: Vec<&str> = prefixes
            .into_iter()
            .filter(|prefix| store.shapes().any(|(name, _, _)| name.starts_with(prefix)))
            .collect();
        store.freeze_all_except(&present)?;
    }
    let info = ModelInfo {
        arch: spec.arch.clone(),
        config,
        class_names: spec.classes.clone(),
        preprocess: Preprocess {
            channels: spec.channels,
            sizing,
            mean,
            std,
        },
    };
    Ok(LoadedModel { info, store, model })
}
