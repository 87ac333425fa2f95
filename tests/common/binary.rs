//! Driving the `gradlens` binary as a user would: a scratch folder per test, the binary run
//! with the default tiles (whatever this machine's tuning file holds), and a small checkpoint
//! to run it on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gradlens::checkpoint::ModelInfo;
use gradlens::imaging::Preprocess;
use gradlens::models::{ModelConfig, build};
use gradlens::nn::ParamStore;

/// A folder for one test of `suite`, named by the process so that runs do not collide.
pub fn folder(suite: &str, test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradlens-{suite}-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn gradlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gradlens"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("GRADLENS_TUNING_FILE", "")
        .output()
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An untrained narrow ResNet-18 (width 8) of two classes, `preprocess`'s channels in, saved
/// with its metadata as `dir/model.safetensors`.
pub fn narrow_checkpoint(dir: &Path, class_names: [&str; 2], preprocess: Preprocess) -> PathBuf {
    let config = ModelConfig {
        in_channels: preprocess.channels,
        classes: 2,
        width: 8,
        ..ModelConfig::default()
    };
    let mut store = ParamStore::new(super::gpu());
    build("resnet18", &mut store, &config).unwrap();
    let info = ModelInfo {
        arch: "resnet18".to_string(),
        config,
        class_names: class_names.map(str::to_string).to_vec(),
        preprocess,
    };
    let weights = dir.join("model.safetensors");
    gradlens::weights::save(&store, &weights, &info.metadata()).unwrap();
    weights
}
