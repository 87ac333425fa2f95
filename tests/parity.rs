//! Whole models against torchvision: weights from a formula both sides compute bit-exactly
//! (tools/make_model_fixtures.py writes torchvision's eval-mode logits and input gradients for
//! them to tests/fixtures/models.safetensors), so no weight file needs committing.

mod common;

use common::formula::{fill_with_formula, formula, sketch_product};
use common::gpu;
use gradlens::Tensor;
use gradlens::autograd::Tape;
use gradlens::models::{ModelConfig, build};
use gradlens::nn::{Forward, Mode, ParamStore};
use gradlens::weights::WeightsFile;

#[test]
fn formula_reproduces_the_fixture_generators_values() {
    // First values of resnet18's conv1.weight and of the 64×64 input, from the Python tool.
    let conv1 = formula("conv1.weight", &[64, 3, 7, 7], false);
    assert_eq!(
        conv1[..4].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        [0x3e1b0068, 0xbe190196, 0xbca4c332, 0x3ca5fb01]
    );
    let var = formula("bn1.running_var", &[64], true);
    assert_eq!(
        var[..2].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        [0x3f4cc019, 0x3f188169]
    );
}

/// relative L2 error of `got` against `want`.
fn relative_l2(got: &[f32], want: &[f32]) -> f64 {
    let (mut err, mut norm) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        err += (f64::from(g) - f64::from(w)).powi(2);
        norm += f64::from(w).powi(2);
    }
    (err / norm).sqrt()
}

fn check(arch: &str) {
    let fixtures =
        WeightsFile::open(std::path::Path::new("tests/fixtures/models.safetensors")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&fixtures.metadata()[arch]).unwrap();
    let config = ModelConfig {
        transform_input: meta["transform_input"].as_bool().unwrap(),
        ..ModelConfig::default()
    };
    let mut store = ParamStore::new(gpu());
    let model = build(arch, &mut store, &config).unwrap();
    fill_with_formula(&mut store);
    let input = fixtures.get(&format!("{arch}.input")).unwrap();
    let x = Tensor::from_slice(gpu(), input.dims.clone(), &input.data).unwrap();

    // As saliency runs it: constant parameters, so that every model takes its inference
    // fusions (folded norms, DenseNet's norms reading the block buffer).
    let tape = Tape::new().input_gradients_only();
    let f = Forward::new(&tape, &store, Mode::Eval);
    let image = tape.input(x);
    let logits = model.forward(&f, &image).unwrap();
    let got = logits.tensor().to_vec().unwrap();
    let want = &fixtures.get(&format!("{arch}.logits")).unwrap().data;
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f32::max);
    assert!(
        worst <= 1e-4 * scale.max(1.0),
        "{arch} logits: worst error {worst} (scale {scale})"
    );

    // Gradient saliency: d logits[target] / d input, the model in eval mode.
    let target = meta["target"].as_u64().unwrap() as usize;
    let mut seed = vec![0.0; 1000];
    seed[target] = 1.0;
    let seed = Tensor::from_slice(gpu(), [1, 1000], &seed).unwrap();
    let grads = tape.backward(&logits, Some(seed)).unwrap();
    let got = grads.get(&image).unwrap().to_vec().unwrap();
    // Against the exact (float64) gradient, within 1e-3 of its largest value for every model:
    // where a ReLU input or a max-pool window's top two values lie within f32 rounding of a
    // tie, float32 engines route the gradient either way (resnet18: torch's own f32 gradient
    // is 3.5e-3 off its f64 one), and the f64 answer is the one to hold gradlens to.
    let exact = &fixtures
        .get(&format!("{arch}.grad_input_f64"))
        .unwrap()
        .data;
    assert_within_largest(&format!("{arch} input gradient (f64)"), &got, exact, 1e-3);
    let error = relative_l2(&got, exact);
    assert!(
        error < 1e-3,
        "{arch} input gradient: relative L2 error {error} against float64"
    );
    // And torchvision's own float32 gradient, to the same bound where it has no tie.
    let torch_f32 = &fixtures.get(&format!("{arch}.grad_input")).unwrap().data;
    if relative_l2(torch_f32, exact) < 1e-4 {
        assert_within_largest(&format!("{arch} input gradient"), &got, torch_f32, 1e-3);
    }
}

