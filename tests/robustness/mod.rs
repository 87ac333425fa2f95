//! The properties behind the fuzz targets (fuzz/fuzz_targets/*.rs) and tests/properties.rs:
//! each check takes one input, runs the library entry point a user's file or argument reaches,
//! and panics when a property fails. libFuzzer feeds them bytes; the property tests feed them
//! generated cases, so CI checks the same properties without a fuzzer.
//!
//! Included by path from the fuzz crate, so it uses only gradlens and its own dependencies.
#![allow(dead_code)] // each includer uses a different part of this module

use std::collections::HashMap;
use std::sync::OnceLock;

use gradlens::Gpu;
use gradlens::checkpoint::{MAX_INPUT_SIZE, ModelInfo};
use gradlens::imaging::{self, MAX_PIXELS, MAX_SIDE, Preprocess, Sizing};
use gradlens::kernels::conv2d::{Conv2d, conv2d_shapes};
use gradlens::kernels::pool::Pool2d;
use gradlens::models::{LesionNet, ModelConfig, build};
use gradlens::nn::ParamStore;
use gradlens::validate;
use gradlens::weights::WeightsFile;

/// The process's context: shape-only stores need one, though nothing is allocated on it.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new().unwrap_or_else(|error| panic!("needs an adapter: {error}")))
}

/// One small model of each family, as shape-only stores (no GPU memory), with the prefixes a
/// file may omit.
pub struct Family {
    pub name: &'static str,
    pub store: ParamStore,
    pub optional: &'static [&'static str],
}

/// The small configuration each family is checked in: one input channel, two classes, and a
/// narrow ResNet, so that a seed file of a whole model is a few hundred kilobytes.
pub fn small_config() -> ModelConfig {
    ModelConfig {
        in_channels: 1,
        classes: 2,
        width: 4,
        ..ModelConfig::default()
    }
}

pub fn families() -> &'static [Family] {
    static FAMILIES: OnceLock<Vec<Family>> = OnceLock::new();
    FAMILIES.get_or_init(|| {
        let mut families = Vec::new();
        for arch in [
            "resnet18",
            "vgg11",
            "densenet121",
            "googlenet",
            "inception_v3",
        ] {
            let config = ModelConfig {
                width: if arch == "resnet18" { 4 } else { 64 },
                ..small_config()
            };
            let mut store = ParamStore::shapes_only(gpu());
            let model = build(arch, &mut store, &config).expect("a small model builds");
            families.push(Family {
                name: arch,
                store,
                optional: model.optional_prefixes(),
            });
        }
        let mut store = ParamStore::shapes_only(gpu());
        LesionNet::new(&mut store, 1, 2, [4, 8, 8], 0).expect("LesionNet builds");
        families.push(Family {
            name: "lesion_net",
            store,
            optional: &[],
        });
        families
    })
}

/// The product of `dims`, or None where it overflows.
fn element_count(dims: &[usize]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |count, &d| count.checked_mul(d))
}

/// A safetensors file of every tensor `store` declares, with `value` everywhere, as f32 (the
/// seed files and the hostile tests' base checkpoints; no GPU memory needed).
pub fn checkpoint_bytes(
    store: &ParamStore,
    value: f32,
    metadata: Option<HashMap<String, String>>,
) -> Vec<u8> {
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = store
        .shapes()
        .map(|(name, dims, _)| {
            let count = element_count(dims).expect("a model's shapes fit in memory");
            let bytes = value.to_le_bytes().repeat(count);
            (name.to_string(), dims.to_vec(), bytes)
        })
        .collect();
    let views = tensors.iter().map(|(name, dims, bytes)| {
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, dims.clone(), bytes)
                .expect("shape and bytes agree");
        (name.clone(), view)
    });
    safetensors::serialize(views, metadata).expect("serialises")
}

