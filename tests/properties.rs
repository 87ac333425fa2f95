//! Property tests over what the fuzz targets reach (fuzz/): weights files into every model
//! family, `gradlens run`'s input file, image decoding and preprocessing, and conv / pool
//! argument validation. The properties themselves are in tests/robustness/mod.rs, shared
//! with the fuzz targets; here proptest generates structured cases (files whose header,
//! shapes, dtypes or values lie; images of every size and format, truncated or damaged) that
//! random bytes would rarely reach. Crashes found by fuzzing become named tests at the end.
//!
//! `cargo test --release --test properties -- --ignored write_seed_corpora` rewrites the fuzz
//! seed corpora (fuzz/corpus/<target>/seed-*) from the same generators.

#[path = "robustness/files.rs"]
mod files;
mod robustness;

use files::{
    encoded_image, input_file, lesion_net_checkpoint, png_header_claiming, raw_safetensors,
    resnet_checkpoint, tiff_header_claiming,
};
use gradlens::checkpoint::ModelInfo;
use gradlens::imaging::{self, Preprocess, Sizing};
use gradlens::kernels::conv2d::Conv2d;
use gradlens::kernels::pool::Pool2d;
use gradlens::models::ModelConfig;
use gradlens::weights::WeightsFile;
use proptest::prelude::*;
use robustness::{ConvCase, PoolCase, families};

/// Case counts keep the file to a few seconds in release mode.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One tensor entry of a hand-written header.
#[derive(Clone, Debug)]
struct Entry {
    name: String,
    dtype: &'static str,
    dims: Vec<usize>,
    /// Added to the true byte count in the offsets (a lie when non-zero).
    offset_lie: i64,
}

fn entry() -> impl Strategy<Value = Entry> {
    let names = prop::sample::select(vec![
        "input",
        "fc.weight",
        "fc.bias",
        "conv1.weight",
        "features.0.weight",
        "classifier.weight",
        "bn1.num_batches_tracked",
        "x",
    ]);
    let dtypes = prop::sample::select(vec!["F32", "F16", "BF16", "F64", "I64", "U8", "BOOL"]);
    let dims = prop::collection::vec(
        prop_oneof![4 => 0usize..6, 1 => Just(1usize << 40), 1 => Just(usize::MAX)],
        0..5,
    );
    let lie = prop_oneof![6 => Just(0i64), 1 => -8i64..8, 1 => Just(1i64 << 40)];
    (names, dtypes, dims, lie).prop_map(|(name, dtype, dims, offset_lie)| Entry {
        name: name.to_string(),
        dtype,
        dims,
        offset_lie,
    })
}

fn dtype_size(dtype: &str) -> usize {
    match dtype {
        "F64" | "I64" => 8,
        "F32" => 4,
        "F16" | "BF16" => 2,
        _ => 1,
    }
}

/// A header for `entries` (offsets consecutive, each possibly lying) and data bytes of the
/// length the true offsets need, filled with `fill`.
fn header_file(entries: &[Entry], metadata: Option<&str>, fill: u8) -> (String, Vec<u8>) {
    let mut fields = Vec::new();
    let mut offset: u64 = 0;
    for entry in entries {
        let count = entry
            .dims
            .iter()
            .try_fold(dtype_size(entry.dtype) as u64, |a, &d| {
                a.checked_mul(d as u64)
            });
        let bytes = count.unwrap_or(u64::MAX).min(1 << 16);
        let end = (offset + bytes).saturating_add_signed(entry.offset_lie);
        fields.push(format!(
            "{:?}:{{\"dtype\":{:?},\"shape\":{:?},\"data_offsets\":[{offset},{end}]}}",
            entry.name, entry.dtype, entry.dims
        ));
        offset += bytes;
    }
    if let Some(metadata) = metadata {
        fields.push(format!("\"__metadata__\":{metadata}"));
    }
    (
        format!("{{{}}}", fields.join(",")),
        vec![fill; offset as usize],
    )
}

