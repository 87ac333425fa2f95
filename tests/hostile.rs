//! Hostile input at the command line: every subcommand that reads files (run, classify,
//! saliency, evaluate) given truncated and empty files, safetensors headers whose length or
//! offsets lie, shapes that disagree with their bytes, wrong dtypes, zero-sized tensors, NaN
//! and infinity, 0 × 0 and 100000 × 100000 images, directories where files belong, and
//! outputs that cannot be written. Each must end with one line on stderr that starts with
//! `gradlens:` and names the culprit, a non-zero exit, no panic, no output file (not even a
//! partial one), and no gigabytes allocated on the way.

#[path = "robustness/files.rs"]
mod files;
mod robustness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use files::{encoded_image, input_file, png_header_claiming, raw_safetensors, resnet_checkpoint};

/// A fresh folder for one test.
fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradlens-hostile-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What one run of the binary left behind.
struct Outcome {
    success: bool,
    stderr: String,
    elapsed: Duration,
    /// The process's peak resident memory (VmHWM), polled while it runs; None off Linux.
    peak_bytes: Option<u64>,
}

fn gradlens(args: &[&str]) -> Outcome {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gradlens"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env_remove("RUST_BACKTRACE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_bytes = None;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        // VmHWM only grows: the last reading before exit is the process's peak so far.
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            let kilobytes = status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| rest.trim().trim_end_matches(" kB").parse::<u64>().ok());
            peak_bytes = kilobytes.map(|k| k * 1024).or(peak_bytes);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    Outcome {
        success: status.success(),
        stderr,
        elapsed: start.elapsed(),
        peak_bytes,
    }
}

/// The longest error line a person is asked to read.
const MAX_ERROR_CHARS: usize = 500;

