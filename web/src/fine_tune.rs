//! Fine-tuning in the page: an ImageFolder (a picked folder's files or a zip) becomes a model
//! trained on the user's GPU with the library's own training run (`gradlens::train`), the
//! same steps `gradlens train` takes; then validation, explanations of the misclassified
//! images, and the checkpoint as safetensors bytes. The page runs all of it in a worker
//! (web/train_worker.js), one awaited step at a time, so it can pause, resume and cancel
//! between steps.

use gradlens::Tensor;
use gradlens::checkpoint::{LoadedModel, ModelInfo};
use gradlens::imaging::{self, Planes, Sizing};
use gradlens::saliency::{Explained, Method, MethodSettings, method_maps};
use gradlens::train::data::channel_statistics;
use gradlens::train::evaluate::probabilities;
use gradlens::train::image_folder::{ListedFolder, list};
use gradlens::train::metrics::metrics;
use gradlens::train::transfer::{FineTuneSpec, Trainable, fine_tune_model};
use gradlens::train::{
    Adam, Augmentation, BatchFit, LabelledImages, LearningRate, Optimizer, Position, RunSettings,
    Sgd, TrainingRun, fit_batch, zip_folder,
};
use gradlens::weights::{WeightsFile, checkpoint_bytes};
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;

use crate::{Analysis, Session, argmax, overlay_rgba, planes_rgba, to_js};

/// The files of an ImageFolder, as the page read them.
#[wasm_bindgen]
#[derive(Default)]
pub struct Dataset {
    files: Vec<(String, Vec<u8>)>,
}

#[wasm_bindgen]
impl Dataset {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Dataset {
        Dataset::default()
    }

    /// One file of a picked folder, by its path relative to the folder's parent.
    pub fn add(&mut self, path: String, bytes: Vec<u8>) {
        self.files.push((path, bytes));
    }

    /// The image entries of a zip archive; returns how many were added.
    #[wasm_bindgen(js_name = addZip)]
    pub fn add_zip(&mut self, bytes: &[u8], name: &str) -> Result<u32, JsError> {
        let entries = zip_folder::image_entries(bytes, name).map_err(to_js)?;
        let added = entries.len() as u32;
        self.files.extend(entries);
        Ok(added)
    }

    /// JSON: the classes, images per class, and whether the folder came split into train/
    /// and val/.
    pub fn describe(&self) -> Result<String, JsError> {
        let listed = self.listed()?;
        let mut counts = vec![0usize; listed.classes.len()];
        for file in &listed.files {
            counts[file.label] += 1;
        }
        Ok(json!({
            "classes": listed.classes,
            "counts": counts,
            "images": listed.files.len(),
            "presplit": listed.presplit,
        })
        .to_string())
    }

    /// The `k`-th image of class `class` as RGBA, `side` × `side` (the whole image resized);
    /// empty when the class has fewer images.
    pub fn thumbnail(&self, class: usize, k: usize, side: usize) -> Result<Vec<u8>, JsError> {
        let listed = self.listed()?;
        let Some(file) = listed.files.iter().filter(|f| f.label == class).nth(k) else {
            return Ok(Vec::new());
        };
        let (path, bytes) = &self.files[file.index];
        let planes = sized(bytes, path, 3, side).map_err(to_js)?;
        Ok(planes_rgba(&planes))
    }

    fn listed(&self) -> Result<ListedFolder, JsError> {
        let paths: Vec<String> = self.files.iter().map(|(path, _)| path.clone()).collect();
        list(&paths).map_err(to_js)
    }
}

/// A fine-tuning run in progress and its model.
#[wasm_bindgen]
pub struct FineTune {
    loaded: LoadedModel,
    train: LabelledImages,
    val: LabelledImages,
    val_paths: Vec<String>,
    options: Options,
    /// Set by `fit`: the batch settled on and the run.
    fit: Option<BatchFit>,
    run: Option<TrainingRun>,
}