#[test]
fn the_seed_checkpoints_fit_their_models() {
    // The harness's oracle must say yes to the files it is built around, or the mutations
    // below would test nothing but refusals.
    let file = WeightsFile::from_bytes(&resnet_checkpoint(), "resnet.safetensors").unwrap();
    file.check_fits(&families()[0].store, &[]).unwrap();
    let info = ModelInfo::from_file(&file, None).unwrap();
    assert_eq!((info.config.classes, info.config.width), (2, 4));
    gradlens::validate::model_fits(robustness::gpu(), &file, &info).unwrap();
    let file = WeightsFile::from_bytes(&lesion_net_checkpoint(), "lesion.safetensors").unwrap();
    file.check_fits(&families()[5].store, &[]).unwrap();
}

proptest! {
    #![proptest_config(config(4096))]

    #[test]
    fn weights_files_with_lying_headers(
        entries in prop::collection::vec(entry(), 0..4),
        metadata in prop::option::of(prop::sample::select(vec![
            r#"{"arch":"resnet18"}"#,
            r#"{"arch":"resnet18","width":"99999999999"}"#,
            r#"{"arch":"vgg11","mean":"[NaN]","std":"[0]"}"#,
            r#"{"input_size":"100000"}"#,
            r#"{"class_names":"[1,2"}"#,
            r#"{"nested":{"a":1}}"#,
        ])),
        length_lie in prop::option::of(prop_oneof![0u64..64, Just(u64::MAX), Just(1u64 << 40)]),
        fill in any::<u8>(),
        truncate in prop::option::of(0usize..256),
    ) {
        let (header, data) = header_file(&entries, metadata, fill);
        let mut bytes = raw_safetensors(&header, length_lie, &data);
        if let Some(keep) = truncate {
            bytes.truncate(keep);
        }
        robustness::weights_load(&bytes);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn damaged_checkpoints_of_a_whole_model(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        truncate in prop::option::of(any::<prop::sample::Index>()),
        lesion in any::<bool>(),
    ) {
        let mut bytes = match lesion {
            true => lesion_net_checkpoint(),
            false => resnet_checkpoint(),
        };
        // Mostly in the header (its length, the JSON), where a flipped byte changes meaning.
        let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for (at, value) in edits {
            let at = match value % 2 {
                0 => at.index(header_end),
                _ => at.index(bytes.len()),
            };
            bytes[at] = value;
        }
        if let Some(at) = truncate {
            bytes.truncate(at.index(bytes.len()));
        }
        robustness::weights_load(&bytes);
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn run_input_files(
        name in prop::sample::select(vec!["input", "x", "inputs"]),
        dims in prop::collection::vec(0usize..5, 0..6),
        values in prop::collection::vec(
            prop_oneof![8 => -2.0f32..2.0, 1 => Just(f32::NAN), 1 => Just(f32::INFINITY),
                        1 => Just(f32::NEG_INFINITY)],
            1..8,
        ),
    ) {
        let bytes = input_file(name, &dims, &values);
        robustness::run_input(&bytes);
        // The oracle's expectation, stated here once more for the plain cases.
        let file = WeightsFile::from_bytes(&bytes, "input.safetensors").unwrap();
        let count: usize = dims.iter().product();
        let finite = values.iter().take(count.max(1)).all(|v| v.is_finite()) || count == 0;
        let valid = name == "input" && dims.len() == 4 && !dims.contains(&0) && finite;
        prop_assert_eq!(gradlens::validate::run_input(&file).is_ok(), valid);
    }

    #[test]
    fn run_labels_files(
        dtype in prop::sample::select(vec![
            safetensors::Dtype::I64,
            safetensors::Dtype::I32,
            safetensors::Dtype::U8,
            safetensors::Dtype::F32,
            safetensors::Dtype::BF16,
        ]),
        count in 0usize..5,
        values in prop::collection::vec(
            prop_oneof![6 => (0i64..4).prop_map(|v| v as f64), 1 => Just(-1.0), 1 => Just(4.0),
                        1 => Just(1.5), 1 => Just(f64::NAN)],
            5,
        ),
    ) {
        let values = &values[..count];
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|&v| match dtype {
                safetensors::Dtype::I64 => (v as i64).to_le_bytes().to_vec(),
                safetensors::Dtype::I32 => (v as i32).to_le_bytes().to_vec(),
                safetensors::Dtype::U8 => vec![v as u8],
                safetensors::Dtype::BF16 => half::bf16::from_f64(v).to_le_bytes().to_vec(),
                _ => (v as f32).to_le_bytes().to_vec(),
            })
            .collect();
        let view = safetensors::tensor::TensorView::new(dtype, vec![count], &bytes).unwrap();
        let file = safetensors::serialize([("labels", view)], None).unwrap();
        robustness::run_labels(&file);
        // Accepted exactly when there are 3 whole labels within the 4 classes, as written
        // (integer dtypes hold what the cast made of them).
        let written: Vec<f64> = values
            .iter()
            .map(|&v| match dtype {
                safetensors::Dtype::I64 | safetensors::Dtype::I32 => (v as i64) as f64,
                safetensors::Dtype::U8 => f64::from(v as u8),
                _ => v,
            })
            .collect();
        let valid = count == 3
            && written.iter().all(|&v| v.fract() == 0.0 && (0.0..4.0).contains(&v));
        let result = gradlens::validate::run_labels("labels.safetensors", &file, 3, 4);
        prop_assert_eq!(result.is_ok(), valid, "{:?} {:?}", dtype, written);
    }

    #[test]
    fn run_input_channels_must_be_the_models(channels in 1usize..6, model_channels in 1usize..4) {
        let bytes = input_file("input", &[1, channels, 3, 3], &[0.5]);
        let file = WeightsFile::from_bytes(&bytes, "input.safetensors").unwrap();
        let input = gradlens::validate::run_input(&file).unwrap();
        let info = ModelInfo {
            arch: "resnet18".to_string(),
            config: ModelConfig { in_channels: model_channels, ..ModelConfig::default() },
            class_names: Vec::new(),
            preprocess: Preprocess::imagenet("resnet18"),
        };
        let result = gradlens::validate::run_input_fits("input.safetensors", input, &info);
        prop_assert_eq!(result.is_ok(), channels == model_channels);
    }
}

fn preprocess_strategy() -> impl Strategy<Value = Preprocess> {
    (any::<bool>(), any::<bool>(), 1usize..48, 0usize..16).prop_map(|(gray, whole, size, extra)| {
        let channels = if gray { 1 } else { 3 };
        Preprocess {
            channels,
            sizing: match whole {
                true => Sizing::Whole { size },
                false => Sizing::ShorterSideThenCrop {
                    resize: size + extra,
                    crop: size,
                },
            },
            mean: vec![0.5; channels],
            std: vec![0.25; channels],
        }
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn images_of_every_size_and_format(
        format in 0u8..8,
        width in prop_oneof![3 => 1u32..40, 1 => Just(1u32), 1 => 1000u32..2000],
        height in prop_oneof![3 => 1u32..40, 1 => Just(1u32)],
        seed in any::<u8>(),
        preprocess in preprocess_strategy(),
        damage in prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
        truncate in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = encoded_image(format, width, height, seed);
        if let Some((at, value)) = damage {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        if let Some(at) = truncate {
            bytes.truncate(at.index(bytes.len()));
        }
        robustness::image_preprocess(&preprocess, &bytes);
        if damage.is_none() && truncate.is_none() {
            // Undamaged, every image decodes (the 1 × 1 one included).
            let planes = imaging::decode(&bytes, "image", preprocess.channels).unwrap();
            prop_assert_eq!((planes.width, planes.height), (width as usize, height as usize));
        }
    }

    #[test]
    fn image_headers_claiming_huge_sizes_are_refused(
        width in prop_oneof![Just(0u32), 16385u32..200_000, Just(u32::MAX)],
        height in prop_oneof![Just(1u32), 5000u32..200_000],
        preprocess in preprocess_strategy(),
    ) {
        for bytes in [png_header_claiming(width, height), tiff_header_claiming(width, height)] {
            robustness::image_preprocess(&preprocess, &bytes);
            let result = imaging::decode(&bytes, "huge", preprocess.channels);
            prop_assert!(result.is_err(), "{width}×{height} decoded");
        }
    }
}

/// The DICOM fixtures (tests/fixtures/dicom, every transfer syntax and hostile header),
/// damaged at a few bytes and cut short, through `robustness::dicom_decode`.
fn dicom_fixtures() -> &'static [Vec<u8>] {
    static FILES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "dcm"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| std::fs::read(path).unwrap())
            .collect()
    })
}