/// Fails unless every |got − want| ≤ fraction · max |want|.
fn assert_within_largest(what: &str, got: &[f32], want: &[f32], fraction: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let largest = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (worst, at) = got
        .iter()
        .zip(want)
        .enumerate()
        .map(|(i, (g, w))| ((g - w).abs(), i))
        .fold((0.0f32, 0), |best, x| if x.0 > best.0 { x } else { best });
    assert!(
        worst <= fraction * largest,
        "{what}: error {worst} at element {at} (got {}, want {}) exceeds {fraction} of the largest value {largest}",
        got[at],
        want[at]
    );
}

/// Train mode against torchvision (batch 2): BN on batch statistics, the running statistics
/// it updates, the logits, the input gradient and every parameter's gradient for
/// loss = Σ logits ⊙ seed: against PyTorch's float32 step within `gradient_fraction` of the
/// largest value (sums and L2 norms per parameter; full values for a few), and each parameter
/// by its own scale against the float64 step within `parameter_bound` (relative L2, estimated
/// from 8 dot products with formula vectors: `per_parameter_error`), a bound that a zeroed,
/// negated or halved gradient of any one parameter must fail (checked here for each).
fn check_training(arch: &str, config: &ModelConfig, gradient_fraction: f32, parameter_bound: f64) {
    let fixtures =
        WeightsFile::open(std::path::Path::new("tests/fixtures/models.safetensors")).unwrap();
    let get = |name: &str| {
        fixtures
            .get(&format!("train.{arch}.{name}"))
            .unwrap_or_else(|| panic!("fixture train.{arch}.{name}"))
            .clone()
    };
    let meta = fixtures.metadata();
    let list = |key: &str| -> Vec<String> {
        serde_json::from_str(&meta[&format!("train.{arch}.{key}")]).unwrap()
    };
    let mut store = ParamStore::new(gpu());
    let model = build(arch, &mut store, config).unwrap();
    fill_with_formula(&mut store);
    let input = get("input");
    let tape = Tape::new();
    let f = Forward::new(&tape, &store, Mode::Train);
    let image = tape.input(Tensor::from_slice(gpu(), input.dims.clone(), &input.data).unwrap());
    let (logits, aux) = model.forward_with_aux(&f, &image).unwrap();
    let values = logits.tensor().to_vec().unwrap();
    assert_within_largest(
        &format!("train {arch} logits"),
        &values,
        &get("logits").data,
        1e-3,
    );
    // The loss seeds the main logits and every aux head's (GoogLeNet returns aux2, aux1).
    let mut output = logits.clone();
    for (head, name) in aux.iter().zip(["aux2", "aux1"]) {
        let values = head.tensor().to_vec().unwrap();
        assert_within_largest(
            &format!("train {arch} {name}"),
            &values,
            &get(name).data,
            1e-3,
        );
        output = tape.add(&output, head).unwrap();
    }
    let seed = get("seed");
    let seed = Tensor::from_slice(gpu(), seed.dims, &seed.data).unwrap();
    let grads = tape.backward(&output, Some(seed)).unwrap();
    let got = grads.get(&image).unwrap().to_vec().unwrap();
    assert_within_largest(
        &format!("train {arch} input gradient"),
        &got,
        &get("grad_input").data,
        gradient_fraction,
    );

    let names = list("parameters");
    assert_eq!(
        names.len(),
        store.parameters().count(),
        "every parameter is summarised"
    );
    let sketches = get("grad_sketch_f64");
    let columns = sketches.dims[1];
    let mut summary = Vec::new();
    let mut worst = (0.0f64, String::new());
    for (name, row) in names.iter().zip(sketches.data.chunks(columns)) {
        let grad = grads
            .named(name)
            .unwrap_or_else(|| panic!("no gradient for {name}"))
            .to_vec()
            .unwrap();
        let products: Vec<f64> = (0..columns - 1)
            .map(|k| sketch_product(k, name, &grad))
            .collect();
        let error = per_parameter_error(&products, row);
        assert!(
            error <= parameter_bound,
            "train {arch} {name}: relative L2 error {error:.2e} against the float64 gradient \
             (bound {parameter_bound:.0e})"
        );
        if error > worst.0 {
            worst = (error, name.clone());
        }
        // The check catches a gradient zeroed, negated or halved: each would be far outside.
        for (mutation, factor) in [("zeroed", 0.0), ("negated", -1.0), ("halved", 0.5)] {
            let mutated: Vec<f64> = products.iter().map(|p| p * factor).collect();
            let error = per_parameter_error(&mutated, row);
            assert!(
                error > 0.1,
                "train {arch} {name}: a {mutation} gradient would pass ({error:.2e})"
            );
        }
        let sum: f64 = grad.iter().map(|&v| f64::from(v)).sum();
        let norm = grad
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            .sqrt();
        summary.push([sum as f32, norm as f32]);
        let full = format!("train.{arch}.grad.{name}");
        if let Some(want) = fixtures.get(&full) {
            assert_within_largest(&full, &grad, &want.data, gradient_fraction);
        }
    }
    eprintln!(
        "train {arch}: worst per-parameter relative L2 error against float64 {:.2e} ({})",
        worst.0, worst.1
    );
    let want = get("grad_summary").data;
    for column in 0..2 {
        let got: Vec<f32> = summary.iter().map(|row| row[column]).collect();
        let want: Vec<f32> = want.chunks(2).map(|row| row[column]).collect();
        assert_within_largest(
            &format!("train {arch} gradient {}", ["sums", "norms"][column]),
            &got,
            &want,
            gradient_fraction,
        );
    }

    let mut running = Vec::new();
    for prefix in list("batchnorms") {
        let sum = |buffer: &str| -> f32 {
            store
                .buffer(&format!("{prefix}.{buffer}"))
                .unwrap()
                .to_vec()
                .unwrap()
                .iter()
                .sum()
        };
        running.push([sum("running_mean"), sum("running_var")]);
    }
    let want = get("running_summary").data;
    for column in 0..2 {
        let got: Vec<f32> = running.iter().map(|row| row[column]).collect();
        let want: Vec<f32> = want.chunks(2).map(|row| row[column]).collect();
        assert_within_largest(
            &format!("train {arch} running {}", ["means", "variances"][column]),
            &got,
            &want,
            1e-3,
        );
    }
    for name in fixtures
        .names()
        .filter(|n| n.starts_with(&format!("train.{arch}.running_var.")))
    {
        let prefix = name.trim_start_matches(&format!("train.{arch}.running_var."));
        let got = store
            .buffer(&format!("{prefix}.running_var"))
            .unwrap()
            .to_vec()
            .unwrap();
        assert_within_largest(name, &got, &fixtures.get(name).unwrap().data, 1e-4);
    }
}

