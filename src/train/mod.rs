//! Training: a run step by step (shared by `gradlens train` and the browser page), its data,
//! optimisers, learning-rate schedules, metrics and the synthetic lesion data set.

pub mod augment;
pub mod data;
pub mod evaluate;
pub mod image_folder;
pub mod metrics;
pub mod optim;
pub mod run;
pub mod schedule;
pub mod synthetic;
pub mod transfer;
pub mod zip_folder;

pub use augment::Augmentation;
pub use data::LabelledImages;
pub use optim::{Adam, Optimizer, Sgd, clip_grad_norm};
pub use run::{BatchFit, Position, RunSettings, StepReport, TrainingRun, fit_batch};
pub use schedule::{LearningRate, Schedule};
pub use synthetic::{LesionBatch, SyntheticLesions};