/// Weights bytes → WeightsFile::from_bytes → ModelInfo::from_file (as classify reads a
/// checkpoint) → validate::model_fits, and check_fits against one small model of each family.
/// Properties: no panic; every parsed tensor holds exactly its shape's element count; what
/// the metadata and the head claim (classes, channels, width) is bounded by the values the
/// file really holds; check_fits accepts exactly the files whose tensors match the model.
pub fn weights_load(bytes: &[u8]) {
    let Ok(file) = WeightsFile::from_bytes(bytes, "fuzz.safetensors") else {
        return;
    };
    let mut values = 0usize;
    for name in file.names() {
        let tensor = file.get(name).expect("named tensors exist");
        assert_eq!(
            element_count(&tensor.dims),
            Some(tensor.data.len()),
            "{name}: shape {:?} and {} values",
            tensor.dims,
            tensor.data.len()
        );
        values += tensor.data.len();
    }
    let archs = [
        None,
        Some("resnet18"),
        Some("vgg11"),
        Some("densenet121"),
        Some("googlenet"),
        Some("inception_v3"),
    ];
    for arch in archs {
        let Ok(info) = ModelInfo::from_file(&file, arch) else {
            continue;
        };
        let config = &info.config;
        assert!(
            (1..=values).contains(&config.classes),
            "{arch:?}: {} classes from a file of {values} values",
            config.classes
        );
        assert_eq!(info.class_names.len(), config.classes);
        assert!(
            config.in_channels == 3 || (1..=values).contains(&config.in_channels),
            "{arch:?}: {} input channels from a file of {values} values",
            config.in_channels
        );
        assert!(
            config.width == 64 || (1..=values).contains(&config.width),
            "{arch:?}: width {} from a file of {values} values",
            config.width
        );
        let preprocess = &info.preprocess;
        assert_eq!(preprocess.mean.len(), config.in_channels);
        assert_eq!(preprocess.std.len(), config.in_channels);
        assert!(preprocess.mean.iter().all(|m| m.is_finite()));
        assert!(preprocess.std.iter().all(|s| s.is_finite() && *s > 0.0));
        let size = preprocess.input_size();
        assert!((1..=MAX_INPUT_SIZE).contains(&size), "input size {size}");
        let _ = validate::model_fits(gpu(), &file, &info);
    }
    for family in families() {
        let fits = family_fits(&file, family);
        match file.check_fits(&family.store, family.optional) {
            Ok(()) => assert!(fits, "{}: accepted a file that does not fit", family.name),
            Err(error) => {
                assert!(!fits, "{}: refused a fitting file: {error}", family.name);
                assert!(error.to_string().starts_with("fuzz.safetensors: "));
            }
        }
    }
}

/// check_fits's rule, written independently: every declared tensor present (or optional)
/// with the declared shape and finite values, and nothing undeclared in the file.
fn family_fits(file: &WeightsFile, family: &Family) -> bool {
    let declared_ok = family
        .store
        .shapes()
        .all(|(name, dims, _)| match file.get(name) {
            None => family.optional.iter().any(|p| name.starts_with(p)),
            Some(t) => t.dims == dims && t.data.iter().all(|v| v.is_finite()),
        });
    declared_ok && file.names().all(|name| family.store.contains(name))
}

/// `gradlens run`'s input file: bytes → WeightsFile::from_bytes → validate::run_input.
/// Property: it accepts exactly the files with a finite, non-empty 4-D `input`, and every
/// refusal names the file.
pub fn run_input(bytes: &[u8]) {
    let Ok(file) = WeightsFile::from_bytes(bytes, "input.safetensors") else {
        return;
    };
    let expected = file.get("input").is_some_and(|t| {
        t.dims.len() == 4 && !t.dims.contains(&0) && t.data.iter().all(|v| v.is_finite())
    });
    match validate::run_input(&file) {
        Ok(input) => {
            assert!(expected, "accepted input {:?}", input.dims);
            assert_eq!(element_count(&input.dims), Some(input.data.len()));
        }
        Err(error) => {
            assert!(!expected, "refused a valid input: {error}");
            assert!(error.to_string().starts_with("input.safetensors: "));
        }
    }
}

/// `gradlens run --train`'s labels file for a batch of 3 and 4 classes: bytes →
/// validate::run_labels. Property: no panic; what it accepts is one class index per image, each
/// below the class count; every refusal names the file.
pub fn run_labels(bytes: &[u8]) {
    match validate::run_labels("labels.safetensors", bytes, 3, 4) {
        Ok(labels) => {
            assert_eq!(labels.len(), 3, "accepted {labels:?}");
            assert!(labels.iter().all(|&label| label < 4), "accepted {labels:?}");
        }
        Err(error) => assert!(
            error.to_string().starts_with("labels.safetensors: "),
            "{error}"
        ),
    }
}