/// One parameter's gradient error relative to its own scale, estimated from the dot products
/// `products` of gradlens's gradient with the parameter's K sketch vectors and the fixture's
/// row [L2 norm, K products] of the float64 gradient: for an error e, each product's difference
/// has mean square |e|² / 3 (the vectors' entries are uniform in [−1, 1)), so the estimate is
/// sqrt(3 · mean of the squared differences) / |g|.
fn per_parameter_error(products: &[f64], row: &[f32]) -> f64 {
    let (norm, want) = (f64::from(row[0]), &row[1..]);
    let mean_square = products
        .iter()
        .zip(want)
        .map(|(got, &want)| (got - f64::from(want)).powi(2))
        .sum::<f64>()
        / products.len() as f64;
    (3.0 * mean_square).sqrt() / norm.max(f64::MIN_POSITIVE)
}

#[test]
fn resnet18_trains_like_torchvision() {
    check_training("resnet18", &ModelConfig::default(), 1e-3, 1e-3);
}

/// densenet121's train fixture uses the best of 32 inputs tried by the fixture tool (the
/// 18th): the four float32 PyTorch steps that round differently (oneDNN or not, one thread or
/// two, weights moved by a rounding) all come within 8.0e-4 of float64 per parameter there. It
/// was chosen without gradlens, which lands 5.9e-4 off on lavapipe. Its float64 step still
/// moves by 9e-2 when every activation moves by a relative 1e-6 (a ReLU or max-pool tie
/// flips), so another adapter's rounding could land further off.
#[test]
fn densenet121_trains_like_torchvision() {
    check_training("densenet121", &ModelConfig::default(), 1e-3, 1e-3);
}

#[test]
fn resnet152_matches_torchvision() {
    check("resnet152");
}

#[test]
fn resnet18_matches_torchvision() {
    check("resnet18");
}

#[test]
fn resnet50_matches_torchvision() {
    check("resnet50");
}

#[test]
fn googlenet_matches_torchvision() {
    check("googlenet");
}

#[test]
fn inception_v3_matches_torchvision() {
    check("inception_v3");
}

#[test]
fn densenet121_matches_torchvision() {
    check("densenet121");
}

#[test]
fn vgg11_bn_matches_torchvision() {
    check("vgg11_bn");
}

