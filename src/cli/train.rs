//! `gradlens train`: fit a classifier on an ImageFolder data set, from scratch or from
//! pretrained weights (transfer learning: the head replaced for the data's classes, a gray
//! first convolution adapted from RGB), keeping the checkpoint with the best validation
//! accuracy.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use gradlens::checkpoint::{LoadedModel, ModelInfo};
use gradlens::imaging::{self, Preprocess, Sizing};
use gradlens::models::{ModelConfig, build};
use gradlens::nn::ParamStore;
use gradlens::saliency::Explained;
use gradlens::train::data::{balanced_weights, channel_statistics};
use gradlens::train::evaluate::probabilities;
use gradlens::train::image_folder::{Samples, training_split};
use gradlens::train::metrics::{Metrics, metrics};
use gradlens::train::transfer::{FineTuneSpec, Trainable, fine_tune_model};
use gradlens::train::{
    Adam, Augmentation, LabelledImages, LearningRate, Optimizer, Position, RunSettings, Sgd,
    TrainingRun,
};
use gradlens::weights::{self, WeightsFile};
use gradlens::{Error, Gpu, Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerKind {
    Sgd,
    Adam,
    Adamw,
}

impl OptimizerKind {
    fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::Adamw => "adamw",
        }
    }
}

/// Where an interrupted run stopped: the `train_state` metadata of its checkpoint, whose
/// `optimizer.`-prefixed tensors hold the optimiser's state. Shuffling and augmentation are
/// seeded per (seed, epoch, step), so a resumed run continues exactly where it stopped.
struct TrainState {
    epoch: usize,
    /// The next step to run in `epoch` (its step count when only validation is left).
    step: usize,
    optimizer: String,
    seed: u64,
    best_accuracy: Option<f64>,
    /// The batch size and training-set size of the run: steps mean the same images only with
    /// both unchanged.
    batch: usize,
    images: usize,
}

const TRAIN_STATE_KEY: &str = "train_state";
const OPTIMIZER_PREFIX: &str = "optimizer.";

impl TrainState {
    fn to_json(&self) -> String {
        json!({
            "epoch": self.epoch,
            "step": self.step,
            "optimizer": self.optimizer,
            "seed": self.seed,
            "best_accuracy": self.best_accuracy,
            "batch": self.batch,
            "images": self.images,
        })
        .to_string()
    }

    fn from_json(text: &str, path: &Path) -> Result<Self> {
        let bad = || Error::Weights {
            path: path.display().to_string(),
            message: format!("{TRAIN_STATE_KEY} metadata {text:?} is not a training state"),
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|_| bad())?;
        let count = |key: &str| value[key].as_u64().map(|v| v as usize).ok_or_else(bad);
        Ok(Self {
            epoch: count("epoch")?,
            step: count("step")?,
            optimizer: value["optimizer"].as_str().ok_or_else(bad)?.to_string(),
            seed: value["seed"].as_u64().ok_or_else(bad)?,
            best_accuracy: value["best_accuracy"].as_f64(),
            batch: count("batch")?,
            images: count("images")?,
        })
    }
}

/// `gradlens train`'s flags, used as they are parsed.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[arg(long, default_value = "resnet18")]
    pub arch: String,
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Pretrained weights (ImageNet, from tools/export_torchvision.py): transfer learning.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// One input channel (with --weights, the first convolution is adapted from RGB).
    #[arg(long)]
    pub grayscale: bool,
    /// The input side images are resized to (at most 4096, what checkpoints may record).
    #[arg(long, default_value_t = 224, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub size: u32,
    /// ResNets from scratch: the first stage's width (torchvision: 64; narrower for small data).
    /// With --weights or --resume, the checkpoint's.
    #[arg(long, default_value_t = 64)]
    pub width: usize,
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: u32,
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerKind,
    /// Parameter-name prefixes to keep fixed (repeatable): `--freeze features` etc.
    #[arg(long)]
    pub freeze: Vec<String>,
    /// Augmentations, comma-separated: flip, rotate (quarter turns), crop (shifts of up
    /// to 1/8 of the side, borders mirrored), intensity (contrast and brightness ±10%).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub augment: Vec<Augmentation>,
    /// Continue from a checkpoint. Ctrl-C leaves one, <out stem>.interrupted.safetensors,
    /// with the optimiser's state and the position in the run: training continues exactly
    /// where it stopped. Any other checkpoint of the same model and data starts a new run
    /// from its weights.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stop after this many optimiser steps of this run and leave the checkpoint Ctrl-C leaves,
    /// for jobs under a scheduler's time limit: `--resume` continues exactly where it stopped.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub stop_after_steps: Option<u64>,
    /// `balanced`: weight the loss by inverse class frequency.
    #[arg(long, value_enum)]
    pub class_weights: Option<ClassWeights>,
    /// Held-out fraction when DIR has no train/ and val/ folders.
    #[arg(long, default_value_t = 0.2)]
    pub val_split: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Check every layer's output (and gradient) for NaN and Inf and name the first layer
    /// that produced one (slower: one extra pass per tensor).
    #[arg(long)]
    pub check_finite: bool,
}

