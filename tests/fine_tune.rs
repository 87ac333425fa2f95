//! Fine-tuning as the browser page does it (src/train/{image_folder,zip_folder,transfer,run}.rs):
//! the ImageFolder read from relative paths and zips, the model made from a checkpoint, a run
//! that learns while frozen weights stay bit for bit, the batch fitted to a memory budget, and
//! the exported checkpoint's bytes.

mod common;

use std::io::Write;
use std::path::Path;

use common::binary::folder;
use common::fine_tune::{DEMO, bits, demo_model, lesions};
use common::gpu;
use gradlens::checkpoint::LoadedModel;
use gradlens::saliency::Explained;
use gradlens::train::evaluate::probabilities;
use gradlens::train::image_folder::{list, training_split};
use gradlens::train::metrics::metrics;
use gradlens::train::transfer::{FineTuneSpec, Trainable, fine_tune_model};
use gradlens::train::{
    Adam, LabelledImages, LearningRate, Position, RunSettings, TrainingRun, zip_folder,
};
use gradlens::weights::{self, WeightsFile, checkpoint_bytes};

fn write_png(path: &Path, value: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let pixels: Vec<u8> = (0..64).map(|i| value.wrapping_add(i)).collect();
    image::GrayImage::from_raw(8, 8, pixels)
        .unwrap()
        .save(path)
        .unwrap();
}

/// Relative paths under `dir`, '/'-separated, prefixed with `root/` as a browser names a
/// picked folder's files.
fn relative_paths(dir: &Path, root: &str) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out)
            } else {
                out.push(path)
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    let mut paths: Vec<String> = files
        .iter()
        .map(|f| {
            let rel = f
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            format!("{root}/{rel}")
        })
        .collect();
    // A browser lists files in no particular order.
    paths.reverse();
    paths
}