/// The preprocessing a fuzz input asks for: its first three bytes choose the channels and the
/// sizing (sizes 1 to 64, a crop never above its resize); the rest is the image.
pub fn preprocess_from_bytes(bytes: &[u8]) -> (Preprocess, &[u8]) {
    let byte = |i: usize| bytes.get(i).copied().unwrap_or(0) as usize;
    let channels = if byte(0) & 1 == 0 { 1 } else { 3 };
    let size = 1 + byte(1) % 64;
    let sizing = match byte(0) & 2 {
        0 => Sizing::Whole { size },
        _ => Sizing::ShorterSideThenCrop {
            resize: size + byte(2) % 16,
            crop: size,
        },
    };
    let preprocess = Preprocess {
        channels,
        sizing,
        mean: vec![0.5; channels],
        std: vec![0.25; channels],
    };
    (preprocess, bytes.get(3..).unwrap_or_default())
}

/// What any decoded image must be: the channels asked for, within MAX_SIDE and MAX_PIXELS,
/// every value in [0, 1].
fn check_decoded(planes: &imaging::Planes, channels: usize) {
    let (c, h, w) = (planes.channels, planes.height, planes.width);
    assert_eq!(c, channels);
    assert!((1..=MAX_SIDE as usize).contains(&h) && (1..=MAX_SIDE as usize).contains(&w));
    assert!((h * w) as u64 <= MAX_PIXELS);
    assert_eq!(planes.data.len(), c * h * w);
    assert!(
        planes.data.iter().all(|v| (0.0..=1.0 + 1e-6).contains(v)),
        "decoded values outside [0, 1]"
    );
}

/// Image bytes → imaging::decode → Preprocess::apply, as classify and saliency do with a file.
/// Properties: no panic; a decoded image is within MAX_SIDE and MAX_PIXELS with values in
/// [0, 1]; preprocessing yields exactly [C, S, S] finite values, or refuses only an image too
/// elongated for its resize; every refusal names the image.
pub fn image_preprocess(preprocess: &Preprocess, bytes: &[u8]) {
    let planes = match imaging::decode(bytes, "fuzz.png", preprocess.channels) {
        Ok(planes) => planes,
        Err(error) => {
            assert!(error.to_string().starts_with("fuzz.png: "), "{error}");
            return;
        }
    };
    check_decoded(&planes, preprocess.channels);
    let (c, h, w) = (planes.channels, planes.height, planes.width);
    // The resized long side, computed as torchvision does (shorter side to `resize`).
    let too_elongated = match preprocess.sizing {
        Sizing::ShorterSideThenCrop { resize, .. } => {
            let (short, long) = (h.min(w) as f64, h.max(w) as f64);
            (resize as f64 * long / short) as usize > MAX_SIDE as usize
        }
        Sizing::Whole { .. } => false,
    };
    match preprocess.apply(&planes) {
        Ok(x) => {
            let size = preprocess.input_size();
            assert!(
                !too_elongated,
                "a {h}×{w} image was resized beyond MAX_SIDE"
            );
            assert_eq!((x.channels, x.height, x.width), (c, size, size));
            assert_eq!(x.data.len(), c * size * size);
            assert!(x.data.iter().all(|v| v.is_finite()));
        }
        Err(error) => assert!(too_elongated, "a {h}×{w} image refused: {error}"),
    }
}

/// DICOM bytes → imaging::decode_with. Byte 0 chooses the channels (bit 0), a window given or
/// the file's (bit 1) and the frame (bits 2–3); the rest is the file. Properties: no panic; a
/// decoded frame is within MAX_SIDE and MAX_PIXELS with finite values in [0, 1]; every refusal
/// is one line naming the file.
pub fn dicom_decode(bytes: &[u8]) {
    let Some((&options, file)) = bytes.split_first() else {
        return;
    };
    let channels = if options & 1 == 0 { 1 } else { 3 };
    let dicom = imaging::DicomOptions {
        window: (options & 2 != 0).then_some(imaging::Window {
            center: 40.0,
            width: 400.0,
        }),
        frame: usize::from(options >> 2 & 3),
    };
    let planes = match imaging::decode_with(file, "fuzz.dcm", channels, &dicom) {
        Ok(planes) => planes,
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with("fuzz.dcm: "), "{message}");
            assert!(!message.contains('\n'), "{message}");
            return;
        }
    };
    check_decoded(&planes, channels);
}

