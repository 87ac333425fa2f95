//! `--check-finite`: the first layer whose output or gradient holds NaN or Inf is named, in the
//! order the tensors were computed. Its own test binary: the checks are context-wide.

mod common;

use common::{Rng, gpu};
use gradlens::Tensor;
use gradlens::autograd::Tape;
use gradlens::gpu::NonFinite;
use gradlens::models::{ModelConfig, build};
use gradlens::nn::{Forward, Mode, ParamStore};

#[test]
fn the_first_non_finite_layer_is_named() {
    let gpu = gpu();
    let config = ModelConfig {
        classes: 3,
        width: 8,
        ..ModelConfig::default()
    };
    let mut store = ParamStore::new(gpu);
    let model = build("resnet18", &mut store, &config).unwrap();
    let mut rng = Rng::new(5);
    let input = rng.vec(2 * 3 * 32 * 32);
    let forward = |store: &ParamStore, input: &[f32], seed: Option<Vec<f32>>| {
        let tape = Tape::new();
        let f = Forward::new(&tape, store, Mode::Eval);
        let x = tape.input(Tensor::from_slice(gpu, [2, 3, 32, 32], input).unwrap());
        let logits = model.forward(&f, &x).unwrap();
        if let Some(seed) = seed {
            let seed = Tensor::from_slice(gpu, [2, 3], &seed).unwrap();
            tape.backward(&logits, Some(seed)).unwrap();
        }
    };
    let checked = |store: &ParamStore, input: &[f32], seed: Option<Vec<f32>>| {
        gpu.start_finite_checks();
        forward(store, input, seed);
        pollster::block_on(gpu.finish_finite_checks()).unwrap()
    };

    // All finite, forward and backward: nothing to report.
    assert_eq!(checked(&store, &input, Some(vec![1.0; 6])), None);
    // Not checking: nothing recorded, nothing reported.
    forward(&store, &input, None);
    assert_eq!(
        pollster::block_on(gpu.finish_finite_checks()).unwrap(),
        None
    );

    // An Inf in the input: the stem convolution is the first layer to produce one.
    let mut bad_input = input.clone();
    bad_input[100] = f32::INFINITY;
    let first = NonFinite {
        layer: "conv1".to_string(),
        what: "output",
    };
    assert_eq!(checked(&store, &bad_input, None), Some(first));

    // Past the first flags buffer (1024 tensors): ten clean passes, then the bad input.
    gpu.start_finite_checks();
    for _ in 0..10 {
        forward(&store, &input, Some(vec![1.0; 6]));
    }
    forward(&store, &bad_input, None);
    let found = pollster::block_on(gpu.finish_finite_checks())
        .unwrap()
        .unwrap();
    assert_eq!((found.layer.as_str(), found.what), ("conv1", "output"));

    // A NaN inside layer2's first convolution's weight: that layer, not the ones after it.
    let name = "layer2.0.conv1.weight";
    let mut weight = store.parameter(name).unwrap().to_vec().unwrap();
    let dims = store.parameter(name).unwrap().dims().to_vec();
    weight[7] = f32::NAN;
    let mut poisoned = ParamStore::new(gpu);
    build("resnet18", &mut poisoned, &config).unwrap();
    poisoned
        .set(name, Tensor::from_slice(gpu, dims, &weight).unwrap())
        .unwrap();
    let found = checked(&poisoned, &input, None).unwrap();
    assert_eq!(found.layer, "layer2.0.conv1");
    assert_eq!(found.what, "output");
    assert!(found.to_string().contains("layer2.0.conv1"));

    // A NaN seed gradient: the classifier's backward is the first gradient to hold it.
    let found = checked(
        &store,
        &input,
        Some(vec![1.0, f32::NAN, 0.0, 0.0, 0.0, 0.0]),
    )
    .unwrap();
    assert_eq!(
        found,
        NonFinite {
            layer: "fc".to_string(),
            what: "gradient"
        }
    );
}

/// The flag kernel alone against its reference: a tensor is flagged exactly when it holds a
/// NaN or an infinity, wherever it lies (first, last, past a workgroup, and past the 2-D fold
/// on adapters whose per-dimension limit is 65535 workgroups, as lavapipe's is).
#[test]
fn the_flag_kernel_matches_its_reference() {
    use gradlens::kernels::finite::check_finite;
    use gradlens::reference::finite::has_non_finite;
    let gpu = gpu();
    let mut rng = Rng::new(6);
    let folded = common::folded_length(256) + 5;
    let mut cases: Vec<Vec<f32>> = Vec::new();
    cases.push(rng.vec(1000));
    for (len, at, value) in [
        (1000, 0, f32::NAN),
        (1001, 1000, f32::INFINITY),
        (257, 256, f32::NEG_INFINITY),
        (1, 0, f32::NAN),
        (folded, folded - 1, f32::NAN),
    ] {
        let mut values = rng.vec(len);
        values[at] = value;
        cases.push(values);
    }
    cases.push(vec![f32::MAX, f32::MIN, f32::MIN_POSITIVE, -0.0]);
    for (i, values) in cases.iter().enumerate() {
        let x = Tensor::from_slice(gpu, [values.len()], values).unwrap();
        let name = format!("case {i}");
        gpu.start_finite_checks();
        {
            let _scope = gpu.scope(&name);
            check_finite(&x, "output").unwrap();
        }
        let flagged = pollster::block_on(gpu.finish_finite_checks()).unwrap();
        let want = has_non_finite(values).then(|| NonFinite {
            layer: name.clone(),
            what: "output",
        });
        assert_eq!(flagged, want, "{name} of {} values", values.len());
    }
}