/// The page's choices (JSON from web/train.js).
struct Options {
    /// From scratch, and for a checkpoint that does not name its architecture (a bare
    /// torchvision state dict).
    arch: String,
    /// ResNets from scratch: the first stage's width.
    width: usize,
    trainable: Trainable,
    grayscale: bool,
    /// The input side; `None`: the checkpoint's (112 from scratch).
    size: Option<usize>,
    epochs: usize,
    batch: usize,
    learning_rate: f32,
    optimizer: String,
    memory_bytes: u64,
    val_fraction: f64,
    seed: u64,
    augmentations: Vec<Augmentation>,
}

impl Options {
    /// Reads and checks the options, each with its default when absent.
    fn parse(text: &str) -> Result<Options, JsError> {
        let json: Value =
            serde_json::from_str(text).map_err(|e| JsError::new(&format!("options: {e}")))?;
        let number = |key: &str, default: f64| json[key].as_f64().unwrap_or(default);
        let count = |key: &str, default: usize, most: usize| -> Result<usize, JsError> {
            let value = number(key, default as f64);
            match value.fract() == 0.0 && (1.0..=most as f64).contains(&value) {
                true => Ok(value as usize),
                false => Err(JsError::new(&format!(
                    "{key} {value} is not a whole number from 1 to {most}"
                ))),
            }
        };
        let text = |key: &str, default: &str| json[key].as_str().unwrap_or(default).to_string();
        let trainable_name = text("trainable", "classifier");
        let trainable = Trainable::from_name(&trainable_name).ok_or_else(|| {
            JsError::new(&format!(
                "trainable {trainable_name:?}: classifier, last-block or all"
            ))
        })?;
        let augmentations = json["augment"]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .map(|name| {
                        let name = name.as_str().unwrap_or_default();
                        Augmentation::from_name(name)
                            .ok_or_else(|| JsError::new(&format!("no augmentation {name:?}")))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let learning_rate = number("lr", 1e-3) as f32;
        if !(learning_rate > 0.0 && learning_rate.is_finite()) {
            return Err(JsError::new("the learning rate must be a positive number"));
        }
        let val_fraction = number("val_fraction", 0.2);
        if !(0.0..1.0).contains(&val_fraction) {
            return Err(JsError::new("the validation share must be in [0, 1)"));
        }
        let optimizer = text("optimizer", "adam");
        if !["adam", "adamw", "sgd"].contains(&optimizer.as_str()) {
            return Err(JsError::new(&format!(
                "optimizer {optimizer:?}: adam, adamw or sgd"
            )));
        }
        Ok(Options {
            arch: text("arch", "resnet18"),
            width: count("width", 64, 512)?,
            trainable,
            grayscale: json["grayscale"].as_bool().unwrap_or(false),
            size: match json["size"].is_null() {
                true => None,
                false => Some(count("size", 0, 1024)?),
            },
            epochs: count("epochs", 5, 10_000)?,
            batch: count("batch", 16, 4096)?,
            learning_rate,
            optimizer,
            memory_bytes: (count("memory_mib", 2048, 1 << 20)? as u64) << 20,
            val_fraction,
            seed: number("seed", 0.0) as u64,
            augmentations,
        })
    }
}

#[wasm_bindgen]
impl Session {
    /// Decodes the data set and builds the model to fine-tune: from `checkpoint` (gradlens's,
    /// `tools/export_torchvision.py`'s, or a bare state dict of the chosen architecture) with a
    /// new head for the data's
    /// classes, or from scratch when it is absent. `options` is JSON: arch, trainable
    /// (classifier, last-block, all), grayscale, size, width, epochs, batch, lr, optimizer
    /// (adam, adamw, sgd), memory_mib, val_fraction, seed, augment (names).
    #[wasm_bindgen(js_name = prepareFineTune)]
    pub fn prepare_fine_tune(
        &self,
        dataset: &Dataset,
        options: &str,
        checkpoint: Option<Vec<u8>>,
        checkpoint_name: &str,
    ) -> Result<FineTune, JsError> {
        let options = Options::parse(options)?;
        let listed = dataset.listed()?;
        if listed.classes.len() < 2 {
            return Err(JsError::new(&format!(
                "fine-tuning needs at least two classes; the data has {:?}",
                listed.classes
            )));
        }
        let checkpoint = checkpoint
            .map(|bytes| WeightsFile::from_bytes(&bytes, checkpoint_name))
            .transpose()
            .map_err(to_js)?;
        let (arch, checkpoint_channels, checkpoint_size) = match &checkpoint {
            Some(file) => {
                let named = file.metadata().contains_key("arch");
                let info = ModelInfo::from_file(file, (!named).then_some(options.arch.as_str()))
                    .map_err(to_js)?;
                (
                    info.arch.clone(),
                    info.preprocess.channels,
                    info.preprocess.input_size(),
                )
            }
            None => (options.arch.clone(), 3, 112),
        };
        let channels = match options.grayscale {
            true => 1,
            false => checkpoint_channels,
        };
        let size = options.size.unwrap_or(checkpoint_size);
        let (train_files, val_files) = listed.split(options.val_fraction, options.seed);
        if train_files.is_empty() || val_files.is_empty() {
            return Err(JsError::new(&format!(
                "{} training and {} validation images: both must be non-empty",
                train_files.len(),
                val_files.len()
            )));
        }
        let decode = |files: &[&gradlens::train::image_folder::ListedFile]| {
            let mut images = LabelledImages::default();
            let mut paths = Vec::new();
            for file in files {
                let (path, bytes) = &dataset.files[file.index];
                images
                    .images
                    .push(sized(bytes, path, channels, size).map_err(to_js)?);
                images.labels.push(file.label);
                paths.push(path.clone());
            }
            Ok::<_, JsError>((images, paths))
        };
        let (train, _) = decode(&train_files)?;
        let (val, val_paths) = decode(&val_files)?;
        let spec = FineTuneSpec {
            arch,
            classes: listed.classes.clone(),
            channels,
            size,
            width: options.width,
            seed: options.seed,
        };
        let loaded = fine_tune_model(&self.gpu, checkpoint, &spec, options.trainable, || {
            channel_statistics(&train.images, channels)
        })
        .map_err(to_js)?;
        Ok(FineTune {
            loaded,
            train,
            val,
            val_paths,
            options,
            fit: None,
            run: None,
        })
    }
}

#[wasm_bindgen]
impl FineTune {
    /// Settles the batch (the largest, from the one asked for down by halves, whose step fits
    /// the adapter's limits and the memory limit) and starts the run. JSON: the batch, its
    /// peak memory in MiB, and each larger batch refused with the reason.
    pub async fn fit(&mut self) -> Result<String, JsError> {
        let model = Explained {
            model: self.loaded.model.as_ref(),
            store: &self.loaded.store,
        };
        let preprocess = &self.loaded.info.preprocess;
        let fit = fit_batch(
            model,
            &self.train,
            preprocess,
            self.options.batch,
            self.options.memory_bytes,
        )
        .await
        .map_err(to_js)?;
        let optimizer: Box<dyn Optimizer> = match self.options.optimizer.as_str() {
            "sgd" => Box::new(Sgd::new(0.9, false, 1e-4)),
            "adamw" => Box::new(Adam::adamw(0.01)),
            _ => Box::new(Adam::new(0.0)),
        };
        let settings = RunSettings {
            epochs: self.options.epochs,
            batch: fit.batch,
            seed: self.options.seed,
            augmentations: self.options.augmentations.clone(),
            learning_rate: LearningRate::warmup_cosine(
                self.options.learning_rate,
                self.options.epochs * self.train.len().div_ceil(fit.batch),
            ),
        };
        let start = Position { epoch: 0, step: 0 };
        self.run = Some(
            TrainingRun::new(settings, self.train.len(), optimizer, None, start).map_err(to_js)?,
        );
        let summary = json!({
            "batch": fit.batch,
            "asked": self.options.batch,
            "peak_mib": fit.peak_bytes as f64 / (1 << 20) as f64,
            "refused": fit.refused.iter().map(|(batch, why)| json!({ "batch": batch, "why": why })).collect::<Vec<_>>(),
        });
        self.fit = Some(fit);
        Ok(summary.to_string())
    }

    /// JSON: the model and the data as the run sees them.
    pub fn describe(&self) -> String {
        let store = &self.loaded.store;
        let trainable: usize = store
            .parameters()
            .filter(|(name, _)| store.is_trainable(name))
            .map(|(_, tensor)| tensor.numel())
            .sum();
        let info = &self.loaded.info;
        json!({
            "arch": info.arch,
            "classes": info.class_names,
            "channels": info.preprocess.channels,
            "input_size": info.preprocess.input_size(),
            "parameters": store.parameter_count(),
            "trainable_parameters": trainable,
            "trainable": self.options.trainable.name(),
            "train_images": self.train.len(),
            "val_images": self.val.len(),
            "train_counts": self.train.class_counts(info.class_names.len()),
            "val_counts": self.val.class_counts(info.class_names.len()),
        })
        .to_string()
    }

    /// Runs the next optimiser step. JSON: its epoch and step (from 1), the loss, the images,
    /// the learning rate, the steps done and in all, and whether it ended its epoch or the run.
    pub async fn step(&mut self) -> Result<String, JsError> {
        let run = self
            .run
            .as_mut()
            .ok_or_else(|| JsError::new("call fit first"))?;
        let model = Explained {
            model: self.loaded.model.as_ref(),
            store: &self.loaded.store,
        };
        let report = run
            .step(model, &self.train, &self.loaded.info.preprocess, false)
            .await
            .map_err(to_js)?;
        let next = run.next();
        Ok(json!({
            "epoch": report.position.epoch + 1,
            "step": report.position.step + 1,
            "loss": report.loss,
            "images": report.images,
            "learning_rate": report.learning_rate,
            "steps_done": run.steps_done(),
            "total_steps": run.total_steps(),
            "epoch_finished": next.is_none_or(|n| n.epoch != report.position.epoch),
            "finished": next.is_none(),
        })
        .to_string())
    }

    /// Validation: accuracy, per-class recall, the confusion matrix (rows: true class), the
    /// ROC AUC for two classes, and each misclassified image (its index, path, class,
    /// prediction and the prediction's probability). JSON.
    pub async fn evaluate(&self) -> Result<String, JsError> {
        let classes = self.loaded.info.class_names.len();
        let predicted = self.probabilities().await?;
        let result = metrics(&predicted, &self.val.labels, classes);
        let misclassified: Vec<Value> = predicted
            .chunks(classes)
            .enumerate()
            .filter_map(|(index, row)| {
                let guess = argmax(row);
                (guess != self.val.labels[index]).then(|| {
                    json!({
                        "index": index,
                        "path": self.val_paths[index],
                        "label": self.val.labels[index],
                        "predicted": guess,
                        "probability": row[guess],
                    })
                })
            })
            .collect();
        Ok(json!({
            "accuracy": result.accuracy,
            "recall": result.recall.iter().map(|r| if r.is_finite() { json!(r) } else { Value::Null }).collect::<Vec<_>>(),
            "confusion": result.confusion,
            "roc_auc": result.roc_auc.filter(|auc| auc.is_finite()),
            "classes": self.loaded.info.class_names,
            "images": self.val.len(),
            "misclassified": misclassified,
        })
        .to_string())
    }

    /// The logits [validation images × classes] of the model as it stands (row-major), for
    /// comparing with `gradlens classify` on the exported checkpoint.
    #[wasm_bindgen(js_name = validationLogits)]
    pub async fn validation_logits(&self) -> Result<Vec<f32>, JsError> {
        let indices: Vec<usize> = (0..self.val.len()).collect();
        let mut logits = Vec::with_capacity(self.val.len() * self.loaded.info.class_names.len());
        for chunk in indices.chunks(self.batch()) {
            let x = self.inputs(chunk)?;
            logits.extend(
                gradlens::saliency::logits(self.model(), &x)
                    .await
                    .map_err(to_js)?
                    .data,
            );
        }
        Ok(logits)
    }

    /// The paths of the validation images, in the order `evaluate` and `validationLogits` use.
    #[wasm_bindgen(js_name = validationPaths)]
    pub fn validation_paths(&self) -> Vec<String> {
        self.val_paths.clone()
    }

    /// Explains validation image `index`'s score for `class` with a saliency method, on the GPU.
    pub async fn explain(
        &self,
        index: usize,
        method: &str,
        class: usize,
    ) -> Result<Analysis, JsError> {
        let method = Method::from_name(method)
            .ok_or_else(|| JsError::new(&format!("no saliency method {method:?}")))?;
        let classes = self.loaded.info.class_names.len();
        if class >= classes {
            return Err(JsError::new(&format!(
                "class {class}: the model has {classes} classes"
            )));
        }
        let x = self.inputs(&[index])?;
        let computed = method_maps(
            self.model(),
            &x,
            &[class],
            method,
            &MethodSettings::default(),
        )
        .await
        .map_err(to_js)?;
        let image = &self.val.images[index];
        let map = computed.maps.data;
        Ok(Analysis {
            summary: json!({ "method": method.name(), "class": class, "notes": computed.notes })
                .to_string(),
            // Only explained: the page has the image's prediction from `evaluate`.
            logits: Vec::new(),
            image_rgba: planes_rgba(image),
            overlay_rgba: overlay_rgba(image, &map),
            map,
            width: image.width,
            height: image.height,
        })
    }

    /// The fine-tuned model as a safetensors checkpoint, in the format `gradlens train` writes
    /// (its metadata names the architecture, classes and normalisation), for `gradlens
    /// classify --weights` or this page.
    #[wasm_bindgen(js_name = exportWeights)]
    pub async fn export_weights(&self) -> Result<Vec<u8>, JsError> {
        checkpoint_bytes(
            &self.loaded.store,
            &[],
            &self.loaded.info.metadata(),
            "the fine-tuned checkpoint",
        )
        .await
        .map_err(to_js)
    }

    fn model(&self) -> Explained<'_> {
        Explained {
            model: self.loaded.model.as_ref(),
            store: &self.loaded.store,
        }
    }

    /// Validation images `indices`, normalised, as a batch.
    fn inputs(&self, indices: &[usize]) -> Result<Tensor, JsError> {
        if let Some(index) = indices.iter().find(|&&i| i >= self.val.len()) {
            return Err(JsError::new(&format!("no validation image {index}")));
        }
        let (images, dims) = self.val.stacked(indices, &self.loaded.info.preprocess);
        Tensor::from_slice(self.loaded.store.gpu(), dims, &images).map_err(to_js)
    }

    /// The batch evaluation runs in: the one settled by `fit`, or the one asked for.
    fn batch(&self) -> usize {
        self.fit
            .as_ref()
            .map_or(self.options.batch, |fit| fit.batch)
    }

    async fn probabilities(&self) -> Result<Vec<f32>, JsError> {
        let batch = self
            .fit
            .as_ref()
            .map_or(self.options.batch, |fit| fit.batch);
        probabilities(self.model(), &self.val, &self.loaded.info.preprocess, batch)
            .await
            .map_err(to_js)
    }
}

/// An image file decoded to `channels` and resized whole to `size` × `size` (as `gradlens
/// train` sizes its images), in [0, 1].
fn sized(bytes: &[u8], path: &str, channels: usize, size: usize) -> gradlens::Result<Planes> {
    Sizing::Whole { size }.apply(&imaging::decode(bytes, path, channels)?)
}