#[test]
fn a_listed_folder_has_the_classes_and_split_of_the_folder_on_disk() {
    let dir = folder("fine_tune", "listed");
    for (class, count) in [("benign", 7), ("malignant", 5), ("normal", 6)] {
        for i in 0..count {
            write_png(&dir.join(class).join(format!("{i}.png")), i as u8 * 10);
        }
    }
    std::fs::write(dir.join("benign").join(".DS_Store"), b"x").unwrap();
    // Beside the class folders and below one: passed over, on disk as in the list.
    write_png(&dir.join("cover.png"), 3);
    write_png(&dir.join("normal").join("crops").join("0.png"), 3);
    std::fs::write(dir.join("normal").join("notes.txt"), b"x").unwrap();
    let paths = relative_paths(&dir, "picked");
    let listed = list(&paths).unwrap();
    let (train, val) = training_split(&dir, 0.3, 7).unwrap();
    assert_eq!(listed.classes, train.classes);
    assert!(!listed.presplit);
    let (listed_train, listed_val) = listed.split(0.3, 7);
    let names = |files: &[&gradlens::train::image_folder::ListedFile]| -> Vec<(String, usize)> {
        files
            .iter()
            .map(|f| {
                (
                    paths[f.index].trim_start_matches("picked/").to_string(),
                    f.label,
                )
            })
            .collect()
    };
    let on_disk = |samples: &gradlens::train::image_folder::Samples| -> Vec<(String, usize)> {
        samples
            .paths
            .iter()
            .zip(&samples.labels)
            .map(|(p, &l)| {
                (
                    p.strip_prefix(&dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                    l,
                )
            })
            .collect()
    };
    assert_eq!(names(&listed_train), on_disk(&train));
    assert_eq!(names(&listed_val), on_disk(&val));
    assert!(!val.paths.is_empty() && !train.paths.is_empty());

    // train/ and val/ hold the split; masks/ beside them is passed over.
    let split = folder("fine_tune", "listed_split");
    for (part, count) in [("train", 4), ("val", 2)] {
        for class in ["a", "b"] {
            for i in 0..count {
                write_png(&split.join(part).join(class).join(format!("{i}.png")), 1);
            }
        }
    }
    write_png(
        &split.join("masks").join("train").join("b").join("0.png"),
        1,
    );
    let paths = relative_paths(&split, "lesions");
    let listed = list(&paths).unwrap();
    assert!(listed.presplit);
    assert_eq!(listed.classes, ["a", "b"]);
    let (train, val) = listed.split(0.9, 0);
    assert_eq!((train.len(), val.len()), (8, 4));
    assert!(val.iter().all(|f| paths[f.index].contains("/val/")));

    // Images outside any class folder are no data set; one class folder is one class.
    let error = list(&["root.png".to_string()]).unwrap_err();
    assert!(
        error.to_string().contains("no images inside class folders"),
        "{error}"
    );
    let one = list(&["x/a/1.png".to_string(), "x/a/2.png".to_string()]).unwrap();
    assert_eq!((one.classes, one.files.len()), (vec!["a".to_string()], 2));
    let error = list(&["a/notes.txt".to_string()]).unwrap_err();
    assert!(error.to_string().contains("no PNG, JPEG"), "{error}");
}

#[test]
fn zip_entries_are_the_archived_images() {
    let mut bytes = Vec::new();
    {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(&mut bytes));
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        writer.add_directory("set/a/", stored).unwrap();
        writer.start_file("set/a/1.png", deflated).unwrap();
        writer.write_all(&[1, 2, 3, 4, 5]).unwrap();
        writer.start_file("set/b/2.JPG", stored).unwrap();
        writer.write_all(&[9; 100]).unwrap();
        writer
            .start_file("__MACOSX/set/a/._1.png", deflated)
            .unwrap();
        writer.write_all(&[0; 4096]).unwrap();
        writer.start_file("set/readme.md", deflated).unwrap();
        writer.write_all(b"not an image").unwrap();
        writer.finish().unwrap();
    }
    let entries = zip_folder::image_entries(&bytes, "set.zip").unwrap();
    assert_eq!(
        entries,
        vec![
            ("set/a/1.png".to_string(), vec![1, 2, 3, 4, 5]),
            ("set/b/2.JPG".to_string(), vec![9; 100]),
        ]
    );
    // A damaged entry fails its CRC check; something else is not a zip at all.
    let at = bytes.windows(5).position(|w| w == [9; 5]).unwrap();
    let mut damaged = bytes.clone();
    damaged[at] = 8;
    let error = zip_folder::image_entries(&damaged, "set.zip").unwrap_err();
    assert!(
        error.to_string().starts_with("set.zip: set/b/2.JPG"),
        "{error}"
    );
    let error = zip_folder::image_entries(b"PK\x03\x04 nothing", "bad.zip").unwrap_err();
    assert!(
        error.to_string().starts_with("bad.zip: not a readable zip"),
        "{error}"
    );
}

fn accuracy(loaded: &LoadedModel, data: &LabelledImages) -> f64 {
    let model = Explained {
        model: loaded.model.as_ref(),
        store: &loaded.store,
    };
    let p = pollster::block_on(probabilities(model, data, &loaded.info.preprocess, 32)).unwrap();
    metrics(&p, &data.labels, 2).accuracy
}