proptest! {
    #[test]
    fn damaged_dicom_files_decode_or_end_in_one_line(
        file in any::<prop::sample::Index>(),
        options in any::<u8>(),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        truncate in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let files = dicom_fixtures();
        let mut bytes = vec![options];
        bytes.extend_from_slice(&files[file.index(files.len())]);
        for (at, value) in damage {
            let at = 1 + at.index(bytes.len() - 1);
            bytes[at] = value;
        }
        if let Some(at) = truncate {
            bytes.truncate(1 + at.index(bytes.len() - 1));
        }
        robustness::dicom_decode(&bytes);
    }
}

/// Small slides (gradlens's writer: classic and BigTIFF, uncompressed, deflate, JPEG, and laid
/// out as an SVS file; and tifffile's fixtures), damaged at a few bytes and cut short, through
/// `robustness::slide_decode`.
fn slide_files() -> &'static [Vec<u8>] {
    static FILES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        use gradlens::imaging::slide::{Compression, SyntheticSlide};
        let dir = std::env::temp_dir().join(format!("gradlens-slides-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let layout = SyntheticSlide::new((96, 80), 1, 7);
        let mut files = Vec::new();
        for (i, (big, compression)) in [
            (false, Compression::None),
            (true, Compression::Deflate),
            (false, Compression::Jpeg),
        ]
        .into_iter()
        .enumerate()
        {
            let path = dir.join(format!("{i}.tif"));
            layout.write(&path, big, compression, 32, 2).unwrap();
            files.push(std::fs::read(&path).unwrap());
        }
        let svs = dir.join("svs.tif");
        layout.write_like_svs(&svs, false, 32, 2).unwrap();
        files.push(std::fs::read(&svs).unwrap());
        let fixtures =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/slide");
        for name in ["deflate_bigtiff.tif", "jpeg_ycbcr.tif", "lzw_gray16.tif"] {
            files.push(std::fs::read(fixtures.join(name)).unwrap());
        }
        files
    })
}

