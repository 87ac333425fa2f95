//! Training: optimisers, learning-rate schedules and the synthetic lesion data set.

pub mod augment;
pub mod image_folder;
pub mod metrics;
pub mod optim;
pub mod schedule;
pub mod synthetic;

pub use optim::{Adam, Optimizer, Sgd, clip_grad_norm};
pub use schedule::{LearningRate, Schedule};
pub use synthetic::{LesionBatch, SyntheticLesions};