/// How the loss weighs the classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClassWeights {
    /// Inverse class frequency.
    Balanced,
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let size = args.size as usize;
    let (epochs, batch) = (args.epochs as usize, args.batch as usize);
    let gpu = Gpu::new()?;
    let (train, val) = training_split(&args.data, args.val_split, args.seed)?;
    if train.paths.is_empty() || val.paths.is_empty() {
        return Err(invalid(format!(
            "{} training and {} validation images: both must be non-empty",
            train.paths.len(),
            val.paths.len()
        )));
    }
    let channels = if args.grayscale { 1 } else { 3 };
    let classes = train.classes.len();
    let sizing = Sizing::Whole { size };
    let t = Instant::now();
    let train_images = decode(&train, channels, &sizing)?;
    let val_images = decode(&val, channels, &sizing)?;
    println!(
        "{} training and {} validation images of {classes} classes ({}), {}×{} ({:.1} s to decode)",
        train.paths.len(),
        val.paths.len(),
        train.classes.join(", "),
        size,
        size,
        t.elapsed().as_secs_f64()
    );

    let mut resumed_state: Option<(TrainState, Vec<(String, Tensor)>)> = None;
    // Pretrained weights keep the normalisation they were trained with (a gray model made from
    // RGB weights gets gradlens's gray one); a resumed run its checkpoint's; from scratch, the
    // training set's own.
    let loaded = match (&args.weights, &args.resume) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "--weights and --resume exclude each other".to_string(),
            ));
        }
        (None, Some(path)) => {
            let mut file = WeightsFile::open(path)?;
            let resumed = gradlens::validate::model_info(&gpu, &file, Some(&args.arch))?;
            if let Some(text) = file.metadata().get(TRAIN_STATE_KEY) {
                let state = TrainState::from_json(text, path)?;
                let mut tensors = Vec::new();
                for name in file.names().filter(|n| n.starts_with(OPTIMIZER_PREFIX)) {
                    let host = file.get(name).expect("a listed name");
                    let tensor = Tensor::from_slice(&gpu, host.dims.clone(), &host.data)?;
                    tensors.push((name[OPTIMIZER_PREFIX.len()..].to_string(), tensor));
                }
                file.remove_prefix(OPTIMIZER_PREFIX);
                resumed_state = Some((state, tensors));
            }
            // The checkpoint's width (a run from narrow --weights needs no --width to resume).
            let config = ModelConfig {
                in_channels: channels,
                classes,
                seed: args.seed,
                ..resumed.config
            };
            let mut store = ParamStore::new(&gpu);
            let model = build(&args.arch, &mut store, &config)?;
            file.load_into(&mut store, model.optional_prefixes())?;
            let info = ModelInfo {
                arch: args.arch.clone(),
                config,
                class_names: train.classes.clone(),
                preprocess: Preprocess {
                    channels,
                    sizing,
                    mean: resumed.preprocess.mean,
                    std: resumed.preprocess.std,
                },
            };
            LoadedModel { info, store, model }
        }
        (weights, None) => {
            let checkpoint = weights.as_deref().map(WeightsFile::open).transpose()?;
            let spec = FineTuneSpec {
                arch: args.arch.clone(),
                classes: train.classes.clone(),
                channels,
                size,
                width: args.width,
                seed: args.seed,
            };
            fine_tune_model(&gpu, checkpoint, &spec, Trainable::All, || {
                channel_statistics(&train_images.images, channels)
            })?
        }
    };
    let LoadedModel {
        info,
        mut store,
        model,
    } = loaded;
    for prefix in &args.freeze {
        store.freeze(prefix)?;
    }
    let class_weight = match args.class_weights == Some(ClassWeights::Balanced) {
        true => Some(Tensor::from_slice(
            &gpu,
            [classes],
            &balanced_weights(&train.labels, classes),
        )?),
        false => None,
    };
    let mut optimizer: Box<dyn Optimizer> = match args.optimizer {
        OptimizerKind::Sgd => Box::new(Sgd::new(0.9, false, 1e-4)),
        OptimizerKind::Adam => Box::new(Adam::new(0.0)),
        OptimizerKind::Adamw => Box::new(Adam::adamw(0.01)),
    };
    let (mut first_epoch, mut first_step, mut best) = (0, 0, None);
    let seed = match resumed_state {
        Some((state, tensors)) => {
            if state.optimizer != args.optimizer.name() {
                return Err(invalid(format!(
                    "the checkpoint continues a run with --optimizer {}, not {}",
                    state.optimizer,
                    args.optimizer.name()
                )));
            }
            if (state.batch, state.images) != (batch, train.paths.len()) {
                return Err(invalid(format!(
                    "the checkpoint continues a run of batch {} over {} training images; this \
                     one has batch {} and {} images",
                    state.batch,
                    state.images,
                    batch,
                    train.paths.len()
                )));
            }
            if state.epoch >= epochs {
                return Err(invalid(format!(
                    "the checkpoint stopped in epoch {}: --epochs {} leaves nothing to train",
                    state.epoch + 1,
                    epochs
                )));
            }
            optimizer.load_state(tensors)?;
            (first_epoch, first_step, best) = (state.epoch, state.step, state.best_accuracy);
            println!(
                "resuming at epoch {} step {} (best validation accuracy so far: {})",
                state.epoch + 1,
                state.step + 1,
                best.map_or("none".into(), |b| format!("{:.1}%", b * 100.0))
            );
            state.seed
        }
        None => args.seed,
    };
    let settings = RunSettings {
        epochs,
        batch,
        seed,
        augmentations: args.augment.clone(),
        learning_rate: LearningRate::warmup_cosine(
            args.lr,
            epochs * train.paths.len().div_ceil(batch),
        ),
    };
    let start = Position {
        epoch: first_epoch,
        step: first_step,
    };
    let mut run = TrainingRun::new(settings, train.paths.len(), optimizer, class_weight, start)?;
    let model = Explained {
        model: model.as_ref(),
        store: &store,
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| invalid(format!("cannot watch for Ctrl-C: {e}")))?;
    let started = Instant::now();
    let steps_before = run.steps_done();
    for epoch in first_epoch..epochs {
        let bar = progress_bar(epoch, epochs, train.paths.len());
        if epoch == first_epoch {
            bar.set_position((first_step * batch).min(train.paths.len()) as u64);
        }
        let epoch_started = Instant::now();
        let (mut loss_sum, mut steps_run, mut images_run) = (0.0, 0, 0);
        while run.next().is_some_and(|next| next.epoch == epoch) {
            let report = match pollster::block_on(run.step(
                model,
                &train_images,
                &info.preprocess,
                args.check_finite,
            )) {
                Ok(report) => report,
                Err(error) => {
                    bar.abandon();
                    return Err(match error {
                        Error::LossNotFinite { .. } => invalid(format!(
                            "{error} or saved (--check-finite names the first layer that \
                             produced it; a lower --lr often helps)"
                        )),
                        error => error,
                    });
                }
            };
            loss_sum += report.loss;
            steps_run += 1;
            images_run += report.images;
            let stop_here = args
                .stop_after_steps
                .is_some_and(|steps| (run.steps_done() - steps_before) as u64 >= steps);
            if interrupted.load(Ordering::SeqCst) || stop_here {
                bar.abandon();
                let path = interrupted_path(&args.out);
                let position = run.position();
                let state = TrainState {
                    epoch: position.epoch,
                    step: position.step,
                    optimizer: args.optimizer.name().to_string(),
                    seed,
                    best_accuracy: best,
                    batch,
                    images: train.paths.len(),
                };
                let mut metadata = info.metadata();
                metadata.insert(TRAIN_STATE_KEY.to_string(), state.to_json());
                let optimizer_state: Vec<(String, Tensor)> = run
                    .optimizer()
                    .state()?
                    .into_iter()
                    .map(|(name, tensor)| (format!("{OPTIMIZER_PREFIX}{name}"), tensor))
                    .collect();
                weights::save_with(&store, &optimizer_state, &path, &metadata)?;
                let stopped = format!(
                    "in epoch {} after step {}; the weights and optimiser state are in {}: \
                     continue with --resume {2}",
                    position.epoch + 1,
                    position.step,
                    path.display()
                );
                if stop_here {
                    println!("stopped as asked (--stop-after-steps) {stopped}");
                    return Ok(());
                }
                return Err(invalid(format!("interrupted {stopped}")));
            }
            let done = run.steps_done() - steps_before;
            let remaining = run.total_steps() - run.steps_done();
            let eta = started.elapsed().as_secs_f64() / done as f64 * remaining as f64;
            bar.inc(report.images as u64);
            bar.set_message(format!(
                "loss {:.4} · {:.1} images/s · run ETA {}",
                loss_sum / steps_run as f32,
                images_run as f64 / epoch_started.elapsed().as_secs_f64(),
                indicatif::HumanDuration(std::time::Duration::from_secs_f64(eta))
            ));
        }
        bar.finish_and_clear();
        let epoch_s = epoch_started.elapsed().as_secs_f64();
        println!(
            "epoch {}/{}: loss {:.4}, {:.1} images/s",
            epoch + 1,
            epochs,
            loss_sum / steps_run.max(1) as f32,
            images_run as f64 / epoch_s
        );
        let predicted =
            pollster::block_on(probabilities(model, &val_images, &info.preprocess, batch))?;
        let result = metrics(&predicted, &val.labels, classes);
        println!(
            "epoch {}: validation {}",
            epoch + 1,
            describe(&result, &train.classes)
        );
        if best.is_none_or(|b| result.accuracy > b) {
            best = Some(result.accuracy);
            weights::save(&store, &args.out, &info.metadata())?;
            println!("  best so far: saved {}", args.out.display());
        }
    }
    Ok(())
}