/// Tiled TIFF bytes → imaging::slide::Slide: open, then per level the corner tiles' regions
/// (at most 64 × 64 each) and, for levels of at most 4096² pixels, the thumbnail. Properties:
/// no panic; every region read has the size asked and finite values in [0, 1]; every refusal
/// is one line naming the file.
pub fn slide_decode(bytes: &[u8]) {
    use gradlens::imaging::slide::Slide;
    let refused = |error: gradlens::Error| {
        let message = error.to_string();
        assert!(message.starts_with("fuzz.tif: "), "{message}");
        assert!(!message.contains('\n'), "{message}");
    };
    let mut slide = match Slide::from_reader(std::io::Cursor::new(bytes), "fuzz.tif") {
        Ok(slide) => slide,
        Err(error) => return refused(error),
    };
    let levels = slide.levels().to_vec();
    for (index, level) in levels.iter().enumerate() {
        let size = (level.width.min(64), level.height.min(64));
        let corners = [(0, 0), (level.width - size.0, level.height - size.1)];
        for at in corners {
            match slide.read_region(index, at, size) {
                Ok(region) => {
                    assert_eq!(
                        (region.width, region.height, region.channels),
                        (size.0, size.1, 3)
                    );
                    assert!(region.data.iter().all(|v| (0.0..=1.0).contains(v)));
                }
                Err(error) => refused(error),
            }
        }
    }
    let smallest = levels.last().expect("an open slide has a level");
    if smallest.width * smallest.height <= 4096 * 4096 {
        match slide.thumbnail(256) {
            Ok((thumbnail, _)) => assert!(thumbnail.width <= 256 && thumbnail.height <= 256),
            Err(error) => refused(error),
        }
    }
}

/// A convolution's arguments: input [N, C, H, W], weight [C_out, C_in/groups, KH, KW] and the
/// geometry.
#[derive(Clone, Debug)]
pub struct ConvCase {
    pub input: [usize; 4],
    pub weight: [usize; 4],
    pub conv: Conv2d,
}

/// A pooling's arguments: the input (H, W) and the window geometry.
#[derive(Clone, Debug)]
pub struct PoolCase {
    pub input: [usize; 2],
    pub pool: Pool2d,
}

/// Byte `i` of a fuzz input, 0 past its end.
fn byte(bytes: &[u8], i: usize) -> usize {
    bytes.get(i).copied().unwrap_or(0) as usize
}

/// Sizes from 1 (every size down to 1, no zero size, as tensors reaching an op have none);
/// the parameters that must be positive also take 0, so that their refusal is exercised.
pub fn conv_from_bytes(bytes: &[u8]) -> ConvCase {
    let b = |i| byte(bytes, i);
    let groups = b(0) % 5;
    let c_in = 1 + b(1) % 12;
    // Mostly the consistent C_in/groups, sometimes anything.
    let c_per_group = match (b(2) % 4, groups) {
        (0, _) | (_, 0) => b(3) % 13,
        _ => c_in / groups,
    };
    ConvCase {
        input: [1 + b(4) % 3, c_in, 1 + b(5) % 40, 1 + b(6) % 40],
        weight: [1 + b(7) % 12, c_per_group, b(8) % 12, b(9) % 12],
        conv: Conv2d {
            stride: [b(10) % 6, b(11) % 6],
            padding: [b(12) % 8, b(13) % 8],
            dilation: [b(14) % 5, b(15) % 5],
            groups,
        },
    }
}

pub fn pool_from_bytes(bytes: &[u8]) -> PoolCase {
    let b = |i| byte(bytes, i);
    PoolCase {
        input: [1 + b(0) % 40, 1 + b(1) % 40],
        pool: Pool2d {
            kernel: [b(2) % 9, b(3) % 9],
            stride: [b(4) % 6, b(5) % 6],
            padding: [b(6) % 6, b(7) % 6],
            ceil_mode: b(8) & 1 == 1,
        },
    }
}