proptest! {
    #[test]
    fn damaged_slides_read_or_end_in_one_line(
        file in any::<prop::sample::Index>(),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        truncate in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let files = slide_files();
        let mut bytes = files[file.index(files.len())].clone();
        for (at, value) in damage {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        if let Some(at) = truncate {
            bytes.truncate(at.index(bytes.len()));
        }
        robustness::slide_decode(&bytes);
    }
}

#[test]
fn a_100000_pixel_square_header_fails_fast() {
    let start = std::time::Instant::now();
    let error = imaging::decode(&png_header_claiming(100_000, 100_000), "huge.png", 3)
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("huge.png: "), "{error}");
    assert!(error.contains("100000×100000"), "{error}");
    assert!(start.elapsed().as_secs_f64() < 1.0, "{:?}", start.elapsed());
    // Within MAX_SIDE per side, beyond MAX_PIXELS: refused from the header too.
    let error = imaging::decode(&png_header_claiming(16384, 16384), "big.png", 1)
        .unwrap_err()
        .to_string();
    assert!(error.contains("pixels"), "{error}");
    // A TIFF's directory claiming as much is refused the same way, before its strips.
    let error = imaging::decode(&tiff_header_claiming(100_000, 100_000), "huge.tif", 1)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("100000×100000, beyond 16384 pixels a side"),
        "{error}"
    );
}

#[test]
fn preprocess_refuses_a_normalisation_of_the_wrong_length() {
    let image = imaging::decode(&encoded_image(1, 4, 4, 0), "rgb.png", 3).unwrap();
    let preprocess = Preprocess {
        channels: 3,
        sizing: Sizing::Whole { size: 2 },
        mean: vec![0.5],
        std: vec![0.25],
    };
    assert!(preprocess.apply(&image).is_err());
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    let sizes = (1usize..4, 1usize..13, 1usize..48, 1usize..48);
    let weight = (1usize..13, 0usize..13, 0usize..12, 0usize..12);
    let geometry = (
        [0usize..6, 0usize..6],
        [0usize..8, 0usize..8],
        [0usize..5, 0usize..5],
        0usize..5,
        any::<bool>(),
    );
    (sizes, weight, geometry).prop_map(
        |(
            (n, c_in, h, w),
            (c_out, c_per_group, kh, kw),
            (stride, padding, dilation, groups, fit),
        )| {
            // Half the cases with the consistent C_in/groups, so that shapes get checked.
            let c_per_group = match (fit, groups) {
                (true, g) if g > 0 => c_in / g,
                _ => c_per_group,
            };
            ConvCase {
                input: [n, c_in, h, w],
                weight: [c_out, c_per_group, kh, kw],
                conv: Conv2d {
                    stride,
                    padding,
                    dilation,
                    groups,
                },
            }
        },
    )
}

