//! Fine-tuning fixtures: the demo checkpoint made ready to fine-tune, and lesion images at
//! its side.

use std::path::Path;

use gradlens::checkpoint::LoadedModel;
use gradlens::imaging::Planes;
use gradlens::nn::ParamStore;
use gradlens::train::transfer::{FineTuneSpec, Trainable, fine_tune_model};
use gradlens::train::{LabelledImages, SyntheticLesions};
use gradlens::weights::WeightsFile;

use super::gpu;

/// The browser page's demo checkpoint: a gray ResNet-18 of width 8 at 48 pixels.
pub const DEMO: &str = "web/demo/lesions.safetensors";
pub const SIDE: usize = 48;

/// The demo's lesion task at the demo checkpoint's side: `count` images from `first`.
pub fn lesions(first: u64, count: usize) -> LabelledImages {
    let batch = SyntheticLesions {
        size: SIDE,
        seed: 11,
        ..SyntheticLesions::default()
    }
    .generate(first, count);
    let plane = SIDE * SIDE;
    LabelledImages {
        images: (0..count)
            .map(|i| Planes {
                channels: 1,
                height: SIDE,
                width: SIDE,
                data: batch.images[i * plane..(i + 1) * plane].to_vec(),
            })
            .collect(),
        labels: batch.labels,
    }
}

/// The demo checkpoint with a new head for `classes`, `trainable` parts training.
pub fn demo_model(trainable: Trainable, classes: &[&str]) -> LoadedModel {
    let spec = FineTuneSpec {
        arch: "resnet18".into(),
        classes: classes.iter().map(|c| c.to_string()).collect(),
        channels: 1,
        size: SIDE,
        width: 64,
        seed: 3,
    };
    let file = WeightsFile::open(Path::new(DEMO)).unwrap();
    fine_tune_model(gpu(), Some(file), &spec, trainable, || {
        unreachable!("a checkpoint has its normalisation")
    })
    .unwrap()
}

/// A tensor's values as bits, for exact comparisons.
pub fn bits(store: &ParamStore, name: &str) -> Vec<u32> {
    let tensor = store.get(name).unwrap().to_vec().unwrap();
    tensor.iter().map(|v| v.to_bits()).collect()
}