/// PyTorch's Conv2d shape rule (its documentation's H_out formula, and ConvUtils's checks),
/// in signed arithmetic: the output [N, C_out, H_out, W_out], or None where PyTorch refuses.
pub fn conv_output_formula(case: &ConvCase) -> Option<[usize; 4]> {
    let [n, c_in, h, w] = case.input.map(|v| v as i64);
    let [c_out, c_per_group, kh, kw] = case.weight.map(|v| v as i64);
    let conv = &case.conv;
    let g = conv.groups as i64;
    if g < 1 || c_in % g != 0 || c_out % g != 0 || c_per_group * g != c_in {
        return None;
    }
    let mut out = [0usize; 2];
    for (axis, (size, kernel)) in [(h, kh), (w, kw)].into_iter().enumerate() {
        let (s, p, d) = (
            conv.stride[axis] as i64,
            conv.padding[axis] as i64,
            conv.dilation[axis] as i64,
        );
        if s < 1 || d < 1 || kernel < 1 {
            return None;
        }
        let numerator = size + 2 * p - d * (kernel - 1) - 1;
        if numerator < 0 {
            return None;
        }
        out[axis] = (numerator / s + 1) as usize;
    }
    Some([n as usize, c_out as usize, out[0], out[1]])
}

/// PyTorch's pooling_output_shape and pool2d_shape_check (dilation 1): the output (H, W), or
/// None where PyTorch refuses.
pub fn pool_output_formula(case: &PoolCase) -> Option<[usize; 2]> {
    let pool = &case.pool;
    let mut out = [0usize; 2];
    for (axis, slot) in out.iter_mut().enumerate() {
        let size = case.input[axis] as i64;
        let (k, s, p) = (
            pool.kernel[axis] as i64,
            pool.stride[axis] as i64,
            pool.padding[axis] as i64,
        );
        if k < 1 || s < 1 || size < 1 || p > k / 2 {
            return None;
        }
        let numerator = size + 2 * p - (k - 1) - 1 + if pool.ceil_mode { s - 1 } else { 0 };
        let mut length = numerator.div_euclid(s) + 1;
        if pool.ceil_mode && (length - 1) * s >= size + p {
            length -= 1;
        }
        if length < 1 {
            return None;
        }
        *slot = length as usize;
    }
    Some(out)
}

/// conv2d_shapes against the formula, both ways: what it accepts has the formula's shape,
/// and it accepts exactly what the formula accepts.
pub fn check_conv(case: &ConvCase) {
    let result = conv2d_shapes("conv2d", &case.input, &case.weight, &case.conv);
    match (result, conv_output_formula(case)) {
        (Ok(shapes), Some(output)) => {
            assert_eq!(shapes.output, output, "{case:?}");
            assert_eq!((shapes.input, shapes.weight), (case.input, case.weight));
        }
        (Ok(shapes), None) => panic!("{case:?}: accepted, output {:?}", shapes.output),
        (Err(error), Some(output)) => panic!("{case:?}: refused ({error}), PyTorch: {output:?}"),
        (Err(error), None) => assert!(error.to_string().starts_with("conv2d: ")),
    }
}

/// Pool2d::output_size against the formula, both ways: what it accepts has the formula's
/// shape (a ceil_mode window may overhang the padded input, as in PyTorch: a window of 3 on 2
/// pixels gives 1 output), and it accepts exactly what the formula accepts.
pub fn check_pool(case: &PoolCase) {
    let result = case.pool.output_size("max_pool2d", case.input);
    match (result, pool_output_formula(case)) {
        (Ok(output), Some(expected)) => assert_eq!(output, expected, "{case:?}"),
        (Ok(output), None) => panic!("{case:?}: accepted, output {output:?}"),
        (Err(error), Some(expected)) => {
            panic!("{case:?}: refused ({error}), PyTorch: {expected:?}")
        }
        (Err(error), None) => assert!(error.to_string().starts_with("max_pool2d: ")),
    }
}