/// One epoch's bar on stderr (drawn only when it is a terminal): images done, the epoch's
/// ETA, and the message (running loss, images/s, the whole run's ETA).
fn progress_bar(epoch: usize, epochs: usize, images: usize) -> ProgressBar {
    let bar = ProgressBar::new(images as u64);
    let style = ProgressStyle::with_template(
        "epoch {prefix} [{bar:30}] {pos}/{len} images · epoch ETA {eta} · {msg}",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{}/{epochs}", epoch + 1));
    bar
}

/// `<out stem>.interrupted.safetensors` beside `out`.
fn interrupted_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or("checkpoint".into(), |s| s.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}.interrupted.safetensors"))
}

/// Decodes and sizes every image (not normalised).
pub fn decode(samples: &Samples, channels: usize, sizing: &Sizing) -> Result<LabelledImages> {
    let images = samples
        .paths
        .iter()
        .map(|path| sizing.apply(&imaging::load(path, channels)?))
        .collect::<Result<_>>()?;
    Ok(LabelledImages {
        images,
        labels: samples.labels.clone(),
    })
}

pub fn describe(result: &Metrics, classes: &[String]) -> String {
    let recall: Vec<String> = classes
        .iter()
        .zip(&result.recall)
        .map(|(c, r)| format!("{c} {:.1}%", r * 100.0))
        .collect();
    let auc = result
        .roc_auc
        .map_or(String::new(), |auc| format!(", ROC AUC {auc:.3}"));
    format!(
        "accuracy {:.1}%, recall {}{auc}",
        result.accuracy * 100.0,
        recall.join(", ")
    )
}

