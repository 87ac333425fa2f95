//! Weights files: round trips, every problem named at once, dtypes, hostile files, and the
//! medical adaptations (grayscale first conv, fresh head).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{Rng, assert_close, gpu};
use gradlens::Tensor;
use gradlens::autograd::{Tape, Var};
use gradlens::kernels::conv2d::Conv2d as ConvGeometry;
use gradlens::models::adapt::{
    GRAY_MEAN, GRAY_STD, IMAGENET_MEAN, IMAGENET_STD, classes_in, drop_head, grayscale_first_conv,
};
use gradlens::models::{LesionNet, ModelConfig, build};
use gradlens::nn::{BatchNorm2d, Conv2d, Forward, Init, Mode, ParamStore};
use gradlens::weights::{WeightsFile, save};
use safetensors::tensor::{Dtype, TensorView};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradlens-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A LesionNet store whose every tensor holds distinct random values.
fn random_lesion_net(widths: [usize; 3], seed: u64) -> ParamStore {
    let mut store = ParamStore::new(gpu());
    LesionNet::new(&mut store, 1, 2, widths, seed).unwrap();
    let mut rng = Rng::new(seed);
    let entries: Vec<(String, Vec<usize>)> = store
        .shapes()
        .map(|(n, d, _)| (n.to_string(), d.to_vec()))
        .collect();
    for (name, dims) in entries {
        let values = rng.vec(dims.iter().product());
        store
            .set(&name, Tensor::from_slice(gpu(), dims, &values).unwrap())
            .unwrap();
    }
    store
}

#[test]
fn save_then_load_round_trips_every_tensor() {
    let store = random_lesion_net([3, 4, 5], 100);
    let path = temp("roundtrip.safetensors");
    let metadata = HashMap::from([("arch".to_string(), "lesion_net".to_string())]);
    save(&store, &path, &metadata).unwrap();
    let file = WeightsFile::open(&path).unwrap();
    assert_eq!(file.metadata()["arch"], "lesion_net");
    let mut fresh = ParamStore::new(gpu());
    LesionNet::new(&mut fresh, 1, 2, [3, 4, 5], 7).unwrap();
    file.load_into(&mut fresh, &[]).unwrap();
    for (name, tensor) in store.parameters().chain(store.buffers()) {
        assert_eq!(
            fresh.get(name).unwrap().to_vec().unwrap(),
            tensor.to_vec().unwrap(),
            "{name}"
        );
    }
    // torchvision's strict load_state_dict wants num_batches_tracked: it is in the file.
    let bytes = std::fs::read(&path).unwrap();
    let parsed = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        parsed
            .tensor("features.1.num_batches_tracked")
            .unwrap()
            .dtype(),
        Dtype::I64
    );
}

#[test]
fn every_mismatch_is_summarised_in_one_line_and_listed_in_the_details() {
    let path = temp("mismatch.safetensors");
    save(&random_lesion_net([3, 4, 5], 101), &path, &HashMap::new()).unwrap();
    let mut file = WeightsFile::open(&path).unwrap();
    file.remove_prefix("classifier.");
    file.insert(
        "extra.weight",
        gradlens::weights::HostTensor {
            dims: vec![1],
            data: vec![1.0],
        },
    );
    let mut other = ParamStore::new(gpu());
    LesionNet::new(&mut other, 1, 2, [3, 6, 5], 0).unwrap();
    let before = other
        .parameter("features.0.weight")
        .unwrap()
        .to_vec()
        .unwrap();
    let error = file.load_into(&mut other, &[]).unwrap_err();
    let (line, details) = (error.to_string(), error.details().join("\n"));
    // The file's second block has 4 channels, the model's 6: six tensors of another shape,
    // three named in the line and the rest counted; every one in the details.
    for needle in [
        "mismatch.safetensors",
        "missing classifier.bias, classifier.weight",
        "unexpected extra.weight",
        "wrong shape: features.4.weight is [4, 3, 3, 3] in the file, [6, 3, 3, 3] in the model",
        "and 3 more (--full-errors lists all)",
    ] {
        assert!(line.contains(needle), "{needle:?} not in: {line}");
    }
    assert!(!line.contains('\n'), "one line: {line}");
    for needle in [
        "missing classifier.bias",
        "missing classifier.weight",
        "unexpected extra.weight",
        "wrong shape: features.5.running_var is [4] in the file, [6] in the model",
        "wrong shape: features.8.weight is [5, 4, 3, 3] in the file, [5, 6, 3, 3] in the model",
    ] {
        assert!(details.contains(needle), "{needle:?} not in: {details}");
    }
    assert_eq!(error.details().len(), 2 + 1 + 6, "{details}");
    // Nothing was loaded.
    assert_eq!(
        other
            .parameter("features.0.weight")
            .unwrap()
            .to_vec()
            .unwrap(),
        before
    );
}