#[test]
fn fine_tuning_the_head_learns_and_leaves_the_frozen_weights_bit_for_bit() {
    let loaded = demo_model(Trainable::Classifier, &["clear", "lesion"]);
    let demo = WeightsFile::open(Path::new(DEMO)).unwrap();
    // The checkpoint's features and normalisation, a new head.
    assert_eq!(loaded.info.preprocess.mean, demo_mean(&demo));
    assert_eq!(
        bits(&loaded.store, "layer3.1.conv2.weight"),
        host_bits(&demo, "layer3.1.conv2.weight")
    );
    assert_ne!(
        bits(&loaded.store, "fc.weight"),
        host_bits(&demo, "fc.weight")
    );
    let trainable: Vec<&str> = loaded
        .store
        .parameters()
        .map(|(name, _)| name)
        .filter(|name| loaded.store.is_trainable(name))
        .collect();
    assert_eq!(trainable, ["fc.bias", "fc.weight"]);

    let (train, val) = (lesions(0, 96), lesions(1000, 64));
    let before = accuracy(&loaded, &val);
    // Every parameter but the head's (the BatchNorm running statistics, buffers, move in
    // training mode as PyTorch's do).
    let frozen = |store: &gradlens::nn::ParamStore| -> Vec<(String, Vec<u32>)> {
        let names: Vec<String> = store
            .parameters()
            .map(|(name, _)| name.to_string())
            .filter(|name| !name.starts_with("fc."))
            .collect();
        names
            .into_iter()
            .map(|name| {
                let values = bits(store, &name);
                (name, values)
            })
            .collect()
    };
    let frozen_before = frozen(&loaded.store);
    let head_before = bits(&loaded.store, "fc.weight");
    let settings = RunSettings {
        epochs: 3,
        batch: 16,
        seed: 5,
        augmentations: vec![gradlens::train::Augmentation::Flip],
        learning_rate: LearningRate::warmup_cosine(3e-3, 18),
    };
    let mut run = TrainingRun::new(
        settings,
        train.len(),
        Box::new(Adam::new(0.0)),
        None,
        Position { epoch: 0, step: 0 },
    )
    .unwrap();
    assert_eq!(run.total_steps(), 18);
    let model = Explained {
        model: loaded.model.as_ref(),
        store: &loaded.store,
    };
    let mut losses = Vec::new();
    while run.next().is_some() {
        let report =
            pollster::block_on(run.step(model, &train, &loaded.info.preprocess, false)).unwrap();
        losses.push(report.loss);
    }
    assert_eq!(losses.len(), 18);
    let after = accuracy(&loaded, &val);
    assert_eq!(frozen_before.len(), 60);
    assert!(
        frozen(&loaded.store) == frozen_before,
        "a frozen weight changed"
    );
    assert_ne!(bits(&loaded.store, "fc.weight"), head_before);
    assert!(
        after >= 0.9 && after > before,
        "validation accuracy {before} before, {after} after"
    );
    let mean = |l: &[f32]| l.iter().sum::<f32>() / l.len() as f32;
    assert!(
        mean(&losses[12..]) < mean(&losses[..6]),
        "losses {losses:?}"
    );
}

fn demo_mean(file: &WeightsFile) -> Vec<f32> {
    serde_json::from_str(&file.metadata()["mean"]).unwrap()
}

