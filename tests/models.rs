//! Model structure: torchvision's parameter names and counts, and a working training step.

mod common;

use common::{Rng, gpu};
use gradlens::Tensor;
use gradlens::autograd::Tape;
use gradlens::models::ResNet;
use gradlens::nn::{Forward, Mode, ParamStore};

/// Every architecture declares exactly torchvision's state_dict: the same entry count, the same
/// parameter count and the same digest of its sorted "name [shape]" lines
/// (tests/fixtures/torchvision_state_dicts.json, made by tools/state_dict_digests.py).
#[test]
fn every_architecture_matches_torchvisions_state_dict() {
    let text = std::fs::read_to_string("tests/fixtures/torchvision_state_dicts.json").unwrap();
    let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
    for &arch in gradlens::models::ARCHS {
        let want = &expected[arch];
        let mut store = ParamStore::shapes_only(gpu());
        let config = gradlens::models::ModelConfig::default();
        gradlens::models::build(arch, &mut store, &config).unwrap();
        let mut lines: Vec<String> = store
            .shapes()
            .map(|(name, dims, _)| format!("{name} {dims:?}"))
            .collect();
        lines.sort();
        let digest = lines
            .join("\n")
            .bytes()
            .fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
            });
        assert_eq!(
            lines.len() as u64,
            want["entries"].as_u64().unwrap(),
            "{arch} entries"
        );
        assert_eq!(
            store.parameter_count() as u64,
            want["parameters"].as_u64().unwrap(),
            "{arch} parameters"
        );
        assert_eq!(
            format!("{digest:016x}"),
            want["digest"].as_str().unwrap(),
            "{arch}: {lines:#?}"
        );
    }
}

/// torchvision's parameter counts with 1000 classes (sum of p.numel() over parameters()).
#[test]
fn resnets_have_torchvisions_parameters() {
    for (arch, count, tensors) in [("resnet18", 11_689_512, 62), ("resnet50", 25_557_032, 161)] {
        let mut store = ParamStore::new(gpu());
        ResNet::new(&mut store, arch, 3, 1000, 0).unwrap();
        assert_eq!(store.parameter_count(), count, "{arch}");
        assert_eq!(
            store.parameters().count(),
            tensors,
            "{arch} parameter tensors"
        );
        for name in [
            "conv1.weight",
            "bn1.running_var",
            "layer2.0.downsample.1.weight",
            "fc.bias",
        ] {
            assert!(store.get(name).is_some(), "{arch} lacks {name}");
        }
    }
    let mut store = ParamStore::new(gpu());
    ResNet::new(&mut store, "resnet50", 1, 2, 0).unwrap();
    let dims = |name: &str| store_dims(&store, name);
    assert_eq!(dims("conv1.weight"), [64, 1, 7, 7], "grayscale stem");
    assert_eq!(dims("layer1.0.conv3.weight"), [256, 64, 1, 1]);
    assert_eq!(dims("layer4.2.conv2.weight"), [512, 512, 3, 3]);
    assert_eq!(dims("fc.weight"), [2, 2048]);
    let error = ResNet::new(&mut ParamStore::new(gpu()), "resnet19", 3, 10, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("resnet19"), "{error}");
}

fn store_dims(store: &ParamStore, name: &str) -> Vec<usize> {
    store.get(name).unwrap().dims().to_vec()
}

#[test]
fn resnet18_trains_a_step_on_a_small_grayscale_batch() {
    let mut store = ParamStore::new(gpu());
    let model = ResNet::new(&mut store, "resnet18", 1, 3, 1).unwrap();
    let mut rng = Rng::new(90);
    let x = Tensor::from_slice(gpu(), [2, 1, 40, 40], &rng.vec(2 * 40 * 40)).unwrap();
    let tape = Tape::new();
    let f = Forward::new(&tape, &store, Mode::Train);
    let input = tape.input(x);
    let logits = model.forward(&f, &input).unwrap();
    assert_eq!(logits.dims(), [2, 3]);
    let loss = tape.cross_entropy(&logits, &[2, 0], None).unwrap();
    let grads = tape.backward(&loss, None).unwrap();
    assert_eq!(grads.parameters().count(), store.parameters().count());
    let stem = grads.named("conv1.weight").unwrap().to_vec().unwrap();
    assert!(stem.iter().all(|v| v.is_finite()) && stem.iter().any(|&v| v != 0.0));
    assert_eq!(grads.get(&input).unwrap().dims(), [2, 1, 40, 40]);
}