fn write_raw(path: &Path, tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)>) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn half_precision_tensors_load_as_f32() {
    let values = [0.5f32, -1.25, 3.0, 0.099_975_586];
    let f16: Vec<u8> = values
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = values
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    let path = temp("half.safetensors");
    write_raw(
        &path,
        vec![
            ("a", Dtype::F16, vec![4], f16),
            ("b", Dtype::BF16, vec![2, 2], bf16),
        ],
    );
    let file = WeightsFile::open(&path).unwrap();
    assert_eq!(
        file.get("a").unwrap().data,
        values.map(|v| half::f16::from_f32(v).to_f32())
    );
    assert_eq!(file.get("b").unwrap().dims, [2, 2]);
    assert_close("bf16", &file.get("b").unwrap().data, &values, 1e-2, 0.0);
}

#[test]
fn hostile_files_are_refused_with_the_path() {
    let good = temp("good.safetensors");
    save(&random_lesion_net([2, 2, 2], 102), &good, &HashMap::new()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("header_too_long", {
            let mut b = bytes.clone();
            b[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
            b
        }),
        ("header_not_json", {
            let mut b = bytes.clone();
            b[8] = b'!';
            b
        }),
    ];
    for (name, content) in cases {
        let path = temp(&format!("{name}.safetensors"));
        std::fs::write(&path, content).unwrap();
        let error = WeightsFile::open(&path).err().unwrap().to_string();
        assert!(
            error.contains(&path.display().to_string()),
            "{name}: {error}"
        );
        assert!(!error.contains('\n'), "{name}: {error}");
    }
    let dir_error = WeightsFile::open(&std::env::temp_dir())
        .err()
        .unwrap()
        .to_string();
    assert!(dir_error.contains("cannot read"), "{dir_error}");
    let ints = temp("ints.safetensors");
    write_raw(&ints, vec![("w", Dtype::I32, vec![2], vec![0; 8])]);
    let error = WeightsFile::open(&ints).err().unwrap().to_string();
    assert!(error.contains("tensor w has dtype I32"), "{error}");
}

/// conv1 + bn1 of a ResNet on RGB input made from a gray image, against the adapted
/// single-channel conv1 + bn1 on the gray image normalised with GRAY_MEAN / GRAY_STD: equal
/// away from the border (3 pixels: the 7×7 kernel's padding reach).
#[test]
fn grayscale_adaptation_is_exact_away_from_the_border() {
    let stem = |in_channels: usize| {
        let mut store = ParamStore::new(gpu());
        let geometry = ConvGeometry::default().stride(2).padding(3);
        let conv = Conv2d::new(
            &mut store,
            "conv1",
            in_channels,
            8,
            [7, 7],
            geometry,
            false,
            Init::KaimingNormalFanOut,
            3,
        )
        .unwrap();
        let bn = BatchNorm2d::new(&mut store, "bn1", 8, 1e-5).unwrap();
        (store, conv, bn)
    };
    let (mut rgb, conv, bn) = stem(3);
    let mut rng = Rng::new(103);
    rgb.set(
        "bn1.running_mean",
        Tensor::from_slice(gpu(), [8], &rng.vec(8)).unwrap(),
    )
    .unwrap();
    let path = temp("stem.safetensors");
    save(&rgb, &path, &HashMap::new()).unwrap();
    let mut file = WeightsFile::open(&path).unwrap();
    grayscale_first_conv("resnet18", &mut file, IMAGENET_MEAN, IMAGENET_STD).unwrap();
    let (mut gray, ..) = stem(1);
    file.load_into(&mut gray, &[]).unwrap();

    let size = 24;
    let g: Vec<f32> = rng
        .vec(size * size)
        .into_iter()
        .map(|v| 0.5 + 0.5 * v)
        .collect();
    let rgb_input: Vec<f32> = (0..3)
        .flat_map(|c| {
            g.iter()
                .map(move |&v| (v - IMAGENET_MEAN[c]) / IMAGENET_STD[c])
        })
        .collect();
    let gray_input: Vec<f32> = g.iter().map(|&v| (v - GRAY_MEAN) / GRAY_STD).collect();
    let run = |store: &ParamStore, channels: usize, data: &[f32]| -> Vec<f32> {
        let tape = Tape::no_grad();
        let f = Forward::new(&tape, store, Mode::Eval);
        let x = Var::constant(Tensor::from_slice(gpu(), [1, channels, size, size], data).unwrap());
        let y = bn.forward(&f, &conv.forward(&f, &x).unwrap()).unwrap();
        y.into_tensor().to_vec().unwrap()
    };
    let want = run(&rgb, 3, &rgb_input);
    let got = run(&gray, 1, &gray_input);
    let out = size / 2;
    let interior = |v: &[f32]| -> Vec<f32> {
        (0..8 * out * out)
            .filter(|i| {
                let (y, x) = ((i / out) % out, i % out);
                (2..out - 2).contains(&y) && (2..out - 2).contains(&x)
            })
            .map(|i| v[i])
            .collect()
    };
    assert_close(
        "gray stem interior",
        &interior(&got),
        &interior(&want),
        1e-4,
        1e-4,
    );
    assert_ne!(got, want, "the border differs, as documented");
}

/// Transfer learning: ImageNet-shaped weights into a model with another number of classes;
/// the head is dropped and stays freshly initialised; aux heads may be absent in eval.
#[test]
fn fresh_heads_and_optional_aux_heads() {
    let config = ModelConfig::default();
    let mut source = ParamStore::new(gpu());
    let model = build("googlenet", &mut source, &config).unwrap();
    drop(model);
    let path = temp("googlenet.safetensors");
    save(&source, &path, &HashMap::new()).unwrap();
    let mut file = WeightsFile::open(&path).unwrap();
    assert_eq!(classes_in("googlenet", &file), Some(1000));
    assert!(file.remove_prefix("aux1.") > 0 && file.remove_prefix("aux2.") > 0);

    let mut same = ParamStore::new(gpu());
    let model = build("googlenet", &mut same, &config).unwrap();
    let error = file.load_into(&mut same, &[]).unwrap_err().to_string();
    assert!(error.contains("missing aux1.conv.bn.bias"), "{error}");
    file.load_into(&mut same, model.optional_prefixes())
        .unwrap();

    let two = ModelConfig {
        classes: 2,
        ..config
    };
    let mut target = ParamStore::new(gpu());
    let model = build("googlenet", &mut target, &two).unwrap();
    assert!(
        file.load_into(&mut target, model.optional_prefixes())
            .is_err(),
        "head shapes differ"
    );
    let fresh_fc = target.parameter("fc.weight").unwrap().to_vec().unwrap();
    assert_eq!(drop_head("googlenet", &mut file), 2);
    let mut optional = model.optional_prefixes().to_vec();
    optional.push("fc.");
    file.load_into(&mut target, &optional).unwrap();
    assert_eq!(
        target.parameter("fc.weight").unwrap().to_vec().unwrap(),
        fresh_fc
    );
    assert_eq!(
        target
            .parameter("conv1.conv.weight")
            .unwrap()
            .to_vec()
            .unwrap(),
        source
            .parameter("conv1.conv.weight")
            .unwrap()
            .to_vec()
            .unwrap()
    );
}