fn host_bits(file: &WeightsFile, name: &str) -> Vec<u32> {
    file.get(name)
        .unwrap()
        .data
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn an_rgb_checkpoint_fine_tunes_gray_with_its_last_block() {
    // A narrow RGB ResNet-18 checkpoint with ImageNet's normalisation, as gradlens writes one.
    let spec = FineTuneSpec {
        arch: "resnet18".into(),
        classes: (0..5).map(|c| format!("c{c}")).collect(),
        channels: 3,
        size: 32,
        width: 8,
        seed: 1,
    };
    let rgb = fine_tune_model(gpu(), None, &spec, Trainable::All, || {
        (vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225])
    })
    .unwrap();
    let metadata = rgb.info.metadata();
    let bytes = pollster::block_on(checkpoint_bytes(&rgb.store, &[], &metadata, "rgb")).unwrap();
    // The bytes are what `weights::save` writes.
    let path = folder("fine_tune", "rgb_checkpoint").join("rgb.safetensors");
    weights::save(&rgb.store, &path, &metadata).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    let gray_spec = FineTuneSpec {
        channels: 1,
        classes: vec!["x".into(), "y".into()],
        ..spec
    };
    let file = WeightsFile::from_bytes(&bytes, "rgb").unwrap();
    let gray = fine_tune_model(
        gpu(),
        Some(file),
        &gray_spec,
        Trainable::LastBlock,
        || unreachable!(),
    )
    .unwrap();
    assert_eq!(gray.store.get("conv1.weight").unwrap().dims(), [8, 1, 7, 7]);
    assert_eq!(gray.store.get("fc.weight").unwrap().dims(), [2, 64]);
    assert_eq!(gray.info.preprocess.channels, 1);
    assert_eq!(gray.info.config.width, 8);
    assert_eq!(
        bits(&gray.store, "layer2.0.conv1.weight"),
        bits(&rgb.store, "layer2.0.conv1.weight")
    );
    for (name, _) in gray.store.parameters() {
        let trains = name.starts_with("layer4.") || name.starts_with("fc.");
        assert_eq!(gray.store.is_trainable(name), trains, "{name}");
    }
    // A gray checkpoint cannot take RGB images.
    let gray_bytes = pollster::block_on(checkpoint_bytes(
        &gray.store,
        &[],
        &gray.info.metadata(),
        "gray",
    ))
    .unwrap();
    let rgb_again = FineTuneSpec {
        channels: 3,
        ..gray_spec
    };
    let file = WeightsFile::from_bytes(&gray_bytes, "gray.safetensors").unwrap();
    let error = fine_tune_model(
        gpu(),
        Some(file),
        &rgb_again,
        Trainable::All,
        || unreachable!(),
    )
    .err()
    .unwrap();
    assert!(
        error
            .to_string()
            .contains("1 input channels cannot be fine-tuned on 3-channel"),
        "{error}"
    );
}

#[test]
fn a_checkpoint_without_metadata_fine_tunes_with_imagenet_normalisation() {
    // A bare torchvision state dict (saved without tools/export_torchvision.py's metadata):
    // full-width weights, and not even the architecture named.
    let spec = FineTuneSpec {
        arch: "resnet18".into(),
        classes: (0..1000).map(|c| format!("c{c}")).collect(),
        channels: 3,
        size: 64,
        width: 64,
        seed: 2,
    };
    let imagenet = fine_tune_model(gpu(), None, &spec, Trainable::All, || {
        (vec![0.0; 3], vec![1.0; 3])
    })
    .unwrap();
    let bytes = pollster::block_on(checkpoint_bytes(
        &imagenet.store,
        &[],
        &Default::default(),
        "export",
    ))
    .unwrap();
    let classes = FineTuneSpec {
        classes: vec!["a".into(), "b".into(), "c".into()],
        ..spec.clone()
    };
    let file = WeightsFile::from_bytes(&bytes, "resnet18.safetensors").unwrap();
    let rgb = fine_tune_model(
        gpu(),
        Some(file),
        &classes,
        Trainable::Classifier,
        || unreachable!(),
    )
    .unwrap();
    assert_eq!(rgb.info.preprocess.mean, [0.485, 0.456, 0.406]);
    assert_eq!(rgb.store.get("fc.weight").unwrap().dims(), [3, 512]);
    assert_eq!(
        bits(&rgb.store, "layer4.1.conv2.weight"),
        bits(&imagenet.store, "layer4.1.conv2.weight")
    );
    let gray = FineTuneSpec {
        channels: 1,
        ..classes
    };
    let file = WeightsFile::from_bytes(&bytes, "resnet18.safetensors").unwrap();
    let gray = fine_tune_model(
        gpu(),
        Some(file),
        &gray,
        Trainable::Classifier,
        || unreachable!(),
    )
    .unwrap();
    assert_eq!(
        gray.store.get("conv1.weight").unwrap().dims(),
        [64, 1, 7, 7]
    );
    assert_eq!(
        gray.info.preprocess.mean,
        [gradlens::models::adapt::GRAY_MEAN]
    );
}
