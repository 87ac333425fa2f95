//! The `gradlens` binary, driven as a user would: classify and saliency on PNG files with a
//! checkpoint, and bad input ending in one line and a non-zero exit.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::binary::{gradlens, text};
use common::gpu;
use gradlens::Tensor;
use gradlens::imaging::{Preprocess, Sizing};
use gradlens::models::{ModelConfig, build};
use gradlens::nn::ParamStore;
use gradlens::train::SyntheticLesions;

fn folder(test: &str) -> PathBuf {
    common::binary::folder("cli", test)
}

/// An (untrained) narrow grayscale ResNet-18 checkpoint with its metadata, and two lesion
/// images: 8-bit gray PNG and 16-bit RGB PNG.
fn fixtures(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let preprocess = Preprocess {
        channels: 1,
        sizing: Sizing::Whole { size: 40 },
        mean: vec![0.5],
        std: vec![0.25],
    };
    let weights = common::binary::narrow_checkpoint(dir, ["no lesion", "lesion"], preprocess);
    let data = SyntheticLesions {
        size: 56,
        seed: 5,
        ..SyntheticLesions::default()
    }
    .generate(0, 2);
    let plane = 56 * 56;
    let gray = dir.join("gray.png");
    let pixels: Vec<u8> = data.images[..plane]
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0) as u8)
        .collect();
    image::save_buffer(&gray, &pixels, 56, 56, image::ExtendedColorType::L8).unwrap();
    let rgb16 = dir.join("rgb16.png");
    let buffer: image::ImageBuffer<image::Rgb<u16>, Vec<u16>> =
        image::ImageBuffer::from_fn(56, 56, |x, y| {
            let v = (data.images[plane + (y * 56 + x) as usize].clamp(0.0, 1.0) * 65535.0) as u16;
            image::Rgb([v, v, v])
        });
    buffer.save(&rgb16).unwrap();
    (weights, gray, rgb16)
}

/// `source`'s checkpoint with the last layer's weight zeroed and its bias `bias`: every image's
/// logits are `bias`, so what classify and evaluate must report is known.
fn with_constant_head(source: &Path, out: &Path, bias: &[f32]) {
    let file = gradlens::weights::WeightsFile::open(source).unwrap();
    let mut loaded = gradlens::checkpoint::load(gpu(), &file, None).unwrap();
    let weight = loaded.store.get("fc.weight").unwrap().dims().to_vec();
    let zeros = Tensor::zeros(gpu(), weight).unwrap();
    loaded.store.set("fc.weight", zeros).unwrap();
    let bias = Tensor::from_slice(gpu(), [bias.len()], bias).unwrap();
    loaded.store.set("fc.bias", bias).unwrap();
    gradlens::weights::save(&loaded.store, out, file.metadata()).unwrap();
}