fn invalid(message: String) -> Error {
    Error::InvalidArgument {
        op: "train",
        message,
    }
}

/// `gradlens evaluate`: a checkpoint on an ImageFolder (DIR/val if it exists, else DIR).
pub fn evaluate(weights: &Path, data: &Path, json: bool) -> Result<()> {
    let gpu = Gpu::new()?;
    let loaded = super::model::load(&gpu, weights, None)?;
    let dir = if data.join("val").is_dir() {
        data.join("val")
    } else {
        data.to_path_buf()
    };
    let samples = gradlens::train::image_folder::scan(&dir)?;
    if samples.classes != loaded.info.class_names {
        return Err(Error::Image {
            path: dir.display().to_string(),
            message: format!(
                "classes {:?}, the checkpoint's {:?}",
                samples.classes, loaded.info.class_names
            ),
        });
    }
    let preprocess = &loaded.info.preprocess;
    let images = decode(&samples, preprocess.channels, &preprocess.sizing)?;
    let explained = Explained {
        model: loaded.model.as_ref(),
        store: &loaded.store,
    };
    let predicted = pollster::block_on(probabilities(explained, &images, preprocess, 16))?;
    let result = metrics(&predicted, &samples.labels, samples.classes.len());
    if json {
        println!(
            "{}",
            serde_json::json!({
                "accuracy": result.accuracy,
                "recall": result.recall,
                "confusion": result.confusion,
                "roc_auc": result.roc_auc,
                "classes": samples.classes,
                "images": samples.paths.len(),
            })
        );
    } else {
        println!(
            "{} images: {}",
            samples.paths.len(),
            describe(&result, &samples.classes)
        );
        println!(
            "confusion (rows: true class, columns: predicted): {:?}",
            result.confusion
        );
    }
    Ok(())
}