/// The one way a hostile input may end: a non-zero exit, exactly one non-empty line on
/// stderr starting with "gradlens:", shorter than `MAX_ERROR_CHARS` and containing each of
/// `names` (the file or the thing at fault, and what is wrong with it),
/// no panic, within `seconds`, under 1 GiB of resident memory, and none of `outputs` (nor
/// their `.partial` files) on disk.
#[track_caller]
fn refused(args: &[&str], names: &[&str], outputs: &[&Path], seconds: f64) {
    let outcome = gradlens(args);
    let stderr = &outcome.stderr;
    assert!(!outcome.success, "{args:?} succeeded; stderr {stderr:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line, got {stderr:?}");
    assert!(
        lines[0].starts_with("gradlens: ") && lines[0].len() > "gradlens: ".len(),
        "{args:?}: {stderr:?}"
    );
    assert!(
        lines[0].len() < MAX_ERROR_CHARS,
        "{args:?}: {} characters, more than a person reads: {stderr:?}",
        lines[0].len()
    );
    for name in names {
        assert!(
            lines[0].contains(name),
            "{args:?}: {name:?} not in {stderr:?}"
        );
    }
    for bad in ["panicked", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(bad), "{args:?}: {stderr:?}");
    }
    assert!(
        outcome.elapsed.as_secs_f64() < seconds,
        "{args:?}: took {:?}",
        outcome.elapsed
    );
    if let Some(peak) = outcome.peak_bytes {
        assert!(
            peak < 1 << 30,
            "{args:?}: peak resident memory {peak} bytes"
        );
    }
    for output in outputs {
        assert!(!output.exists(), "{args:?} left {}", output.display());
        let mut partial = output.as_os_str().to_os_string();
        partial.push(".partial");
        assert!(!Path::new(&partial).exists(), "{args:?} left {partial:?}");
    }
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The honest files every test starts from: a narrow ResNet-18 checkpoint (one input channel,
/// two classes, 32 × 32 input), a gray PNG, and a `run` input [1, 1, 32, 32].
struct Honest {
    weights: PathBuf,
    image: PathBuf,
    input: PathBuf,
}

fn honest(dir: &Path) -> Honest {
    let files = Honest {
        weights: dir.join("model.safetensors"),
        image: dir.join("gray.png"),
        input: dir.join("x.safetensors"),
    };
    std::fs::write(&files.weights, resnet_checkpoint()).unwrap();
    std::fs::write(&files.image, encoded_image(0, 20, 24, 1)).unwrap();
    std::fs::write(
        &files.input,
        input_file("input", &[1, 1, 32, 32], &[0.25, -0.5]),
    )
    .unwrap();
    files
}

/// A checkpoint whose tensors (name, dims, bytes) replace or join the honest one's.
fn edited_checkpoint(edits: &[(&str, &str, &[usize], Vec<u8>)], metadata: &str) -> Vec<u8> {
    let honest =
        gradlens::weights::WeightsFile::from_bytes(&resnet_checkpoint(), "honest").unwrap();
    let mut entries = Vec::new();
    let mut data = Vec::new();
    let mut push = |name: &str, dtype: &str, dims: &[usize], bytes: &[u8]| {
        let begin = data.len();
        data.extend_from_slice(bytes);
        entries.push(format!(
            "{name:?}:{{\"dtype\":{dtype:?},\"shape\":{dims:?},\"data_offsets\":[{begin},{}]}}",
            data.len()
        ));
    };
    for name in honest.names() {
        if edits.iter().any(|(edited, ..)| *edited == name) {
            continue;
        }
        let tensor = honest.get(name).unwrap();
        let bytes: Vec<u8> = tensor.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        push(name, "F32", &tensor.dims, &bytes);
    }
    for (name, dtype, dims, bytes) in edits {
        push(name, dtype, dims, bytes);
    }
    let header = format!("{{{},\"__metadata__\":{metadata}}}", entries.join(","));
    raw_safetensors(&header, None, &data)
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The honest checkpoint's metadata, with `key` replaced.
fn metadata_with(key: &str, value: &str) -> String {
    let mut metadata = honest_metadata();
    metadata.insert(key.to_string(), value.to_string());
    serde_json::to_string(&metadata).unwrap()
}

/// The honest checkpoint's metadata, without `key`.
fn metadata_without(key: &str) -> String {
    let mut metadata = honest_metadata();
    metadata.remove(key);
    serde_json::to_string(&metadata).unwrap()
}

fn honest_metadata() -> std::collections::HashMap<String, String> {
    let honest =
        gradlens::weights::WeightsFile::from_bytes(&resnet_checkpoint(), "honest").unwrap();
    honest.metadata().clone()
}

/// An ImageFolder with one honest image per class (the checkpoint's two).
fn image_folder(dir: &Path, image: &Path) -> PathBuf {
    let data = dir.join("data");
    for (class, name) in [("lesion", "a.png"), ("no lesion", "b.png")] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        std::fs::copy(image, data.join(class).join(name)).unwrap();
    }
    data
}

/// Gives each lying weights file to classify, run, saliency (with outputs) and evaluate.
fn refuse_weights(test: &str, cases: &[(&str, Vec<u8>, &str)]) {
    let dir = folder(test);
    let honest = honest(&dir);
    let data = image_folder(&dir, &honest.image);
    let out = dir.join("y.safetensors");
    let heat = dir.join("heat.png");
    let raw = dir.join("heat.safetensors");
    for (name, bytes, message) in cases {
        let weights = dir.join(format!("{name}.safetensors"));
        std::fs::write(&weights, bytes).unwrap();
        let (w, file) = (
            arg(&weights),
            weights.file_name().unwrap().to_str().unwrap(),
        );
        let names = [file, message];
        let image = arg(&honest.image);
        refused(&["classify", image, "--weights", w], &names, &[], 30.0);
        let input = arg(&honest.input);
        let run = [
            "run",
            "--arch",
            "resnet18",
            "--weights",
            w,
            "--input",
            input,
            "--out",
            arg(&out),
        ];
        refused(&run, &names, &[&out], 30.0);
        let saliency = [
            "saliency",
            image,
            "--weights",
            w,
            "--out",
            arg(&heat),
            "--raw-out",
            arg(&raw),
        ];
        refused(&saliency, &names, &[&heat, &raw], 30.0);
        refused(
            &["evaluate", "--weights", w, "--data", arg(&data)],
            &names,
            &[],
            30.0,
        );
    }
}

/// The honest checkpoint's header and data, to be reassembled with a lying length.
fn honest_parts() -> (String, Vec<u8>) {
    let checkpoint = resnet_checkpoint();
    let length = u64::from_le_bytes(checkpoint[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&checkpoint[8..8 + length])
        .unwrap()
        .to_string();
    (header, checkpoint[8 + length..].to_vec())
}

#[test]
fn weights_files_whose_bytes_lie() {
    let checkpoint = resnet_checkpoint();
    let (header, data) = honest_parts();
    let invalid = "not a valid safetensors file";
    refuse_weights(
        "bytes",
        &[
            ("empty", Vec::new(), invalid),
            ("five-bytes", checkpoint[..5].to_vec(), invalid),
            (
                "truncated",
                checkpoint[..checkpoint.len() / 2].to_vec(),
                invalid,
            ),
            (
                "length-huge",
                raw_safetensors(&header, Some(1 << 40), &data),
                invalid,
            ),
            (
                "length-short",
                raw_safetensors(&header, Some(header.len() as u64 - 7), &data),
                invalid,
            ),
            (
                "offsets-past-the-end",
                raw_safetensors(
                    r#"{"fc.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#,
                    None,
                    &[0; 8],
                ),
                invalid,
            ),
            (
                "offsets-reversed",
                raw_safetensors(
                    r#"{"fc.weight":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
                    None,
                    &[0; 8],
                ),
                invalid,
            ),
            (
                "shape-disagrees-with-bytes",
                edited_checkpoint(
                    &[("fc.bias", "F32", &[2], f32_bytes(&[0.0; 3]))],
                    &honest_meta(),
                ),
                invalid,
            ),
        ],
    );
}

fn honest_meta() -> String {
    metadata_with("arch", "resnet18")
}

#[test]
fn weights_files_whose_tensors_lie() {
    let meta = honest_meta();
    let f64_bytes: Vec<u8> = [1e300f64, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    refuse_weights(
        "tensors",
        &[
            (
                "integer-weights",
                edited_checkpoint(&[("fc.bias", "I64", &[2], vec![0; 16])], &meta),
                "dtype I64",
            ),
            (
                "zero-sized-head",
                edited_checkpoint(
                    &[
                        ("fc.weight", "F32", &[1_000_000_000_000, 0], Vec::new()),
                        ("fc.bias", "F32", &[0], Vec::new()),
                    ],
                    // Without class names, the head's rows once named that many classes.
                    &metadata_without("class_names"),
                ),
                "fc.weight is empty",
            ),
            (
                "zero-sized-bias",
                edited_checkpoint(&[("fc.bias", "F32", &[0], Vec::new())], &meta),
                "fc.bias is [0]",
            ),
            (
                "nan-weight",
                edited_checkpoint(
                    &[("fc.bias", "F32", &[2], f32_bytes(&[0.0, f32::NAN]))],
                    &meta,
                ),
                "fc.bias holds NaN",
            ),
            (
                "infinite-weight",
                edited_checkpoint(
                    &[(
                        "bn1.running_var",
                        "F32",
                        &[4],
                        f32_bytes(&[1.0, 1.0, f32::INFINITY, 1.0]),
                    )],
                    &meta,
                ),
                "bn1.running_var holds inf",
            ),
            (
                "f64-beyond-f32",
                edited_checkpoint(&[("fc.bias", "F64", &[2], f64_bytes)], &meta),
                "fc.bias holds inf",
            ),
        ],
    );
}

#[test]
fn weights_files_whose_metadata_lies() {
    refuse_weights(
        "metadata",
        &[
            (
                "width-lies",
                edited_checkpoint(&[], &metadata_with("width", "100000")),
                "width 100000",
            ),
            (
                "std-zero",
                edited_checkpoint(&[], &metadata_with("std", "[0]")),
                "std [0.0]",
            ),
            (
                "mean-nan",
                edited_checkpoint(&[], &metadata_with("mean", "[\"NaN\"]")),
                "mean [NaN]",
            ),
            (
                // Within imaging::MAX_SIDE: one gray image resized to it was 1 GB of f32.
                "input-size-16384",
                edited_checkpoint(&[], &metadata_with("input_size", "16384")),
                "input_size \"16384\"",
            ),
            (
                "input-size-huge",
                edited_checkpoint(&[], &metadata_with("input_size", "100000")),
                "input_size",
            ),
            (
                "class-names-short",
                edited_checkpoint(&[], &metadata_with("class_names", "[\"one\"]")),
                "1 class names",
            ),
        ],
    );
}

#[test]
fn folders_where_files_belong() {
    let dir = folder("folders");
    let honest = honest(&dir);
    let data = image_folder(&dir, &honest.image);
    let out = dir.join("y.safetensors");
    let heat = dir.join("heat.png");
    let imageless = dir.join("notes");
    std::fs::create_dir_all(&imageless).unwrap();
    std::fs::write(imageless.join("readme.txt"), "no images here").unwrap();
    let folder_name = dir.file_name().unwrap().to_str().unwrap();
    let image_folder_name = "data";
    let cases: Vec<(Vec<&str>, &str, Vec<&Path>)> = vec![
        (
            vec!["classify", arg(&honest.image), "--weights", arg(&dir)],
            folder_name,
            vec![],
        ),
        // classify and saliency take every image in a folder; a folder holding none is
        // refused.
        (
            vec![
                "classify",
                arg(&imageless),
                "--weights",
                arg(&honest.weights),
            ],
            "holds no PNG, JPEG, TIFF or DICOM images",
            vec![],
        ),
        (
            vec![
                "saliency",
                arg(&imageless),
                "--weights",
                arg(&honest.weights),
                "--out",
                arg(&heat),
            ],
            "holds no PNG, JPEG, TIFF or DICOM images",
            vec![&heat],
        ),
        (
            vec![
                "run",
                "--arch",
                "resnet18",
                "--weights",
                arg(&dir),
                "--input",
                arg(&honest.input),
                "--out",
                arg(&out),
            ],
            folder_name,
            vec![&out],
        ),
        (
            vec![
                "run",
                "--arch",
                "resnet18",
                "--weights",
                arg(&honest.weights),
                "--input",
                arg(&data),
                "--out",
                arg(&out),
            ],
            image_folder_name,
            vec![&out],
        ),
        (
            vec!["evaluate", "--weights", arg(&dir), "--data", arg(&data)],
            folder_name,
            vec![],
        ),
        // And the converse: a file where evaluate wants a folder.
        (
            vec![
                "evaluate",
                "--weights",
                arg(&honest.weights),
                "--data",
                arg(&honest.image),
            ],
            "gray.png",
            vec![],
        ),
    ];
    for (args, name, outputs) in cases {
        refused(&args, &[name], &outputs, 30.0);
    }
}

/// `run` input files that lie; the weights are honest.
#[test]
fn lying_run_inputs() {
    let dir = folder("inputs");
    let honest = honest(&dir);
    let out = dir.join("y.safetensors");
    let good = input_file("input", &[1, 1, 32, 32], &[0.5]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "not a valid safetensors file"),
        (
            "truncated",
            good[..good.len() - 100].to_vec(),
            "not a valid safetensors file",
        ),
        (
            "length-lies",
            {
                let mut bytes = good.clone();
                bytes[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
                bytes
            },
            "not a valid safetensors file",
        ),
        (
            "shape-disagrees-with-bytes",
            raw_safetensors(
                r#"{"input":{"dtype":"F32","shape":[1,1,4,4],"data_offsets":[0,60]}}"#,
                None,
                &[0; 60],
            ),
            "not a valid safetensors file",
        ),
        (
            "u8-input",
            raw_safetensors(
                r#"{"input":{"dtype":"U8","shape":[1,1,4,4],"data_offsets":[0,16]}}"#,
                None,
                &[7; 16],
            ),
            "dtype U8",
        ),
        (
            "zero-sized",
            input_file("input", &[0, 1, 32, 32], &[0.5]),
            "[0, 1, 32, 32]",
        ),
        (
            "three-dims",
            input_file("input", &[1, 32, 32], &[0.5]),
            "[1, 32, 32]",
        ),
        (
            "no-input",
            input_file("x", &[1, 1, 32, 32], &[0.5]),
            "no tensor named input",
        ),
    ];
    for (name, bytes, message) in &cases {
        let input = dir.join(format!("{name}.safetensors"));
        std::fs::write(&input, bytes).unwrap();
        let file = input.file_name().unwrap().to_str().unwrap();
        let args = [
            "run",
            "--arch",
            "resnet18",
            "--weights",
            arg(&honest.weights),
            "--input",
            arg(&input),
            "--out",
            arg(&out),
        ];
        refused(&args, &[file, message], &[&out], 30.0);
    }
}

/// NaN and infinity in `run`'s input, and an input of the wrong channel count, refused with
/// the file named (run calls gradlens::validate::run_input and run_input_fits first).
#[test]
fn run_inputs_with_non_finite_values_or_wrong_channels() {
    let dir = folder("inputs-values");
    let honest = honest(&dir);
    let out = dir.join("y.safetensors");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "nan",
            input_file("input", &[1, 1, 32, 32], &[0.5, f32::NAN]),
            "NaN",
        ),
        (
            "inf",
            input_file("input", &[1, 1, 32, 32], &[f32::NEG_INFINITY]),
            "-inf",
        ),
        (
            "rgb",
            input_file("input", &[1, 3, 32, 32], &[0.5]),
            "3 channels",
        ),
    ];
    for (name, bytes, message) in &cases {
        let input = dir.join(format!("{name}.safetensors"));
        std::fs::write(&input, bytes).unwrap();
        let file = input.file_name().unwrap().to_str().unwrap();
        let args = [
            "run",
            "--arch",
            "resnet18",
            "--weights",
            arg(&honest.weights),
            "--input",
            arg(&input),
            "--out",
            arg(&out),
        ];
        refused(&args, &[file, message], &[&out], 30.0);
    }
}

/// Images that lie, given to classify, saliency (with outputs) and evaluate (in a folder).
#[test]
fn lying_images() {
    let dir = folder("images");
    let honest = honest(&dir);
    let heat = dir.join("heat.png");
    let raw = dir.join("heat.safetensors");
    let png = encoded_image(0, 20, 24, 1);
    let cases: Vec<(&str, Vec<u8>, &str, f64)> = vec![
        (
            "empty.png",
            Vec::new(),
            "not a readable PNG, JPEG or TIFF image",
            30.0,
        ),
        (
            "truncated.png",
            png[..png.len() / 2].to_vec(),
            "not a readable PNG, JPEG or TIFF image",
            30.0,
        ),
        (
            "text.png",
            b"not a picture".to_vec(),
            "not a readable PNG, JPEG or TIFF image",
            30.0,
        ),
        (
            "zero.png",
            png_header_claiming(0, 0),
            "not a readable PNG, JPEG or TIFF image",
            30.0,
        ),
        // Fails from the header alone: fast, and nothing allocated for its pixels.
        (
            "huge.png",
            png_header_claiming(100_000, 100_000),
            "100000",
            10.0,
        ),
        ("big.png", png_header_claiming(16384, 16384), "pixels", 10.0),
    ];
    for (name, bytes, message, seconds) in &cases {
        let image = dir.join(name);
        std::fs::write(&image, bytes).unwrap();
        let names = [*name, message];
        let weights = arg(&honest.weights);
        refused(
            &["classify", arg(&image), "--weights", weights],
            &names,
            &[],
            *seconds,
        );
        refused(
            &[
                "saliency",
                arg(&image),
                "--weights",
                weights,
                "--out",
                arg(&heat),
                "--raw-out",
                arg(&raw),
            ],
            &names,
            &[&heat, &raw],
            *seconds,
        );
        let data = dir.join(format!("data-{name}"));
        image_folder(&data, &honest.image);
        std::fs::write(data.join("data/lesion").join(name), bytes).unwrap();
        refused(
            &[
                "evaluate",
                "--weights",
                weights,
                "--data",
                arg(&data.join("data")),
            ],
            &names,
            &[],
            30.0,
        );
    }
}

/// A 1 × 1 image is no lie: it is resized to the input size and classified.
#[test]
fn a_one_pixel_image_is_classified() {
    let dir = folder("one-pixel");
    let honest = honest(&dir);
    let image = dir.join("one.png");
    std::fs::write(&image, encoded_image(1, 1, 1, 7)).unwrap();
    let outcome = gradlens(&[
        "classify",
        arg(&image),
        "--weights",
        arg(&honest.weights),
        "--json",
    ]);
    assert!(outcome.success, "{}", outcome.stderr);
}

/// Outputs that cannot be written: a missing folder, a folder in the file's place.
#[test]
fn unwritable_outputs() {
    let dir = folder("outputs");
    let honest = honest(&dir);
    let missing = dir.join("no-such-folder").join("y.safetensors");
    let taken = dir.join("taken");
    std::fs::create_dir_all(&taken).unwrap();
    let raw_missing = dir.join("no-such-folder").join("map.safetensors");
    let run = |out: &Path| {
        vec![
            "run".to_string(),
            "--arch".into(),
            "resnet18".into(),
            "--weights".into(),
            arg(&honest.weights).into(),
            "--input".into(),
            arg(&honest.input).into(),
            "--out".into(),
            arg(out).into(),
        ]
    };
    for out in [&missing, &taken] {
        let args = run(out);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, &["cannot write", arg(out)], &[&missing], 60.0);
        assert!(taken.is_dir() && std::fs::read_dir(&taken).unwrap().next().is_none());
    }
    refused(
        &[
            "saliency",
            arg(&honest.image),
            "--weights",
            arg(&honest.weights),
            "--raw-out",
            arg(&raw_missing),
        ],
        &["cannot write", "map.safetensors"],
        &[&raw_missing],
        60.0,
    );
    refused(
        &[
            "saliency",
            arg(&honest.image),
            "--weights",
            arg(&honest.weights),
            "--out",
            arg(&taken),
        ],
        &["taken"],
        &[],
        60.0,
    );
    assert!(taken.is_dir() && std::fs::read_dir(&taken).unwrap().next().is_none());
    // The honest run writes its output: the refusals above are the paths', not the harness's.
    let out = dir.join("y.safetensors");
    let args = run(&out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = gradlens(&args);
    assert!(outcome.success, "{}", outcome.stderr);
    assert!(out.exists());
}

/// A ResNet-18 checkpoint read as another architecture: one short line that names the
/// architecture the file holds and the flag to pass, never the hundreds of tensors that do not
/// fit (issue: a 5.8 KB line); `--full-errors` lists every one after that line.
#[test]
fn weights_of_another_architecture() {
    let dir = folder("another-arch");
    let honest = honest(&dir);
    let (w, image, input) = (arg(&honest.weights), arg(&honest.image), arg(&honest.input));
    let out = dir.join("y.safetensors");
    let hint = ["model.safetensors", "holds a resnet18", "--arch resnet18"];
    for arch in [
        "resnet50",
        "resnet34",
        "densenet121",
        "vgg11_bn",
        "googlenet",
    ] {
        refused(
            &["classify", image, "--weights", w, "--arch", arch],
            &[&hint[..], &[arch]].concat(),
            &[],
            30.0,
        );
        let run = [
            "run",
            "--arch",
            arch,
            "--weights",
            w,
            "--input",
            input,
            "--out",
            arg(&out),
        ];
        refused(&run, &[&hint[..], &[arch]].concat(), &[&out], 30.0);
    }

    let listed = gradlens(&[
        "classify",
        image,
        "--weights",
        w,
        "--arch",
        "resnet50",
        "--full-errors",
    ]);
    let lines: Vec<&str> = listed.stderr.lines().collect();
    assert!(!listed.success);
    assert!(lines[0].contains("holds a resnet18"), "{}", lines[0]);
    assert!(
        lines.len() > 100 && lines[1..].iter().all(|line| line.starts_with("  ")),
        "every problem on a line of its own after the summary: {} lines",
        lines.len()
    );
    assert!(
        lines
            .iter()
            .any(|line| line.trim() == "missing layer1.0.conv3.weight"),
        "a ResNet-50's bottleneck conv3 is among the missing tensors"
    );
}