#[test]
fn classify_and_saliency_through_the_binary() {
    let dir = folder("run");
    let (weights, gray, rgb16) = fixtures(&dir);
    let (w, g, c) = (
        weights.to_str().unwrap(),
        gray.to_str().unwrap(),
        rgb16.to_str().unwrap(),
    );

    // A head whose logits are its bias whatever the image: softmax([0.3, -1.2]) is known.
    let constant = dir.join("constant.safetensors");
    with_constant_head(&weights, &constant, &[0.3, -1.2]);
    let k = constant.to_str().unwrap();
    let output = gradlens(&["classify", g, c, "--weights", k, "--json", "--top", "2"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let json: serde_json::Value = serde_json::from_str(text(&output.stdout).trim()).unwrap();
    assert_eq!(json["arch"], "resnet18");
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let lesion = 1.0 / (1.0 + 1.5f64.exp());
    for result in results {
        let top: Vec<(&str, f64)> = result["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let name = t["name"].as_str().unwrap();
                (name, t["probability"].as_f64().unwrap())
            })
            .collect();
        assert_eq!(
            result["logits"],
            serde_json::json!([0.3f32, -1.2f32]),
            "{result}"
        );
        assert_eq!(top[0].0, "no lesion", "{result}");
        assert_eq!(top[1].0, "lesion", "{result}");
        assert!((top[0].1 - (1.0 - lesion)).abs() < 1e-6, "{result}");
        assert!((top[1].1 - lesion).abs() < 1e-6, "{result}");
    }

    let heat = dir.join("heat.png");
    let raw = dir.join("heat.safetensors");
    let output = gradlens(&[
        "saliency",
        g,
        "--weights",
        w,
        "--class",
        "lesion",
        "--out",
        heat.to_str().unwrap(),
        "--raw-out",
        raw.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let png = image::open(&heat).unwrap();
    assert_eq!(
        (png.width(), png.height()),
        (40, 40),
        "the overlay is at the model's input size"
    );
    let file = gradlens::weights::WeightsFile::open(&raw).unwrap();
    assert_eq!(file.get("saliency").unwrap().dims, [40, 40]);
    assert_eq!(file.metadata()["class"], "lesion");

    // Every method the command offers, two images each: an overlay and a raw map per image,
    // finite and not flat.
    for method in gradlens::saliency::Method::ALL.map(|method| method.name()) {
        let (maps, raw_maps) = (
            dir.join(format!("maps-{method}")),
            dir.join(format!("raw-{method}")),
        );
        let output = gradlens(&[
            "saliency",
            g,
            c,
            "--weights",
            w,
            "--method",
            method,
            "--out",
            maps.to_str().unwrap(),
            "--raw-out",
            raw_maps.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{method}: {}",
            text(&output.stderr)
        );
        assert!(
            maps.join("gray.png").exists() && maps.join("rgb16.png").exists(),
            "{method}: one file per image"
        );
        for image in ["gray", "rgb16"] {
            let file = gradlens::weights::WeightsFile::open(
                &raw_maps.join(format!("{image}.safetensors")),
            )
            .unwrap();
            let map = &file.get("saliency").unwrap().data;
            let (lo, hi) = map
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            assert!(
                map.iter().all(|v| v.is_finite()) && hi > lo,
                "{method} {image}: a map from {lo} to {hi}"
            );
        }
    }

    // The CAM family at another layer than the default: a map at the input's size.
    let layer3 = dir.join("layer3.safetensors");
    let output = gradlens(&[
        "saliency",
        g,
        "--weights",
        w,
        "--method",
        "gradcam-plus-plus",
        "--layer",
        "layer3",
        "--raw-out",
        layer3.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let file = gradlens::weights::WeightsFile::open(&layer3).unwrap();
    assert_eq!(file.get("saliency").unwrap().dims, [40, 40]);
}

#[test]
fn bad_input_ends_in_one_line_and_a_non_zero_exit() {
    let dir = folder("errors");
    let (weights, gray, _) = fixtures(&dir);
    let (w, g) = (weights.to_str().unwrap(), gray.to_str().unwrap());
    let not_an_image = dir.join("notes.png");
    std::fs::write(&not_an_image, "not a picture").unwrap();
    let unwritable = dir.join("no-such-folder").join("heat.png");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["classify", g, "--weights", "missing.safetensors"],
            "missing.safetensors",
        ),
        (
            vec!["classify", not_an_image.to_str().unwrap(), "--weights", w],
            "notes.png",
        ),
        (
            vec!["classify", g, "--weights", g],
            "not a valid safetensors file",
        ),
        (
            vec!["classify", g, "--weights", w, "--arch", "resnet19"],
            "unknown arch",
        ),
        (
            vec!["classify", g, "--weights", w, "--arch", "vgg11"],
            "no classification head",
        ),
        (
            vec!["saliency", g, "--weights", w, "--class", "7"],
            "out of range",
        ),
        (
            vec!["saliency", g, "--weights", w, "--class", "tumour"],
            "no class named",
        ),
        (
            vec![
                "saliency",
                g,
                "--weights",
                w,
                "--method",
                "occlusion",
                "--occlusion-patch",
                "41",
            ],
            "a 41-pixel patch does not fit a 40×40 image",
        ),
        (
            vec![
                "saliency",
                g,
                "--weights",
                w,
                "--method",
                "occlusion",
                "--occlusion-patch",
                "4",
                "--occlusion-stride",
                "5",
            ],
            "leaves pixels under no window",
        ),
        (
            vec![
                "saliency",
                g,
                "--weights",
                w,
                "--method",
                "layercam",
                "--layer",
                "layer9",
            ],
            "no layer named \"layer9\"; the model marks layer1, layer2, layer3, layer4",
        ),
        (
            vec![
                "saliency",
                g,
                "--weights",
                w,
                "--out",
                unwritable.to_str().unwrap(),
            ],
            "cannot write",
        ),
        // A folder stands for its images: the one that is not an image is named.
        (
            vec!["classify", dir.to_str().unwrap(), "--weights", w],
            "notes.png: not a readable PNG, JPEG or TIFF image",
        ),
    ];
    for (args, needle) in cases {
        let output = gradlens(&args);
        let stderr = text(&output.stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
            .collect();
        assert!(!output.status.success(), "{args:?} succeeded");
        assert_eq!(lines.len(), 1, "{args:?}: one line, got {stderr:?}");
        assert!(
            lines[0].len() < 500,
            "{args:?}: a line of {} characters",
            lines[0].len()
        );
        assert!(
            lines[0].contains(needle),
            "{args:?}: {needle:?} not in {stderr:?}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    assert!(!unwritable.with_file_name("heat.png.partial").exists());
}

/// train → evaluate → saliency on generated PNG files in an ImageFolder tree.
#[test]
fn train_evaluate_and_explain_an_image_folder() {
    let dir = folder("folder");
    let data = dir.join("lesions");
    let samples = SyntheticLesions {
        size: 40,
        seed: 9,
        ..SyntheticLesions::default()
    }
    .generate(0, 96);
    let plane = 40 * 40;
    for (i, &label) in samples.labels.iter().enumerate() {
        let split = if i < 64 { "train" } else { "val" };
        let class = ["healthy", "lesion"][label];
        let folder = data.join(split).join(class);
        std::fs::create_dir_all(&folder).unwrap();
        let pixels: Vec<u8> = samples.images[i * plane..(i + 1) * plane]
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0) as u8)
            .collect();
        image::save_buffer(
            folder.join(format!("{i}.png")),
            &pixels,
            40,
            40,
            image::ExtendedColorType::L8,
        )
        .unwrap();
        // Masks for the validation set's lesions, laid out as the images.
        if split == "val" && label == 1 {
            let masks = dir.join("masks").join(class);
            std::fs::create_dir_all(&masks).unwrap();
            let mask: Vec<u8> = samples.masks[i * plane..(i + 1) * plane]
                .iter()
                .map(|&m| if m > 0.5 { 255 } else { 0 })
                .collect();
            let path = masks.join(format!("{i}.png"));
            image::save_buffer(path, &mask, 40, 40, image::ExtendedColorType::L8).unwrap();
        }
    }
    let checkpoint = dir.join("lesions.safetensors");
    let (d, c) = (data.to_str().unwrap(), checkpoint.to_str().unwrap());
    // The model and data every train run below shares.
    let train = [
        "train",
        "--arch",
        "resnet18",
        "--width",
        "8",
        "--data",
        d,
        "--out",
        c,
        "--grayscale",
        "--size",
        "32",
        "--batch",
        "16",
    ];
    let output = gradlens(
        &[
            &train[..],
            &[
                "--epochs",
                "2",
                "--augment",
                "flip,rotate,crop,intensity",
                "--class-weights",
                "balanced",
            ],
        ]
        .concat(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("64 training and 32 validation images of 2 classes (healthy, lesion)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("epoch 2: validation accuracy") && stdout.contains("ROC AUC"),
        "{stdout}"
    );

    let output = gradlens(&["evaluate", "--weights", c, "--data", d, "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let json: serde_json::Value = serde_json::from_str(text(&output.stdout).trim()).unwrap();
    // The confusion matrix's rows are the validation set's true classes, its diagonal the
    // accuracy.
    let confusion: Vec<Vec<u64>> = json["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect()
        })
        .collect();
    let lesions = samples.labels[64..]
        .iter()
        .filter(|&&label| label == 1)
        .count() as u64;
    let row_sums: Vec<u64> = confusion.iter().map(|row| row.iter().sum()).collect();
    assert_eq!(row_sums, [32 - lesions, lesions], "{json}");
    let correct = (confusion[0][0] + confusion[1][1]) as f64;
    assert!(
        (json["accuracy"].as_f64().unwrap() - correct / 32.0).abs() < 1e-9,
        "{json}"
    );
    assert_eq!(json["images"], 32);
    // A model that calls every image healthy: its accuracy is the share of healthy images.
    let healthy_only = dir.join("healthy.safetensors");
    with_constant_head(&checkpoint, &healthy_only, &[2.0, -2.0]);
    let output = gradlens(&[
        "evaluate",
        "--weights",
        healthy_only.to_str().unwrap(),
        "--data",
        d,
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let json: serde_json::Value = serde_json::from_str(text(&output.stdout).trim()).unwrap();
    let want = (32 - lesions) as f64 / 32.0;
    assert!(
        (json["accuracy"].as_f64().unwrap() - want).abs() < 1e-9,
        "{json}"
    );
    assert_eq!(
        json["confusion"],
        serde_json::json!([[32 - lesions, 0], [lesions, 0]]),
        "{json}"
    );

    let image = data
        .join("val")
        .join(["healthy", "lesion"][samples.labels[64]])
        .join("64.png");
    let heat = dir.join("val64.png");
    let output = gradlens(&[
        "saliency",
        image.to_str().unwrap(),
        "--weights",
        c,
        "--class",
        "lesion",
        "--out",
        heat.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let png = image::open(&heat).unwrap();
    assert_eq!((png.width(), png.height()), (32, 32));

    evaluate_saliency_reports_every_measure(&dir, d, c, &samples.labels[64..]);

    let output = gradlens(&["train", "--data", d, "--out", c, "--augment", "shear"]);
    assert!(!output.status.success() && text(&output.stderr).contains("shear"));

    // Ctrl-C leaves a checkpoint that --resume continues from. The signal goes once the
    // first epoch is reported, so that a fast adapter cannot finish the run first.
    let mut child = Command::new(env!("CARGO_BIN_EXE_gradlens"))
        .args(train)
        .args(["--epochs", "100000"])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("GRADLENS_TUNING_FILE", "")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (epoch_reported, first_epoch) = std::sync::mpsc::channel();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in std::io::BufRead::lines(stdout).map_while(Result::ok) {
            if line.contains("validation accuracy") {
                let _ = epoch_reported.send(());
            }
        }
    });
    first_epoch
        .recv_timeout(std::time::Duration::from_secs(300))
        .expect("no epoch reported within 5 minutes");
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    reader.join().unwrap();
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("interrupted"),
        "{stderr}"
    );
    let saved = dir.join("lesions.interrupted.safetensors");
    assert!(saved.exists(), "{stderr}");
    // It holds the optimiser's moments and where the run stopped; the resumed run finishes
    // that epoch.
    let file = gradlens::weights::WeightsFile::open(&saved).unwrap();
    assert!(file.names().any(|n| n == "optimizer.fc.weight.exp_avg_sq"));
    let state: serde_json::Value = serde_json::from_str(&file.metadata()["train_state"]).unwrap();
    let epoch = state["epoch"].as_u64().unwrap();
    let step = state["step"].as_u64().unwrap();
    let epochs = (epoch + 1).to_string();
    let output = gradlens(
        &[
            &train[..],
            &["--epochs", &epochs, "--resume", saved.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "resuming at epoch {} step {}",
            epoch + 1,
            step + 1
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("epoch {}: validation", epoch + 1)),
        "{stdout}"
    );

    // Stopped after 6 of its 12 steps (4 per epoch: mid-epoch, as a scheduler's time limit or
    // Ctrl-C would stop it) and resumed, a run ends with exactly the weights of one that never
    // stopped: the optimiser's moments and step count, the learning-rate schedule, the data
    // order and the dropout masks all continue where they were. A resume that restarted an
    // epoch or a step, lost a moment or reseeded a stream would differ in the last bits at
    // least.
    let three_epochs = [&train[..], &["--epochs", "3"]].concat();
    let output = gradlens(&[&three_epochs[..], &["--stop-after-steps", "6"]].concat());
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout)
            .contains("stopped as asked (--stop-after-steps) in epoch 2 after step 2"),
        "{}",
        text(&output.stdout)
    );
    let output = gradlens(&[&three_epochs[..], &["--resume", saved.to_str().unwrap()]].concat());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let straight = dir.join("straight.safetensors");
    let straight_args: Vec<&str> = three_epochs
        .iter()
        .map(|&arg| match arg == c {
            true => straight.to_str().unwrap(),
            false => arg,
        })
        .collect();
    let output = gradlens(&straight_args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let resumed = gradlens::weights::WeightsFile::open(Path::new(c)).unwrap();
    let uninterrupted = gradlens::weights::WeightsFile::open(&straight).unwrap();
    let mut names: Vec<&str> = uninterrupted.names().collect();
    names.sort_unstable();
    let mut resumed_names: Vec<&str> = resumed.names().collect();
    resumed_names.sort_unstable();
    assert_eq!(
        names, resumed_names,
        "the two checkpoints hold the same tensors"
    );
    for name in names {
        let bits = |file: &gradlens::weights::WeightsFile| -> Vec<u32> {
            let tensor = file.get(name).expect("a listed name");
            tensor.data.iter().map(|v| v.to_bits()).collect()
        };
        assert!(
            bits(&resumed) == bits(&uninterrupted),
            "{name}: the resumed run's weights differ from the uninterrupted run's"
        );
    }
}

/// `evaluate-saliency` over the validation folder with masks for its lesions: every measure
/// of both methods, with confidence intervals around the means, curves that start at the
/// unchanged image's probability, the randomisation steps over the model's blocks, the plot;
/// and its bad input (an unknown method, a missing masks folder, an unknown layer) in one line.
fn evaluate_saliency_reports_every_measure(
    dir: &Path,
    data: &str,
    weights: &str,
    labels: &[usize],
) {
    let (json_path, plot) = (dir.join("eval.json"), dir.join("eval.svg"));
    let masks = dir.join("masks");
    let output = gradlens(&[
        "evaluate-saliency",
        "--weights",
        weights,
        "--data",
        data,
        "--masks",
        masks.to_str().unwrap(),
        "--methods",
        "gradient,gradcam",
        "--batch",
        "8",
        "--randomisation-images",
        "2",
        "--json",
        json_path.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let lesions = labels.iter().filter(|&&l| l == 1).count();
    assert!(
        stdout.contains(&format!(
            "32 images of 2 classes at 32×32, {lesions} with masks"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("ROAD MoRF area") && stdout.contains("randomisation: after all 11 blocks"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(json["images"], 32);
    for method in ["gradient", "gradcam"] {
        let report = &json["methods"][method];
        for (measure, n) in [
            ("deletion_auc", 32),
            ("insertion_auc", 32),
            ("road_morf_area", 32),
            ("road_lerf_area", 32),
            ("pointing_game", lesions),
            ("energy_pointing_game", lesions),
        ] {
            let summary = &report[measure];
            let (mean, low, high) = (
                summary["mean"].as_f64().unwrap(),
                summary["ci95"][0].as_f64().unwrap(),
                summary["ci95"][1].as_f64().unwrap(),
            );
            assert_eq!(summary["n"], n, "{method} {measure}");
            assert!(
                (0.0..=1.0).contains(&mean) && low <= mean && mean <= high && high - low > 0.0,
                "{method} {measure}: {summary}"
            );
        }
        let curves = &report["curves"];
        assert_eq!(
            curves["deletion"]["probability"].as_array().unwrap().len(),
            17
        );
        assert_eq!(
            curves["road_morf"]["probability"].as_array().unwrap().len(),
            10
        );
        // Every curve starts from the unchanged image: the same mean probability.
        let start = |curve: &str| curves[curve]["probability"][0].as_f64().unwrap();
        assert!(
            (start("deletion") - start("road_lerf")).abs() < 1e-5,
            "{curves}"
        );
        let steps = report["randomisation"]["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 11);
        assert_eq!(
            (steps[0]["block"].as_str(), steps[10]["block"].as_str()),
            (Some("fc"), Some("conv1"))
        );
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert_eq!(
        svg.matches("<polyline").count(),
        2 * 5,
        "two methods in five panels"
    );

    for (args, says) in [
        (
            &["--methods", "gradient,sharpness"][..],
            "unknown method \"sharpness\"",
        ),
        (
            &["--masks", "/nonexistent/masks"][..],
            "the masks folder does not exist",
        ),
        (
            &["--methods", "gradcam", "--layer", "layer9"][..],
            "no layer named \"layer9\"",
        ),
    ] {
        let output = gradlens(
            &[
                &["evaluate-saliency", "--weights", weights, "--data", data][..],
                args,
            ]
            .concat(),
        );
        let stderr = text(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(says),
            "{args:?}: {stderr}"
        );
        // One line naming the problem (clap adds its pointer to --help after a blank line).
        let lines = stderr
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
            .count();
        assert_eq!(lines, 1, "{args:?}: {stderr}");
    }
}

/// A folder of images explained in batches as one grid per image, a run replayed from its
/// manifest to the same bits (SmoothGrad's noise included), and the replay refusing an image
/// that changed since.
#[test]
fn saliency_grids_folders_and_replayed_manifests() {
    let dir = folder("manifest");
    let (weights, gray, rgb16) = fixtures(&dir);
    let images = dir.join("images");
    std::fs::create_dir_all(images.join("more")).unwrap();
    std::fs::copy(&gray, images.join("a.png")).unwrap();
    std::fs::copy(&rgb16, images.join("more").join("b.png")).unwrap();
    let w = weights.to_str().unwrap();
    let (first, again) = (dir.join("first"), dir.join("again"));
    let output = gradlens(&[
        "saliency",
        images.to_str().unwrap(),
        "--weights",
        w,
        "--methods",
        "gradient,smoothgrad,gradcam,gradient-x-input",
        "--batch",
        "1",
        "--out",
        dir.join("grids").to_str().unwrap(),
        "--raw-out",
        first.to_str().unwrap(),
        "--json",
        dir.join("metrics.json").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // The grid: the image and four overlays in one row, each tile enlarged to 160 pixels
    // (40 × 4, the first multiple of 40 past 128) under a label strip of 11.
    let grid = image::open(dir.join("grids").join("a.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (5 * 160, 11 + 160));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["images"].as_array().unwrap().len(), 2);
    let deletion = &metrics["images"][1]["methods"]["smoothgrad"]["deletion_auc"];
    assert!(
        (0.0..=1.0).contains(&deletion.as_f64().unwrap()),
        "{metrics}"
    );

    // Beside the first outputs named: --out's folder.
    let manifest = dir.join("grids").join("manifest.json");
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(
        recorded["images"].as_array().unwrap().len(),
        2,
        "{recorded}"
    );
    assert_eq!(recorded["weights"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(recorded["settings"]["smoothgrad"]["samples"], 50);
    assert!(recorded["adapter"]["driver"].is_string(), "{recorded}");

    let output = gradlens(&[
        "saliency",
        "--manifest",
        manifest.to_str().unwrap(),
        "--raw-out",
        again.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // The outputs mirror the folder's tree.
    for name in ["a.safetensors", "more/b.safetensors"] {
        let (x, y) = (
            gradlens::weights::WeightsFile::open(&first.join(name)).unwrap(),
            gradlens::weights::WeightsFile::open(&again.join(name)).unwrap(),
        );
        for method in ["gradient", "smoothgrad", "gradcam", "gradient-x-input"] {
            let bits = |file: &gradlens::weights::WeightsFile| -> Vec<u32> {
                file.get(method)
                    .unwrap()
                    .data
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            };
            assert!(bits(&x) == bits(&y), "{name} {method}: the replay differs");
        }
    }

    // A rerun that is not a shard's redoes its image: the same output asked of another
    // method holds that method's map.
    let single = dir.join("single.safetensors");
    for method in ["gradient", "gradcam"] {
        let output = gradlens(&[
            "saliency",
            gray.to_str().unwrap(),
            "--weights",
            w,
            "--method",
            method,
            "--raw-out",
            single.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let file = gradlens::weights::WeightsFile::open(&single).unwrap();
        assert_eq!(file.metadata()["methods"], method);
    }

    // One changed pixel: the replay names the image and stops.
    let mut changed = image::open(images.join("a.png")).unwrap().to_luma8();
    let pixel = changed.get_pixel_mut(3, 3);
    pixel.0[0] = pixel.0[0].wrapping_add(1);
    changed.save(images.join("a.png")).unwrap();
    let output = gradlens(&["saliency", "--manifest", manifest.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("a.png changed since the run"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let output = gradlens(&[
        "saliency",
        "--manifest",
        manifest.to_str().unwrap(),
        "--method",
        "gradcam",
    ]);
    assert!(!output.status.success() && text(&output.stderr).contains("cannot be used with"));
}

/// An archive of nested folders (two files of one name in different folders) split into
/// shards by tools/cluster's Slurm script (3 tasks) and Kubernetes job (16 indices, most of
/// them empty here), run as they are: every image explained exactly once, its map where the
/// archive's tree says. Then a shard killed mid-write resumes: it skips what its JSON lines
/// hold, redoes the image whose line was cut off, and ends with each image once. classify's
/// shards partition the archive the same way.
#[test]
fn archives_split_into_shards_and_resume_where_they_stopped() {
    let dir = folder("archive");
    let (weights, gray, rgb16) = fixtures(&dir);
    let archive = dir.join("archive");
    let mut keys = Vec::new();
    for (k, folder) in ["p1/s1", "p1/s2", "p2", "p3/s1/t", ""].iter().enumerate() {
        std::fs::create_dir_all(archive.join(folder)).unwrap();
        for name in ["x.png", &format!("scan{k}.png"), &format!("other{k}.png")] {
            let source = if k % 2 == 0 { &gray } else { &rgb16 };
            let key = Path::new(folder).join(name);
            std::fs::copy(source, archive.join(&key)).unwrap();
            keys.push(key.to_string_lossy().into_owned());
        }
    }
    keys.sort();
    let binary = Path::new(env!("CARGO_BIN_EXE_gradlens"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path_env = format!(
        "{}:{}",
        binary.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Every image's JSON line across the shards, and its map under maps/.
    let explained_once = |out: &Path| {
        let mut images: Vec<String> = std::fs::read_dir(out)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
            .flat_map(|path| {
                std::fs::read_to_string(path)
                    .unwrap()
                    .lines()
                    .map(|line| {
                        let value: serde_json::Value = serde_json::from_str(line).unwrap();
                        let image = value["image"].as_str().unwrap().to_string();
                        image
                            .strip_prefix(&format!("{}/", archive.display()))
                            .unwrap()
                            .to_string()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        images.sort();
        assert_eq!(images, keys, "each image once across the shards");
        for key in &keys {
            let map = out
                .join("maps")
                .join(Path::new(key).with_extension("safetensors"));
            assert!(map.is_file(), "{} missing", map.display());
        }
    };
    let slurm = dir.join("slurm");
    for task in 0..3 {
        let output = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/cluster/slurm_saliency.sh"))
            .env("PATH", &path_env)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .env("GRADLENS_TUNING_FILE", "")
            .env("SLURM_ARRAY_TASK_ID", task.to_string())
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .env("ARCHIVE", &archive)
            .env("WEIGHTS", &weights)
            .env("OUT", &slurm)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "task {task}: {}",
            text(&output.stderr)
        );
    }
    explained_once(&slurm);

    let job = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/cluster/saliency-indexed-job.yaml"),
    )
    .unwrap();
    let command = job
        .split("- >-")
        .nth(1)
        .and_then(|rest| rest.split("resources:").next())
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let kubernetes = dir.join("kubernetes");
    let command = command
        .replace("/data/archive", archive.to_str().unwrap())
        .replace("/models/model.safetensors", weights.to_str().unwrap())
        .replace("/results/saliency", kubernetes.to_str().unwrap());
    std::fs::create_dir_all(&kubernetes).unwrap();
    for index in 0..16 {
        let output = Command::new("sh")
            .args(["-c", &command])
            .env("PATH", &path_env)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .env("GRADLENS_TUNING_FILE", "")
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "index {index}: {}",
            text(&output.stderr)
        );
    }
    explained_once(&kubernetes);

    // Task 1 killed while appending its second line: the first image stays done (its map,
    // removed here, is not made again), the second is redone.
    let lines_path = slurm.join("shard_1.jsonl");
    let lines = std::fs::read_to_string(&lines_path).unwrap();
    let all: Vec<&str> = lines.lines().collect();
    assert!(
        all.len() >= 2,
        "shard 1 holds {} images; the test needs two",
        all.len()
    );
    let map_of = |line: &str| {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        std::path::PathBuf::from(value["outputs"][0].as_str().unwrap())
    };
    let (kept, cut) = (map_of(all[0]), map_of(all[1]));
    std::fs::write(
        &lines_path,
        format!("{}\n{}", all[0], &all[1][..all[1].len() / 2]),
    )
    .unwrap();
    std::fs::remove_file(&kept).unwrap();
    std::fs::remove_file(&cut).unwrap();
    let output = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/cluster/slurm_saliency.sh"))
        .env("PATH", &path_env)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("GRADLENS_TUNING_FILE", "")
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .env("ARCHIVE", &archive)
        .env("WEIGHTS", &weights)
        .env("OUT", &slurm)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(&format!("1 of {} images already done", all.len())),
        "{}",
        text(&output.stdout)
    );
    assert!(!kept.exists(), "a done image was explained again");
    assert!(
        cut.is_file(),
        "the image whose line was cut off was not redone"
    );
    std::fs::remove_file(&kept).ok();
    let rewritten = std::fs::read_to_string(&lines_path).unwrap();
    assert_eq!(rewritten.lines().count(), all.len(), "{rewritten}");

    // classify's shards: the same partition, one JSON line per image.
    let classified = dir.join("classified");
    std::fs::create_dir_all(&classified).unwrap();
    for shard in 0..3 {
        let lines = classified.join(format!("shard_{shard}.jsonl"));
        let output = gradlens(&[
            "classify",
            archive.to_str().unwrap(),
            "--weights",
            weights.to_str().unwrap(),
            "--shard",
            &format!("{shard}/3"),
            "--jsonl",
            lines.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let slurm_lines =
            std::fs::read_to_string(slurm.join(format!("shard_{shard}.jsonl"))).unwrap();
        let images = |text: &str| -> Vec<String> {
            let mut images: Vec<String> = text
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["image"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            images.sort();
            images
        };
        assert_eq!(
            images(&std::fs::read_to_string(&lines).unwrap()),
            images(&slurm_lines)
        );
    }
    for bad in ["3/3", "1/0", "x/2", "1"] {
        let output = gradlens(&[
            "classify",
            archive.to_str().unwrap(),
            "--weights",
            weights.to_str().unwrap(),
            "--shard",
            bad,
        ]);
        assert!(
            !output.status.success() && text(&output.stderr).contains("is not K/N"),
            "{bad}"
        );
    }
}

/// `gradlens run` reproduces torchvision's googlenet (transform_input on by default, as with
/// torchvision's pretrained weights): logits and the input gradient of the fixture's class.
#[test]
fn run_matches_torchvision_through_the_binary() {
    use gradlens::weights::WeightsFile;
    let dir = folder("run-tensor");
    let fixtures = WeightsFile::open(Path::new("tests/fixtures/models.safetensors")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&fixtures.metadata()["googlenet"]).unwrap();
    let mut store = ParamStore::new(gpu());
    build("googlenet", &mut store, &ModelConfig::default()).unwrap();
    common::formula::fill_with_formula(&mut store);
    let weights = dir.join("googlenet.safetensors");
    gradlens::weights::save(&store, &weights, &Default::default()).unwrap();
    let input = fixtures.get("googlenet.input").unwrap();
    let bytes: Vec<u8> = input.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::tensor::Dtype::F32,
        input.dims.clone(),
        &bytes,
    )
    .unwrap();
    let input_path = dir.join("x.safetensors");
    std::fs::write(
        &input_path,
        safetensors::serialize([("input", view)], None).unwrap(),
    )
    .unwrap();
    let out = dir.join("y.safetensors");
    let target = meta["target"].as_u64().unwrap().to_string();
    let output = gradlens(&[
        "run",
        "--arch",
        "googlenet",
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        input_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--grad-class",
        &target,
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let result = WeightsFile::open(&out).unwrap();
    let largest = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    for (name, fixture) in [
        ("logits", "googlenet.logits"),
        ("input_grad", "googlenet.grad_input"),
    ] {
        let (got, want) = (
            &result.get(name).unwrap().data,
            &fixtures.get(fixture).unwrap().data,
        );
        let worst = got
            .iter()
            .zip(want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0, f32::max);
        assert!(
            worst <= 1e-3 * largest(want),
            "{name}: worst error {worst}, largest value {}",
            largest(want)
        );
    }
    let output = gradlens(&[
        "run",
        "--arch",
        "googlenet",
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        weights.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !output.status.success() && text(&output.stderr).contains("has no tensor named input"),
        "{}",
        text(&output.stderr)
    );
}

/// `bench --roofline`: the adapter's peaks, every kernel of the profiled step placed against
/// them (their FLOPs adding up to the step's), the plot with one circle per layer's counted
/// kernel, and the kept copies within their budget.
#[test]
fn bench_places_every_kernel_on_the_roofline() {
    let dir = folder("roofline");
    let plot = dir.join("roofline.svg");
    let output = gradlens(&[
        "bench",
        "--arch",
        "resnet18",
        "--size",
        "32",
        "--backward",
        "--roofline",
        plot.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let roofline = &report["roofline"];
    for peak in ["gflops_per_s", "gbytes_per_s"] {
        assert!(
            roofline["peaks"][peak].as_f64().unwrap() > 0.0,
            "{roofline}"
        );
    }
    let kernels = roofline["kernels"].as_array().unwrap();
    let forward_flops: u64 = kernels
        .iter()
        .filter(|kernel| kernel["phase"] == "forward")
        .map(|kernel| kernel["flops"].as_u64().unwrap())
        .sum();
    let gflop = report["gflop_forward"].as_f64().unwrap();
    assert!((forward_flops as f64 / 1e9 - gflop).abs() < 1e-9, "{gflop}");
    for kernel in kernels {
        let fraction = kernel["fraction_of_bound"].as_f64().unwrap();
        assert!(fraction.is_finite() && fraction > 0.0, "{kernel}");
        let bound = kernel["bound"].as_str().unwrap();
        match kernel["flops_per_byte"].as_f64() {
            Some(intensity) => {
                let ridge = roofline["peaks"]["ridge_flops_per_byte"].as_f64().unwrap();
                assert_eq!(bound == "compute", intensity >= ridge, "{kernel}");
            }
            None => assert_eq!(bound, "memory", "{kernel}"),
        }
    }
    assert!(
        kernels
            .iter()
            .any(|kernel| kernel["phase"] == "backward" && kernel["flops_per_byte"].is_number()),
        "the backward's convolutions count their FLOPs"
    );
    let circles = roofline["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|layer| {
            layer["flops_per_byte"].is_number() && layer["gflops_per_s"].as_f64() > Some(0.0)
        })
        .count();
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<circle").count(), circles);
    assert!(
        circles > 20,
        "every convolution of ResNet-18, forward and backward"
    );
    let kept = report["kept_copy_bytes"].as_u64().unwrap();
    assert!(
        kept <= report["kept_copy_budget"].as_u64().unwrap(),
        "{report}"
    );
}

#[test]
fn bench_profiles_the_first_forward() {
    let output = gradlens(&[
        "bench",
        "--arch",
        "resnet18",
        "--size",
        "32",
        "--profile-first",
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    // The profiled run is the first forward, all of it: its kernels do the forward's FLOPs,
    // from the stem to the classifier.
    let layers = report["profile_first"]["layers"].as_array().unwrap();
    assert!(
        layers.iter().all(|row| row["phase"] == "forward"),
        "{report}"
    );
    let flops: u64 = layers
        .iter()
        .map(|row| row["flops"].as_u64().unwrap())
        .sum();
    let gflop = report["gflop_forward"].as_f64().unwrap();
    assert!(
        (flops as f64 / 1e9 - gflop).abs() < 1e-9,
        "{gflop}: {report}"
    );
    for layer in ["conv1", "fc"] {
        assert!(
            layers.iter().any(|row| row["layer"] == layer),
            "{layer}: {report}"
        );
    }
    assert!(report.get("profile").is_none(), "{report}");
}

#[test]
fn bench_reports_json_a_profile_and_a_trace() {
    let dir = folder("bench");
    let trace = dir.join("trace.json");
    let trace_arg = trace.to_str().unwrap();
    let args = [
        "bench",
        "--arch",
        "resnet18",
        "--size",
        "32",
        "--backward",
        "--profile",
        "--trace",
        trace_arg,
        "--json",
    ];
    let output = gradlens(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["arch"], "resnet18");
    assert_eq!(report["batch"], 1);
    assert_eq!(report["size"], 32);
    assert!(
        report["adapter"]
            .as_str()
            .is_some_and(|name| !name.is_empty())
    );
    assert!(report["backend"].as_str().is_some());
    for key in ["forward_ms", "forward_backward_ms", "first_run_ms"] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key}: {report}");
    }
    assert_eq!(report["forward_runs_ms"].as_array().unwrap().len(), 5);
    // ResNet-18's 11.7 M parameters alone are 46.8 MB.
    assert!(report["peak_bytes"].as_u64().unwrap() > 46_000_000);
    // The profiled forward + backward: its forward kernels do the forward's FLOPs.
    let layers = report["profile"]["layers"].as_array().unwrap();
    let forward_flops: u64 = layers
        .iter()
        .filter(|row| row["phase"] == "forward")
        .map(|row| row["flops"].as_u64().unwrap())
        .sum();
    let gflop = report["gflop_forward"].as_f64().unwrap();
    assert!((forward_flops as f64 / 1e9 - gflop).abs() < 1e-9, "{gflop}");
    assert!(
        layers
            .iter()
            .any(|row| row["layer"] == "layer4.1.conv2" && row["phase"] == "backward")
    );
    let trace: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    assert!(trace["traceEvents"].as_array().unwrap().len() > layers.len());

    // --tune times every subgroup tile on the model's matmul shapes and writes the winners.
    let tuning = dir.join("tuning.json");
    let output = Command::new(env!("CARGO_BIN_EXE_gradlens"))
        .args([
            "bench", "--arch", "resnet18", "--size", "32", "--tune", "--json",
        ])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("GRADLENS_TUNING_FILE", &tuning)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let classes = report["tuning"].as_array().unwrap();
    // The tuned kernel needs 8-lane subgroups.
    let subgroups = gradlens::kernels::matmul::subgroup_kernel_available(gpu());
    if !common::skipped_without(subgroups, "bench --tune", "8-lane subgroups") {
        assert!(!classes.is_empty(), "{report}");
    }
    // The file holds, for this one adapter, the tile the report found fastest for each class:
    // what every later process takes.
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&tuning).unwrap()).unwrap();
    let adapters = written.as_object().expect("an object of adapters");
    assert_eq!(adapters.len(), 1, "{written}");
    let tiles = adapters.values().next().unwrap();
    for class in classes {
        let name = class["class"].as_str().unwrap();
        assert_eq!(tiles[name], class["tile"], "{name}: {written}");
    }

    // A trace needs a profile: one line, a non-zero exit, no file.
    let lonely = dir.join("lonely.json");
    let output = gradlens(&[
        "bench",
        "--arch",
        "resnet18",
        "--trace",
        lonely.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--trace") && stderr.contains("--profile"),
        "{stderr}"
    );
    assert!(!lonely.exists());
    let output = gradlens(&["bench", "--arch", "resnet19"]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("resnet19"),
        "{}",
        text(&output.stderr)
    );
}

/// --tile: a big image scored and explained tile by tile at full resolution. With tiles of the
/// model's input size and no overlap, each region of the stitched map is exactly the map of
/// that tile on its own.
#[test]
fn tiles_are_scored_and_their_maps_stitched() {
    let dir = folder("tiles");
    let (weights, _, _) = fixtures(&dir);
    let w = weights.to_str().unwrap();
    let (height, width) = (80u32, 120u32);
    let mut rng = common::Rng::new(21);
    let pixels: Vec<u8> = (0..height * width)
        .map(|_| ((rng.vec(1)[0] * 0.5 + 0.5) * 255.0) as u8)
        .collect();
    let big = dir.join("big.png");
    image::save_buffer(&big, &pixels, width, height, image::ExtendedColorType::L8).unwrap();
    // The tile at y 40, x 80 as an image of its own.
    let tile: Vec<u8> = (40..80)
        .flat_map(|y| pixels[(y * width + 80) as usize..(y * width + 120) as usize].to_vec())
        .collect();
    let alone = dir.join("alone.png");
    image::save_buffer(&alone, &tile, 40, 40, image::ExtendedColorType::L8).unwrap();
    let b = big.to_str().unwrap();

    let output = gradlens(&["classify", b, "--weights", w, "--tile", "40", "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let json: serde_json::Value = serde_json::from_str(text(&output.stdout).trim()).unwrap();
    // Tiles of 40 every 20 pixels: 3 rows × 5 columns.
    assert_eq!(json["results"][0]["tiles"], 15);
    assert!(json["results"][0]["strongest_tile"]["x"].as_u64().unwrap() <= 80);

    let stitched = dir.join("stitched.safetensors");
    let (overlay, single) = (dir.join("stitched.png"), dir.join("alone.safetensors"));
    let output = gradlens(&[
        "saliency",
        b,
        "--weights",
        w,
        "--class",
        "1",
        "--tile",
        "40",
        "--stride",
        "40",
        "--raw-out",
        stitched.to_str().unwrap(),
        "--out",
        overlay.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let png = image::open(&overlay).unwrap();
    assert_eq!(
        (png.width(), png.height()),
        (width, height),
        "the whole image"
    );
    let output = gradlens(&[
        "saliency",
        alone.to_str().unwrap(),
        "--weights",
        w,
        "--class",
        "1",
        "--raw-out",
        single.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let map = gradlens::weights::WeightsFile::open(&stitched).unwrap();
    let map = map.get("saliency").unwrap();
    assert_eq!(map.dims, [80, 120]);
    let reference = gradlens::weights::WeightsFile::open(&single).unwrap();
    let reference = &reference.get("saliency").unwrap().data;
    let region: Vec<f32> = (40..80)
        .flat_map(|y| map.data[y * 120 + 80..y * 120 + 120].to_vec())
        .collect();
    assert!(reference.iter().any(|&v| v != 0.0));
    common::assert_close("stitched tile", &region, reference, 1e-4, 1e-7);

    let output = gradlens(&["classify", b, "--weights", w, "--tile", "100"]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("big.png") && stderr.contains("smaller than one tile"),
        "{stderr}"
    );
    let output = gradlens(&["classify", b, "--weights", w, "--stride", "10"]);
    assert!(!output.status.success() && text(&output.stderr).contains("--tile"));
}

/// --check-finite names the first layer that produced NaN or Inf; a non-finite input tensor is
/// refused outright. Neither leaves an output file.
#[test]
fn check_finite_names_the_first_non_finite_layer() {
    let dir = folder("finite");
    let (weights, gray, _) = fixtures(&dir);
    let w = weights.to_str().unwrap();
    let out = dir.join("out.safetensors");
    let o = out.to_str().unwrap();
    let write_input = |name: &str, value: f32| {
        let path = dir.join(name);
        let data = vec![value; 40 * 40];
        gradlens::weights::save_f32(
            &path,
            &[("input", &[1, 1, 40, 40], &data)],
            &Default::default(),
        )
        .unwrap();
        path
    };
    // Finite, but large enough to overflow to Inf somewhere in the network.
    let huge = write_input("huge.safetensors", 3e38);
    let args = [
        "run",
        "--arch",
        "resnet18",
        "--weights",
        w,
        "--input",
        huge.to_str().unwrap(),
        "--out",
        o,
    ];
    let output = gradlens(&[&args[..], &["--check-finite", "--grad-class", "1"]].concat());
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // Which layer first overflows depends on the weights (tests/finite.rs checks that the
    // first is named); here: a layer of the model, its forward output.
    let layer = stderr
        .strip_prefix("gradlens: --check-finite: the output of layer ")
        .and_then(|rest| rest.strip_suffix(" holds NaN or Inf\n"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        layer.starts_with("conv1") || layer.starts_with("layer"),
        "{stderr}"
    );
    assert!(!out.exists());
    // Without the flag the same run completes (its logits are what they are).
    assert!(gradlens(&args).status.success());
    std::fs::remove_file(&out).unwrap();

    let nan = write_input("nan.safetensors", f32::NAN);
    let output = gradlens(&[
        "run",
        "--arch",
        "resnet18",
        "--weights",
        w,
        "--input",
        nan.to_str().unwrap(),
        "--out",
        o,
    ]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("nan.safetensors") && stderr.contains("NaN at index 0"),
        "{stderr}"
    );
    assert!(!out.exists());

    // Clean images pass the checks in classify and saliency.
    let g = gray.to_str().unwrap();
    for args in [
        vec!["classify", g, "--weights", w, "--check-finite"],
        vec![
            "saliency",
            g,
            "--weights",
            w,
            "--check-finite",
            "--method",
            "integrated-gradients",
        ],
    ] {
        let output = gradlens(&args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
}

/// `gradlens run --train --labels`: one train-mode step's loss, logits, every parameter's
/// gradient and the updated running statistics, as the library computes them in process, and
/// a loss equal to the mean cross-entropy of the logits it writes (computed here in f64).
#[test]
fn run_train_writes_the_loss_every_gradient_and_the_running_statistics() {
    use gradlens::autograd::Tape;
    use gradlens::nn::{Forward, Mode};

    let dir = folder("run-train");
    let (weights, _, _) = fixtures(&dir);
    let [n, c, h, w] = [3, 1, 40, 40];
    let input = common::Rng::new(31).vec(n * c * h * w);
    let input_file = dir.join("x.safetensors");
    let no_metadata = std::collections::HashMap::new();
    gradlens::weights::save_f32(
        &input_file,
        &[("input", &[n, c, h, w], &input)],
        &no_metadata,
    )
    .unwrap();
    let out = dir.join("step.safetensors");
    // One labels tensor [3] of `dtype` from its bytes, and `run --train` on it.
    let run_train = |name: &str, dtype, bytes: Vec<u8>| {
        let labels_file = dir.join(name);
        let view = safetensors::tensor::TensorView::new(dtype, vec![3], &bytes).unwrap();
        safetensors::serialize_to_file([("labels", view)], None, &labels_file).unwrap();
        gradlens(&[
            "run",
            "--arch",
            "resnet18",
            "--weights",
            weights.to_str().unwrap(),
            "--input",
            input_file.to_str().unwrap(),
            "--train",
            "--labels",
            labels_file.to_str().unwrap(),
            "--input-grad",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    // Integer labels, as PyTorch writes them.
    let labels: [i64; 3] = [1, 0, 1];
    let bytes = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    let output = run_train("labels.safetensors", safetensors::Dtype::I64, bytes);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let written = gradlens::weights::WeightsFile::open(&out).unwrap();

    // The loss is the mean cross-entropy of the written logits.
    let logits = &written.get("logits").unwrap().data;
    let cross_entropy: f64 = logits
        .chunks(2)
        .zip(labels)
        .map(|(row, label)| {
            let row: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
            let max = row.iter().copied().fold(f64::MIN, f64::max);
            let log_sum = row.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
            log_sum - row[label as usize]
        })
        .sum::<f64>()
        / 3.0;
    let loss = f64::from(written.get("loss").unwrap().data[0]);
    assert!(
        (loss - cross_entropy).abs() < 1e-5,
        "{loss} vs {cross_entropy}"
    );

    // The same step in process, on a model of its own.
    let file = gradlens::weights::WeightsFile::open(&weights).unwrap();
    let loaded = gradlens::checkpoint::load(gpu(), &file, Some("resnet18")).unwrap();
    let tape = Tape::new();
    let f = Forward::new(&tape, &loaded.store, Mode::Train);
    let x = tape.input(Tensor::from_slice(gpu(), [n, c, h, w], &input).unwrap());
    let want_logits = loaded.model.forward(&f, &x).unwrap();
    let want_loss = tape.cross_entropy(&want_logits, &[1, 0, 1], None).unwrap();
    let grads = tape.backward(&want_loss, None).unwrap();
    common::assert_close(
        "logits",
        logits,
        &want_logits.tensor().to_vec().unwrap(),
        1e-6,
        1e-7,
    );
    let mut parameters = 0;
    for (name, _) in loaded.store.parameters() {
        let got = &written
            .get(&format!("grad.{name}"))
            .unwrap_or_else(|| panic!("no grad.{name} written"))
            .data;
        let want = grads.named(name).unwrap().to_vec().unwrap();
        common::assert_close(&format!("grad.{name}"), got, &want, 1e-5, 1e-7);
        parameters += 1;
    }
    assert_eq!(parameters, 62, "ResNet-18 has 62 parameters");
    for (name, buffer) in loaded.store.buffers() {
        let got = &written
            .get(name)
            .unwrap_or_else(|| panic!("no {name} written"))
            .data;
        common::assert_close(name, got, &buffer.to_vec().unwrap(), 1e-6, 1e-7);
    }
    let input_grad = &written.get("input_grad").unwrap().data;
    let want = grads.get(&x).unwrap().to_vec().unwrap();
    common::assert_close("input_grad", input_grad, &want, 1e-5, 1e-7);

    // Bad labels: one line naming the file and the problem.
    let bytes = [1.0f32, 2.0, 0.5]
        .iter()
        .flat_map(|l| l.to_le_bytes())
        .collect();
    let output = run_train("bad-labels.safetensors", safetensors::Dtype::F32, bytes);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("bad-labels.safetensors") && stderr.contains("label 1 is 2"),
        "{stderr}"
    );
}

/// DICOM files through classify, saliency and an ImageFolder: the CT's window changes what the
/// model sees, a frame of a multi-frame file is chosen, and a file gradlens cannot decode ends
/// in one line naming its transfer syntax.
#[test]
fn dicom_images_through_the_binary() {
    let dir = folder("dicom");
    let (weights, _, _) = fixtures(&dir);
    let w = weights.to_str().unwrap();
    let dicom = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom");
    let ct = dicom.join("ct16_signed_big_endian.dcm");
    let ct = ct.to_str().unwrap();
    let logits = |extra: &[&str]| -> serde_json::Value {
        let output = gradlens(&[&["classify", ct, "--weights", w, "--json"], extra].concat());
        assert!(output.status.success(), "{}", text(&output.stderr));
        let json: serde_json::Value = serde_json::from_str(text(&output.stdout).trim()).unwrap();
        json["results"][0]["logits"].clone()
    };
    let (file_window, bone) = (logits(&[]), logits(&["--window", "300,1500"]));
    assert_ne!(file_window, bone, "the window given changes the input");

    let heat = dir.join("frame2.png");
    let frames = dicom.join("multiframe16.dcm");
    let frames = frames.to_str().unwrap();
    let args = [
        "saliency",
        frames,
        "--weights",
        w,
        "--frame",
        "2",
        "--out",
        heat.to_str().unwrap(),
    ];
    let output = gradlens(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        image::open(&heat).is_ok(),
        "the overlay of a DICOM frame is a PNG"
    );

    // --frame all: every frame an image of its own, each as --frame K reads it.
    let classified = |extra: &[&str]| -> serde_json::Value {
        let args = [&["classify", frames, "--weights", w, "--json"], extra].concat();
        let output = gradlens(&args);
        assert!(output.status.success(), "{}", text(&output.stderr));
        serde_json::from_str(text(&output.stdout).trim()).unwrap()
    };
    let all = classified(&["--frame", "all"]);
    let results = all["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "three frames");
    for (k, result) in results.iter().enumerate() {
        assert_eq!(result["frame"], k);
        // In a batch of three, not alone: equal within the kernels' rounding.
        let alone = classified(&["--frame", &k.to_string()]);
        let values = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        };
        common::assert_close(
            &format!("frame {k}"),
            &values(&result["logits"]),
            &values(&alone["results"][0]["logits"]),
            1e-5,
            1e-6,
        );
    }
    assert_ne!(
        results[0]["logits"], results[2]["logits"],
        "the frames differ"
    );
    let every = dir.join("every_frame");
    let output = gradlens(&[
        "saliency",
        frames,
        "--weights",
        w,
        "--frame",
        "all",
        "--raw-out",
        every.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let single = dir.join("frame2.safetensors");
    let output = gradlens(&[
        "saliency",
        frames,
        "--weights",
        w,
        "--frame",
        "2",
        "--raw-out",
        single.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let map = |path: &Path| {
        gradlens::weights::WeightsFile::open(path)
            .unwrap()
            .get("saliency")
            .unwrap()
            .data
            .clone()
    };
    common::assert_close(
        "frame 2's map",
        &map(&every.join("multiframe16_frame2.safetensors")),
        &map(&single),
        1e-4,
        1e-7,
    );
    // A replay of the manifest explains the same frames again.
    let replayed = dir.join("every_frame_again");
    let output = gradlens(&[
        "saliency",
        "--manifest",
        every.join("manifest.json").to_str().unwrap(),
        "--raw-out",
        replayed.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    for k in 0..3 {
        let name = format!("multiframe16_frame{k}.safetensors");
        assert_eq!(
            map(&replayed.join(&name)),
            map(&every.join(&name)),
            "{name}"
        );
    }

    // An ImageFolder of DICOM files.
    let data = dir.join("data");
    for (class, name) in [("a", "mono8_explicit_le.dcm"), ("b", "mono12_rle.dcm")] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        std::fs::copy(dicom.join(name), data.join(class).join(name)).unwrap();
    }
    let samples = gradlens::train::image_folder::scan(&data).unwrap();
    assert_eq!((samples.paths.len(), samples.labels), (2, vec![0, 1]));

    // The overlay as a Secondary Capture in the source's study, then anonymised.
    let source = dicom_object::open_file(ct).unwrap();
    let field = |object: &dicom_object::DefaultDicomObject, tag| {
        object
            .element(tag)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(['\0', ' '])
            .to_string()
    };
    use dicom_dictionary_std::tags;
    for anonymise in [false, true] {
        let png = dir.join(format!("ct_{anonymise}.png"));
        let mut args = vec![
            "saliency",
            ct,
            "--weights",
            w,
            "--out",
            png.to_str().unwrap(),
        ];
        args.push("--secondary-capture");
        if anonymise {
            args.push("--anonymise");
        }
        let output = gradlens(&args);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let capture_path = png.with_extension("dcm");
        let capture = dicom_object::open_file(&capture_path).unwrap();
        let overlay = image::open(&png).unwrap().to_rgb8();
        assert_eq!(
            field(&capture, tags::SOP_CLASS_UID),
            "1.2.840.10008.5.1.4.1.1.7"
        );
        assert_eq!(field(&capture, tags::ROWS), overlay.height().to_string());
        assert_eq!(field(&capture, tags::COLUMNS), overlay.width().to_string());
        let pixels = capture
            .element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap();
        assert_eq!(
            &pixels[..],
            overlay.as_raw().as_slice(),
            "the capture holds the overlay"
        );
        let same_study =
            field(&capture, tags::STUDY_INSTANCE_UID) == field(&source, tags::STUDY_INSTANCE_UID);
        let bytes = std::fs::read(&capture_path).unwrap();
        let holds = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        if anonymise {
            assert_eq!(field(&capture, tags::PATIENT_ID), "");
            assert_eq!(field(&capture, tags::PATIENT_IDENTITY_REMOVED), "YES");
            assert!(
                !same_study,
                "an anonymised capture starts a study of its own"
            );
            let identifiers = [
                "GL-0001", "Phantom", "19700101", "ACC-7781", "ST-42", "20261207", "Referrer",
            ];
            for identifier in identifiers {
                assert!(!holds(identifier), "{identifier} survived anonymisation");
            }
            assert!(
                !holds(&field(&source, tags::SOP_INSTANCE_UID)),
                "the source is referenced"
            );
        } else {
            assert_eq!(field(&capture, tags::PATIENT_ID), "GL-0001");
            assert_eq!(
                field(&capture, tags::PATIENT_NAME),
                field(&source, tags::PATIENT_NAME)
            );
            assert!(same_study, "the capture belongs to the source's study");
        }
    }
    // A source whose pixels may carry burned-in text is not anonymised.
    let mut object = dicom_object::open_file(dicom.join("mono8_explicit_le.dcm")).unwrap();
    object.put(dicom_core::DataElement::new(
        tags::BURNED_IN_ANNOTATION,
        dicom_core::VR::CS,
        "YES",
    ));
    let burned = dir.join("burned_source.dcm");
    object.write_to_file(&burned).unwrap();
    let heat = dir.join("burned.png");
    let args = [
        "saliency",
        burned.to_str().unwrap(),
        "--weights",
        w,
        "--out",
        heat.to_str().unwrap(),
        "--secondary-capture",
        "--anonymise",
    ];
    let output = gradlens(&args);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("Burned In Annotation is \"YES\""),
        "{stderr}"
    );
    assert!(!heat.with_extension("dcm").exists());

    // A PNG has no study: the overlay is written, the capture is not, and a note says so.
    let png_input = dir.join("plain.png");
    image::open(dir.join("ct_false.png"))
        .unwrap()
        .save(&png_input)
        .unwrap();
    let plain_out = dir.join("plain_heat.png");
    let args = [
        "saliency",
        png_input.to_str().unwrap(),
        "--weights",
        w,
        "--out",
        plain_out.to_str().unwrap(),
        "--secondary-capture",
    ];
    let output = gradlens(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("not a DICOM file, so no secondary capture"));
    assert!(plain_out.is_file() && !plain_out.with_extension("dcm").exists());

    let j2k = dicom.join("jpeg2000_unsupported.dcm");
    for (args, phrase) in [
        (
            vec!["classify", j2k.to_str().unwrap(), "--weights", w],
            "JPEG 2000",
        ),
        (
            vec!["classify", frames, "--weights", w, "--frame", "5"],
            "frame 5 asked of a file with 3",
        ),
    ] {
        let output = gradlens(&args);
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(phrase), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{args:?}: one line, got {stderr}"
        );
    }
    // A malformed frame or window is clap's usage error, which names the flag and the form.
    let output = gradlens(&["classify", frames, "--weights", w, "--frame", "last"]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("a frame index from 0, or \"all\""),
        "{}",
        text(&output.stderr)
    );
    let output = gradlens(&["classify", ct, "--weights", w, "--window", "40"]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("CENTER,WIDTH"),
        "{}",
        text(&output.stderr)
    );
}