fn pool_case() -> impl Strategy<Value = PoolCase> {
    (
        [1usize..48, 1usize..48],
        [0usize..10, 0usize..10],
        [0usize..7, 0usize..7],
        [0usize..6, 0usize..6],
        any::<bool>(),
    )
        .prop_map(|(input, kernel, stride, padding, ceil_mode)| PoolCase {
            input,
            pool: Pool2d {
                kernel,
                stride,
                padding,
                ceil_mode,
            },
        })
}

proptest! {
    #![proptest_config(config(16384))]

    #[test]
    fn conv2d_shapes_follow_pytorch(case in conv_case()) {
        robustness::check_conv(&case);
    }

    #[test]
    fn pool_output_sizes_follow_pytorch(case in pool_case()) {
        robustness::check_pool(&case);
    }
}

#[test]
fn the_shape_formulas_know_torchvision_layers() {
    // The oracle itself, on layers whose shapes torchvision documents: ResNet's stem (224 →
    // 112 → 56), GoogLeNet's ceil-mode pool (112 → 56), Inception's 3×3/2 (299 → 149).
    let stem = ConvCase {
        input: [1, 3, 224, 224],
        weight: [64, 3, 7, 7],
        conv: Conv2d::default().stride(2).padding(3),
    };
    assert_eq!(
        robustness::conv_output_formula(&stem),
        Some([1, 64, 112, 112])
    );
    let pool = |size, ceil_mode| PoolCase {
        input: [size, size],
        pool: Pool2d::new(3).stride(2).padding(1).ceil_mode(ceil_mode),
    };
    assert_eq!(
        robustness::pool_output_formula(&pool(112, false)),
        Some([56, 56])
    );
    let googlenet = PoolCase {
        input: [112, 112],
        pool: Pool2d::new(3).stride(2).ceil_mode(true),
    };
    assert_eq!(robustness::pool_output_formula(&googlenet), Some([56, 56]));
    let inception = ConvCase {
        input: [1, 3, 299, 299],
        weight: [32, 3, 3, 3],
        conv: Conv2d::default().stride(2),
    };
    assert_eq!(
        robustness::conv_output_formula(&inception),
        Some([1, 32, 149, 149])
    );
    let grouped = ConvCase {
        input: [1, 4, 5, 5],
        weight: [6, 3, 1, 1],
        conv: Conv2d::default().groups(2),
    };
    assert_eq!(robustness::conv_output_formula(&grouped), None);
}

/// Writes the fuzz seed corpora from the generators above (run by hand; see fuzz/README.md).
#[test]
#[ignore]
fn write_seed_corpora() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    write("weights_load", "resnet18-w4", &resnet_checkpoint());
    write("weights_load", "lesion-net", &lesion_net_checkpoint());
    let entry = |name: &str, dtype, dims: Vec<usize>| Entry {
        name: name.to_string(),
        dtype,
        dims,
        offset_lie: 0,
    };
    let (header, data) = header_file(
        &[
            entry("fc.weight", "F16", vec![2, 3]),
            entry("fc.bias", "BF16", vec![2]),
        ],
        Some(r#"{"arch":"resnet18","width":"4"}"#),
        0x3c,
    );
    write(
        "weights_load",
        "head-only",
        &raw_safetensors(&header, None, &data),
    );
    write(
        "weights_load",
        "length-lie",
        &raw_safetensors(&header, Some(1 << 40), &data),
    );
    write(
        "run_input",
        "input",
        &input_file("input", &[1, 1, 4, 4], &[0.5, -1.0]),
    );
    write(
        "run_input",
        "nan",
        &input_file("input", &[2, 3, 1, 1], &[f32::NAN]),
    );
    write("run_input", "f16", &{
        let (header, data) = header_file(&[entry("input", "F16", vec![1, 2, 2, 1])], None, 1);
        raw_safetensors(&header, None, &data)
    });
    // image_preprocess: three option bytes, then the image.
    for (name, options, format, w, h) in [
        ("gray-whole", [0u8, 20, 0], 0u8, 9u32, 7u32),
        ("rgb-crop", [3, 30, 5], 1, 12, 20),
        ("rgba", [1, 7, 0], 2, 3, 3),
        ("gray16", [2, 1, 1], 3, 1, 1),
        ("jpeg", [3, 16, 2], 5, 16, 8),
        ("tiff16", [2, 1, 1], 6, 5, 4),
        ("tiff-rgb", [3, 16, 2], 7, 8, 6),
    ] {
        let mut bytes = options.to_vec();
        bytes.extend(encoded_image(format, w, h, 3));
        write("image_preprocess", name, &bytes);
    }
    let mut huge = vec![1u8, 10, 0];
    huge.extend(png_header_claiming(100_000, 100_000));
    write("image_preprocess", "huge-header", &huge);
    // op_arguments: 16 bytes of convolution, 9 of pooling (robustness::*_from_bytes).
    let conv = [1u8, 2, 1, 0, 0, 223, 223, 63, 3, 7, 2, 2, 3, 3, 1, 1];
    let ceil_pool = [111u8, 111, 3, 3, 2, 2, 0, 0, 1];
    write(
        "op_arguments",
        "conv-and-ceil-pool",
        &[&conv[..], &ceil_pool].concat(),
    );
    write("op_arguments", "zeros", &[0u8; 25]);
}