/// DenseNet's two block-buffer paths agree: a batch of one (layers write into the block
/// buffer, inputs are views of it) and a batch of two copies of the image (each layer's new
/// features copied in), the norms reading the buffer in place in both. In eval mode as saliency
/// runs it (constant parameters): logits and input gradients. In training mode (batch
/// statistics, which two copies leave as one image's): logits, input gradients and every
/// parameter's gradient, which the second copy doubles.
#[test]
fn densenet_block_buffer_views_and_copies_agree() {
    let fixtures =
        WeightsFile::open(std::path::Path::new("tests/fixtures/models.safetensors")).unwrap();
    let mut store = ParamStore::new(gpu());
    let model = build("densenet121", &mut store, &ModelConfig::default()).unwrap();
    fill_with_formula(&mut store);
    let input = fixtures.get("densenet121.input").unwrap();
    let names: Vec<String> = store
        .parameters()
        .map(|(name, _)| name.to_string())
        .collect();
    for mode in [Mode::Eval, Mode::Train] {
        let run = |copies: usize| -> Vec<Vec<f32>> {
            let data: Vec<f32> = (0..copies).flat_map(|_| input.data.clone()).collect();
            let mut dims = input.dims.clone();
            dims[0] = copies;
            let tape = match mode {
                Mode::Eval => Tape::new().input_gradients_only(),
                Mode::Train => Tape::new(),
            };
            let f = Forward::new(&tape, &store, mode);
            let image = tape.input(Tensor::from_slice(gpu(), dims, &data).unwrap());
            let logits = model.forward(&f, &image).unwrap();
            let mut seed = vec![0.0; copies * 1000];
            for c in 0..copies {
                seed[c * 1000 + 7] = 1.0;
            }
            let seed = Tensor::from_slice(gpu(), [copies, 1000], &seed).unwrap();
            let mut results = vec![logits.tensor().to_vec().unwrap()];
            let grads = tape.backward(&logits, Some(seed)).unwrap();
            results.push(grads.get(&image).unwrap().to_vec().unwrap());
            if mode == Mode::Train {
                for name in &names {
                    let grad = grads
                        .named(name)
                        .unwrap_or_else(|| panic!("no gradient for {name}"));
                    results.push(grad.to_vec().unwrap());
                }
            }
            results
        };
        let (one, two) = (run(1), run(2));
        let what = |k: usize| match k {
            0 => format!("{mode:?} logits"),
            1 => format!("{mode:?} input gradient"),
            _ => format!("{mode:?} gradient of {}", names[k - 2]),
        };
        for (k, (one, two)) in one.iter().zip(&two).enumerate() {
            let (got, want): (&[f32], Vec<f32>) = match k {
                // The second copy's logits and input gradient are the first's.
                0 | 1 => (&two[one.len()..], one.clone()),
                _ => (two, one.iter().map(|v| 2.0 * v).collect()),
            };
            // Training's gradients pass through 121 norms of batch statistics summed in two
            // orders: held to 1e-3 of their largest value, as against torchvision.
            let largest = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let (rtol, atol) = match (k, mode) {
                (0, _) => (1e-4, 1e-5),
                (_, Mode::Eval) => (1e-3, 1e-7),
                (_, Mode::Train) => (1e-3, 1e-3 * largest),
            };
            common::assert_close(&what(k), got, &want, rtol, atol);
        }
    }
}

/// GoogLeNet in train mode with its aux heads (dropout off on both sides, so the outputs are
/// deterministic): loss = Σ (logits + aux2 + aux1) ⊙ seed. Held to 1e-2 per parameter, not the
/// 1e-3 the other two meet. Its fixture's input is the best of 32 for PyTorch's float32 (four
/// variants 4.5e-4 to 6.3e-4 off float64), yet gradlens is 6.6e-3 off there, in
/// inception4d.branch3 and, through it, every earlier layer (2e-3), with every convolution
/// algorithm alike (direct, implicit GEMM, Winograd). That is one flip: moving conv1's output
/// by a relative 1e-6 in float64 moves inception4d.branch3.0.conv.weight's gradient by 7.4e-3.
/// Every input tried at 64 and 96 pixels flips by 1e-2 to 1e-1 under such a perturbation, so
/// no float32 engine is reliably within 1e-3 of this step (tools/make_model_fixtures.py).
#[test]
fn googlenet_trains_like_torchvision() {
    let config = ModelConfig {
        dropout: Some(0.0),
        ..ModelConfig::default()
    };
    check_training("googlenet", &config, 1e-2, 1e-2);
}