// Regressions: inputs the generators above found, or that reading the loaders found, each
// once accepted.

/// Found by the slide_decode fuzz target: a tile cut short of its compressed data, whose decoder's
/// message held a newline; the error is one line.
#[test]
fn a_decoder_message_with_a_newline_ends_in_one_line() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/slide/regression_error_with_newline.tif");
    robustness::slide_decode(&std::fs::read(path).unwrap());
}

/// Found by the slide_decode fuzz target: an LZW tile whose code stream stops making progress
/// made tiff 0.10's reader panic (an `assert_eq!`); the reader (tiff 0.11) returns an error.
#[test]
fn an_lzw_tile_that_stops_making_progress_is_an_error() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/slide/regression_lzw_no_progress.tif");
    robustness::slide_decode(&std::fs::read(path).unwrap());
}

/// A weights file whose head has rows but no bytes: ModelInfo once took its 10^12 rows as the
/// class count and, without class names in the file, made a name for each.
#[test]
fn an_empty_head_claims_no_classes() {
    let header = r#"{"fc.weight":{"dtype":"F32","shape":[1000000000000,0],"data_offsets":[0,0]}}"#;
    let file = WeightsFile::from_bytes(&raw_safetensors(header, None, &[]), "head").unwrap();
    let error = ModelInfo::from_file(&file, Some("resnet18")).unwrap_err();
    assert!(error.to_string().contains("fc.weight is empty"), "{error}");
}

/// Found by weights_files_with_lying_headers: a width recorded for a GoogLeNet passed
/// ModelInfo (only ResNets were checked), so ModelInfo described a model build refuses.
#[test]
fn a_width_for_a_model_without_one_is_refused() {
    let header = r#"{"fc.weight":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]},
        "__metadata__":{"width":"99999999999"}}"#;
    let file = WeightsFile::from_bytes(&raw_safetensors(header, None, &[0; 8]), "w").unwrap();
    for arch in ["googlenet", "inception_v3", "resnet18"] {
        let error = ModelInfo::from_file(&file, Some(arch)).unwrap_err();
        assert!(
            error.to_string().contains("width 99999999999"),
            "{arch}: {error}"
        );
    }
}

/// Reading the loaders: "NaN" parses as an f32 and a zero std divides by zero; both once
/// passed into the normalisation.
#[test]
fn a_normalisation_that_is_not_finite_is_refused() {
    for (key, value) in [
        ("mean", r#"["NaN"]"#),
        ("std", "[0]"),
        ("std", r#"["inf"]"#),
    ] {
        let metadata = serde_json::json!({ key: value }).to_string();
        let header = format!(
            r#"{{"fc.weight":{{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]}},
            "conv1.weight":{{"dtype":"F32","shape":[1,1,1,1],"data_offsets":[8,12]}},
            "__metadata__":{metadata}}}"#
        );
        let bytes = raw_safetensors(&header, None, &[0; 12]);
        let file = WeightsFile::from_bytes(&bytes, "w").unwrap();
        let error = ModelInfo::from_file(&file, Some("resnet18")).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(key) && message.contains("must be finite"),
            "{key} {value}: {message}"
        );
    }
}
