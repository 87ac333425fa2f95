//! The tape: whole-network gradients against finite differences in train and eval mode,
//! gradient accumulation over reused values, no-grad, seeds, memory release, BN modes.

mod common;

use common::{Rng, assert_close, gpu};
use gradlens::Tensor;
use gradlens::autograd::{Gradients, Tape, Var};
use gradlens::kernels::conv2d::Conv2d as ConvGeometry;
use gradlens::models::LesionNet;
use gradlens::nn::{BatchNorm2d, Conv2d, Forward, Init, Mode, ParamStore};

fn tensor(dims: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_slice(gpu(), dims.to_vec(), data).unwrap()
}

/// LesionNet's loss on fixed data, for the gradient check.
struct Problem {
    store: ParamStore,
    model: LesionNet,
    x: Vec<f32>,
    dims: [usize; 4],
    labels: Vec<usize>,
}

impl Problem {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut store = ParamStore::new(gpu());
        let model = LesionNet::new(&mut store, 2, 3, [3, 4, 5], seed).unwrap();
        // Running statistics away from (0, 1), so that eval mode is not the identity.
        let buffers: Vec<(String, Vec<usize>)> = store
            .buffers()
            .map(|(name, t)| (name.to_string(), t.dims().to_vec()))
            .collect();
        for (name, dims) in buffers {
            let values: Vec<f32> = rng
                .vec(dims[0])
                .into_iter()
                .map(|v| {
                    if name.ends_with("var") {
                        0.5 + v.abs()
                    } else {
                        0.3 * v
                    }
                })
                .collect();
            store.set(&name, tensor(&dims, &values)).unwrap();
        }
        let dims = [3, 2, 9, 8];
        let x = rng.vec(dims.iter().product());
        Self {
            store,
            model,
            x,
            dims,
            labels: vec![0, 2, 1],
        }
    }

    /// (loss, its value read back), recording on `tape`; `x` is a leaf wanting a gradient.
    fn loss(&self, tape: &Tape, mode: Mode) -> (Var, Var, f32) {
        let f = Forward::new(tape, &self.store, mode);
        let x = tape.input(tensor(&self.dims, &self.x));
        let logits = self.model.forward(&f, &x).unwrap();
        let loss = tape.cross_entropy(&logits, &self.labels, None).unwrap();
        let value = loss.tensor().to_vec().unwrap()[0];
        (x, loss, value)
    }

    /// The loss with element `index` of `name` (a parameter, or "x") shifted by `delta`.
    fn shifted_loss(&mut self, name: &str, index: usize, delta: f32, mode: Mode) -> f32 {
        let original = if name == "x" {
            let old = self.x[index];
            self.x[index] += delta;
            old
        } else {
            let t = self.store.parameter(name).unwrap();
            let mut values = t.to_vec().unwrap();
            let old = values[index];
            values[index] += delta;
            t.write(&values).unwrap();
            old
        };
        let (_, _, value) = self.loss(&Tape::no_grad(), mode);
        if name == "x" {
            self.x[index] = original;
        } else {
            let t = self.store.parameter(name).unwrap();
            let mut values = t.to_vec().unwrap();
            values[index] = original;
            t.write(&values).unwrap();
        }
        value
    }
}

/// Every parameter's gradient (up to 10 elements of each) and the input's, against central
/// differences of the GPU forward in f32 (step 1e-3: the loss is ~1, so f32 rounding costs
/// ~1e-4 in the difference quotient, and few ReLU or max-pool decisions can flip).
fn check_gradients(mode: Mode) {
    let mut problem = Problem::new(if mode == Mode::Train { 70 } else { 71 });
    let tape = Tape::new();
    let (x, loss, _) = problem.loss(&tape, mode);
    let grads = tape.backward(&loss, None).unwrap();
    let mut names: Vec<String> = problem
        .store
        .parameters()
        .map(|(n, _)| n.to_string())
        .collect();
    names.push("x".to_string());
    assert_eq!(
        names.len(),
        3 * 3 + 2 + 1,
        "conv, BN weight and bias per block, head, input"
    );
    let delta = 1e-3;
    for name in names {
        let analytic = match name.as_str() {
            "x" => grads.get(&x).expect("input gradient").to_vec().unwrap(),
            _ => grads
                .named(&name)
                .unwrap_or_else(|| panic!("no gradient for {name}"))
                .to_vec()
                .unwrap(),
        };
        let count = analytic.len();
        let picks: Vec<usize> = (0..10.min(count))
            .map(|i| i * count / 10.min(count))
            .collect();
        let mut numeric = Vec::new();
        let mut wanted = Vec::new();
        for &index in &picks {
            let plus = problem.shifted_loss(&name, index, delta, mode);
            let minus = problem.shifted_loss(&name, index, -delta, mode);
            numeric.push((plus - minus) / (2.0 * delta));
            wanted.push(analytic[index]);
        }
        assert_close(
            &format!("{mode:?} d loss / d {name}"),
            &numeric,
            &wanted,
            2e-2,
            5e-4,
        );
    }
}

#[test]
fn whole_network_gradients_match_finite_differences_in_train_mode() {
    check_gradients(Mode::Train);
}

#[test]
fn whole_network_gradients_match_finite_differences_in_eval_mode() {
    check_gradients(Mode::Eval);
}

/// y = relu(conv(x)) + x, then concatenated with x: x feeds three consumers, whose gradients
/// must be summed.
#[test]
fn gradients_of_reused_values_are_summed() {
    let mut rng = Rng::new(72);
    let mut store = ParamStore::new(gpu());
    let conv = Conv2d::new(
        &mut store,
        "conv",
        2,
        2,
        [3, 3],
        ConvGeometry::default().padding(1),
        true,
        Init::KaimingNormalFanOut,
        3,
    )
    .unwrap();
    let x_data = rng.vec(2 * 2 * 5 * 5);
    let seed_data = rng.vec(2 * 4 * 5 * 5);
    let run = |x_data: &[f32], tape: &Tape| {
        let f = Forward::new(tape, &store, Mode::Train);
        let x = tape.input(tensor(&[2, 2, 5, 5], x_data));
        let branch = tape.relu(&conv.forward(&f, &x).unwrap()).unwrap();
        let residual = tape.add(&branch, &x).unwrap();
        let out = tape.concat_channels(&[&residual, &x]).unwrap();
        (x, out)
    };
    let tape = Tape::new();
    let (x, out) = run(&x_data, &tape);
    let grads = tape
        .backward(&out, Some(tensor(&[2, 4, 5, 5], &seed_data)))
        .unwrap();
    let analytic = grads.get(&x).unwrap().to_vec().unwrap();
    // d(seed · out)/dx by central differences.
    let objective = |x_data: &[f32]| -> f32 {
        let out = run(x_data, &Tape::no_grad()).1.tensor().to_vec().unwrap();
        let dot: f64 = out
            .iter()
            .zip(&seed_data)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        dot as f32
    };
    let mut numeric = Vec::new();
    for i in 0..x_data.len() {
        let (mut plus, mut minus) = (x_data.clone(), x_data.clone());
        plus[i] += 1e-3;
        minus[i] -= 1e-3;
        numeric.push((objective(&plus) - objective(&minus)) / 2e-3);
    }
    assert_close("d (seed · out) / dx", &analytic, &numeric, 2e-2, 2e-3);
    assert!(grads.named("conv.weight").is_some() && grads.named("conv.bias").is_some());
}

#[test]
fn no_grad_records_nothing_and_backward_explains_misuse() {
    let store_x = tensor(&[1, 3], &[1.0, -2.0, 3.0]);
    let tape = Tape::no_grad();
    let x = tape.input(store_x.clone());
    let y = tape.relu(&x).unwrap();
    assert!(!x.requires_grad() && !y.requires_grad());
    assert!(
        tape.backward(&y, None)
            .unwrap_err()
            .to_string()
            .contains("no_grad")
    );

    let tape = Tape::new();
    let constant = tape.relu(&Var::constant(store_x.clone())).unwrap();
    assert!(!constant.requires_grad(), "constants in, constant out");
    let x = tape.input(store_x);
    let y = tape.relu(&x).unwrap();
    let error = tape.backward(&y, None).unwrap_err().to_string();
    assert!(error.contains("seed"), "{error}");
    let wrong_seed = tensor(&[3], &[1.0, 1.0, 1.0]);
    assert!(tape.backward(&y, Some(wrong_seed)).is_err());
    // A seed picks one output (saliency's class score): relu passes it where x > 0.
    let seed = tensor(&[1, 3], &[0.0, 1.0, 1.0]);
    let grads = tape.backward(&y, Some(seed)).unwrap();
    assert_eq!(
        grads.get(&x).unwrap().to_vec().unwrap(),
        vec![0.0, 0.0, 1.0]
    );
}

#[test]
fn frozen_parameters_get_no_gradient() {
    let mut store = ParamStore::new(gpu());
    let model = LesionNet::new(&mut store, 1, 2, [2, 2, 2], 5).unwrap();
    store.freeze("features.").unwrap();
    assert!(
        store
            .freeze("featurse")
            .unwrap_err()
            .to_string()
            .contains("featurse")
    );
    let tape = Tape::new();
    let f = Forward::new(&tape, &store, Mode::Train);
    let x = Var::constant(Tensor::full(gpu(), [2, 1, 8, 8], 0.5).unwrap());
    let mut rng = Rng::new(73);
    x.tensor().write(&rng.vec(128)).unwrap();
    let logits = model.forward(&f, &x).unwrap();
    let loss = tape.cross_entropy(&logits, &[0, 1], None).unwrap();
    let grads = tape.backward(&loss, None).unwrap();
    let names: Vec<&str> = grads.parameters().map(|(name, _)| name).collect();
    assert_eq!(names, ["classifier.bias", "classifier.weight"]);
}

/// Train mode normalises with the batch statistics and moves the running ones by momentum 0.1
/// (the variance unbiased); eval mode uses and keeps the running ones.
#[test]
fn batch_norm_modes_behave_like_pytorch() {
    let mut store = ParamStore::new(gpu());
    let bn = BatchNorm2d::new(&mut store, "bn", 2, 1e-5).unwrap();
    let data: Vec<f32> = (0..2 * 2 * 3)
        .map(|i| (i as f32 * 0.7).sin() * 2.0 + 1.0)
        .collect();
    let x = Var::constant(tensor(&[2, 2, 3, 1], &data));
    let channel = |c: usize| -> Vec<f32> {
        (0..2)
            .flat_map(|n| data[(n * 2 + c) * 3..(n * 2 + c) * 3 + 3].to_vec())
            .collect()
    };
    let tape = Tape::no_grad();
    let train = Forward::new(&tape, &store, Mode::Train);
    let y = bn
        .forward(&train, &x)
        .unwrap()
        .into_tensor()
        .to_vec()
        .unwrap();
    let running_mean = store.buffer("bn.running_mean").unwrap().to_vec().unwrap();
    let running_var = store.buffer("bn.running_var").unwrap().to_vec().unwrap();
    for c in 0..2 {
        let values = channel(c);
        let mean = values.iter().sum::<f32>() / 6.0;
        let biased = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 6.0;
        let unbiased = biased * 6.0 / 5.0;
        assert!(
            (running_mean[c] - 0.1 * mean).abs() < 1e-5,
            "running_mean {running_mean:?}"
        );
        assert!(
            (running_var[c] - (0.9 + 0.1 * unbiased)).abs() < 1e-5,
            "running_var {running_var:?}"
        );
        let first = (data[c * 3] - mean) / (biased + 1e-5).sqrt();
        assert!((y[c * 3] - first).abs() < 1e-4, "train-mode output {y:?}");
    }
    let eval = Forward::new(&tape, &store, Mode::Eval);
    let y = bn
        .forward(&eval, &x)
        .unwrap()
        .into_tensor()
        .to_vec()
        .unwrap();
    for c in 0..2 {
        let want = (data[c * 3] - running_mean[c]) / (running_var[c] + 1e-5).sqrt();
        assert!((y[c * 3] - want).abs() < 1e-4, "eval-mode output {y:?}");
    }
    assert_eq!(
        store.buffer("bn.running_mean").unwrap().to_vec().unwrap(),
        running_mean
    );
}

/// Eval-mode BN with its residual add and ReLU fused into one kernel gives what the three
/// ops give, forward and backward (input, residual, weight, bias), plain and guided; with the
/// parameters frozen too (saliency), where the ReLU's backward runs inside BN's. Planes of 42
/// and 24 values: the scalar and the vec4 kernels.
#[test]
fn fused_batch_norm_epilogue_matches_the_three_ops() {
    for mode in [Mode::Eval, Mode::Train] {
        for dims in [[2, 5, 6, 7], [2, 5, 4, 6]] {
            for frozen in [false, true] {
                check_fused_batch_norm(dims, frozen, mode);
            }
        }
    }
}

fn check_fused_batch_norm(dims: [usize; 4], frozen: bool, mode: Mode) {
    let mut rng = Rng::new(44);
    let numel: usize = dims.iter().product();
    let mut store = ParamStore::new(gpu());
    let bn = BatchNorm2d::new(&mut store, "bn", 5, 1e-5).unwrap();
    for (name, values) in [
        ("bn.weight", rng.vec(5)),
        ("bn.bias", rng.vec(5)),
        ("bn.running_mean", rng.vec(5)),
        (
            "bn.running_var",
            rng.vec(5).iter().map(|v| v.abs() + 0.5).collect(),
        ),
    ] {
        store
            .set(name, Tensor::from_slice(gpu(), [5], &values).unwrap())
            .unwrap();
    }
    if frozen {
        store.freeze("bn").unwrap();
    }
    let x_data = rng.vec(numel);
    let r_data = rng.vec(numel);
    let seed_data = rng.vec(numel);
    // `uses`: how many gradients reach the fused output (a residual block's output feeds the
    // next block twice); the saliency rule adds two in its own pass and must sum a third first.
    for (residual, relu, guided, uses) in [
        (true, true, false, 1),
        (false, true, false, 1),
        (true, false, false, 1),
        (true, true, true, 1),
        (true, true, false, 2),
        (false, true, true, 2),
        (true, true, false, 3),
    ] {
        let run = |fused: bool| -> Vec<Vec<f32>> {
            let tape = if guided { Tape::guided() } else { Tape::new() };
            let f = Forward::new(&tape, &store, mode);
            let x = tape.input(Tensor::from_slice(gpu(), dims, &x_data).unwrap());
            let r = tape.input(Tensor::from_slice(gpu(), dims, &r_data).unwrap());
            let r_used = residual.then_some(&r);
            let y = if fused {
                bn.forward_then(&f, &x, r_used, relu).unwrap()
            } else {
                let mut y = bn.forward(&f, &x).unwrap();
                if let Some(r) = r_used {
                    y = tape.add(&y, r).unwrap();
                }
                if relu { tape.relu(&y).unwrap() } else { y }
            };
            let out = match uses {
                1 => y.clone(),
                2 => tape.add(&y, &tape.scale(&y, -0.7).unwrap()).unwrap(),
                _ => {
                    let twice = tape.add(&y, &y).unwrap();
                    tape.add(&twice, &tape.scale(&y, -0.7).unwrap()).unwrap()
                }
            };
            let seed = Tensor::from_slice(gpu(), dims, &seed_data).unwrap();
            let grads = tape.backward(&out, Some(seed)).unwrap();
            let mut results = vec![
                y.tensor().to_vec().unwrap(),
                grads.get(&x).unwrap().to_vec().unwrap(),
            ];
            if residual {
                results.push(grads.get(&r).unwrap().to_vec().unwrap());
            }
            for name in ["bn.weight", "bn.bias"] {
                match grads.named(name) {
                    Some(grad) => results.push(grad.to_vec().unwrap()),
                    None => assert!(frozen, "{name} has no gradient"),
                }
            }
            results
        };
        let (fused, composed) = (run(true), run(false));
        assert!(fused[0].iter().any(|&v| v != 0.0));
        for (k, (a, b)) in fused.iter().zip(&composed).enumerate() {
            let what = format!(
                "{mode:?} {dims:?} frozen {frozen} residual {residual} relu {relu} guided \
                 {guided} uses {uses}: result {k}"
            );
            assert_close(&what, a, b, 1e-5, 1e-6);
        }
    }
}

/// A convolution and its eval-mode BN, residual add and ReLU as one op
/// (`BatchNorm2d::after_conv`) give what the convolution then `forward_then` give, forward and
/// backward, on every algorithm the convolution may take: the GEMM over 1×1 and strided
/// convolutions, on planes of a multiple of 4 positions and on a 7×7 one padded to 52 (its
/// epilogue stores the final values where the subgroup kernel runs and no residual is added;
/// BN's pass follows otherwise), Winograd F(2×2) and F(4×4) (the output transform's
/// epilogue), and a grouped convolution (implicit GEMM, BN's pass); each without and with a
/// convolution bias (VGG-BN's, folded into the shifts). Frozen parameters take the fused op;
/// trainable ones and training mode take the two ops, with the parameters' gradients.
#[test]
fn a_convolution_with_its_batch_norm_matches_the_two_ops() {
    for case in conv_cases(false).iter().chain(&conv_cases(true)) {
        for (mode, frozen) in [
            (Mode::Eval, true),
            (Mode::Eval, false),
            (Mode::Train, false),
        ] {
            check_conv_batch_norm(case, mode, frozen);
        }
    }
}

/// A convolution of the fused-op tests: its input, output channels, square kernel, geometry
/// and whether it has a bias.
struct ConvCase {
    name: &'static str,
    input: [usize; 4],
    c_out: usize,
    kernel: usize,
    geometry: ConvGeometry,
    conv_bias: bool,
}

impl ConvCase {
    /// The convolution "conv" in `store`, its bias (if any) set to values that are not all 0.
    fn build(&self, store: &mut ParamStore, rng: &mut Rng) -> Conv2d {
        let conv = Conv2d::new(
            store,
            "conv",
            self.input[1],
            self.c_out,
            [self.kernel, self.kernel],
            self.geometry,
            self.conv_bias,
            Init::KaimingNormalFanOut,
            5,
        )
        .unwrap();
        if self.conv_bias {
            let bias = Tensor::from_slice(gpu(), [self.c_out], &rng.vec(self.c_out)).unwrap();
            store.set("conv.bias", bias).unwrap();
        }
        conv
    }

    /// The gradients of the convolution's parameters and of `others`, pushed onto `results`;
    /// frozen ones have none.
    fn push_parameter_gradients(
        &self,
        grads: &Gradients,
        others: &[&'static str],
        frozen: bool,
        results: &mut Vec<Vec<f32>>,
    ) {
        let mut names = vec!["conv.weight"];
        names.extend(self.conv_bias.then_some("conv.bias"));
        names.extend(others);
        for name in names {
            match grads.named(name) {
                Some(grad) => results.push(grad.to_vec().unwrap()),
                None => assert!(frozen, "{name} has no gradient"),
            }
        }
    }
}

/// The fused-op tests' convolutions, with or without a bias: each algorithm the convolution may
/// take.
fn conv_cases(conv_bias: bool) -> Vec<ConvCase> {
    let geometry = ConvGeometry::default();
    let padded = geometry.padding(1);
    [
        ("1×1, 8×8", [2, 8, 8, 8], 12, 1, geometry),
        ("1×1, 7×7", [1, 8, 7, 7], 12, 1, geometry),
        ("3×3 stride 2", [1, 4, 16, 16], 8, 3, padded.stride(2)),
        ("Winograd F(2×2)", [2, 8, 8, 8], 8, 3, padded),
        ("Winograd F(4×4)", [3, 4, 16, 16], 8, 3, padded),
        ("grouped", [1, 8, 6, 6], 8, 3, padded.groups(2)),
    ]
    .into_iter()
    .map(|(name, input, c_out, kernel, geometry)| ConvCase {
        name,
        input,
        c_out,
        kernel,
        geometry,
        conv_bias,
    })
    .collect()
}

fn check_conv_batch_norm(case: &ConvCase, mode: Mode, frozen: bool) {
    let (name, input, c_out) = (case.name, case.input, case.c_out);
    let mut rng = Rng::new(45);
    let mut store = ParamStore::new(gpu());
    let conv = case.build(&mut store, &mut rng);
    let bn = BatchNorm2d::new(&mut store, "bn", c_out, 1e-5).unwrap();
    for (name, values) in [
        ("bn.weight", rng.vec(c_out)),
        ("bn.bias", rng.vec(c_out)),
        ("bn.running_mean", rng.vec(c_out)),
        (
            "bn.running_var",
            rng.vec(c_out).iter().map(|v| v.abs() + 0.5).collect(),
        ),
    ] {
        store
            .set(name, Tensor::from_slice(gpu(), [c_out], &values).unwrap())
            .unwrap();
    }
    if frozen {
        store.freeze("conv").unwrap();
        store.freeze("bn").unwrap();
    }
    let x_data = rng.vec(input.iter().product());
    let probe = Tape::no_grad();
    let output_dims = conv
        .forward(
            &Forward::new(&probe, &store, Mode::Eval),
            &probe.input(tensor(&input, &x_data)),
        )
        .unwrap()
        .dims()
        .to_vec();
    let numel: usize = output_dims.iter().product();
    let r_data = rng.vec(numel);
    let seed_data = rng.vec(numel);
    for (residual, relu, guided, uses) in [
        (true, true, false, 1),
        (false, true, false, 1),
        (false, false, false, 1),
        (true, false, false, 1),
        (true, true, true, 1),
        (true, true, false, 2),
    ] {
        let run = |fused: bool| -> Vec<Vec<f32>> {
            let tape = if guided { Tape::guided() } else { Tape::new() };
            let f = Forward::new(&tape, &store, mode);
            let x = tape.input(tensor(&input, &x_data));
            let r = tape.input(tensor(&output_dims, &r_data));
            let r_used = residual.then_some(&r);
            let y = match fused {
                true => bn.after_conv(&f, &conv, &x, r_used, relu).unwrap(),
                false => bn
                    .forward_then(&f, &conv.forward(&f, &x).unwrap(), r_used, relu)
                    .unwrap(),
            };
            let out = match uses {
                1 => y.clone(),
                _ => tape.add(&y, &tape.scale(&y, -0.7).unwrap()).unwrap(),
            };
            let grads = tape
                .backward(&out, Some(tensor(&output_dims, &seed_data)))
                .unwrap();
            let mut results = vec![
                y.tensor().to_vec().unwrap(),
                grads.get(&x).unwrap().to_vec().unwrap(),
            ];
            if residual {
                results.push(grads.get(&r).unwrap().to_vec().unwrap());
            }
            case.push_parameter_gradients(&grads, &["bn.weight", "bn.bias"], frozen, &mut results);
            results
        };
        let (fused, composed) = (run(true), run(false));
        assert_eq!(fused.len(), composed.len());
        assert!(fused[0].iter().any(|&v| v > 0.0) && fused[1].iter().any(|&v| v != 0.0));
        for (k, (a, b)) in fused.iter().zip(&composed).enumerate() {
            let what = format!(
                "{name} bias {} {mode:?} frozen {frozen} residual {residual} relu {relu} \
                 guided {guided} uses {uses}: result {k}",
                case.conv_bias
            );
            assert_close(&what, a, b, 1e-5, 1e-5);
        }
    }
}

/// A convolution, its bias and ReLU as one op (`Conv2d::forward_relu`, VGG's layers) give what
/// the convolution then the ReLU give, forward and backward (guided too, and with the output
/// used twice), on every algorithm the convolution may take; frozen parameters, and trainable
/// ones with their gradients.
#[test]
fn a_convolution_with_its_relu_matches_the_two_ops() {
    for case in conv_cases(true) {
        for frozen in [true, false] {
            check_conv_relu(&case, frozen);
        }
    }
}

fn check_conv_relu(case: &ConvCase, frozen: bool) {
    let mut rng = Rng::new(48);
    let mut store = ParamStore::new(gpu());
    let conv = case.build(&mut store, &mut rng);
    if frozen {
        store.freeze("conv").unwrap();
    }
    let input = case.input;
    let x_data = rng.vec(input.iter().product());
    for (guided, uses) in [(false, 1), (true, 1), (false, 2)] {
        let run = |fused: bool| -> Vec<Vec<f32>> {
            let tape = if guided { Tape::guided() } else { Tape::new() };
            let f = Forward::new(&tape, &store, Mode::Eval);
            let x = tape.input(tensor(&input, &x_data));
            let y = match fused {
                true => conv.forward_relu(&f, &x, "relu").unwrap(),
                false => tape.relu(&conv.forward(&f, &x).unwrap()).unwrap(),
            };
            let out = match uses {
                1 => y.clone(),
                _ => tape.add(&y, &tape.scale(&y, -0.7).unwrap()).unwrap(),
            };
            // Of either sign, so that guided backprop drops some.
            let seed: Vec<f32> = (0..y.tensor().numel())
                .map(|i| (i as f32 * 0.37).sin())
                .collect();
            let grads = tape.backward(&out, Some(tensor(y.dims(), &seed))).unwrap();
            let mut results = vec![
                y.tensor().to_vec().unwrap(),
                grads.get(&x).unwrap().to_vec().unwrap(),
            ];
            case.push_parameter_gradients(&grads, &[], frozen, &mut results);
            results
        };
        let (fused, composed) = (run(true), run(false));
        assert_eq!(fused.len(), composed.len());
        let y = &fused[0];
        assert!(
            y.iter().any(|&v| v > 0.0) && y.contains(&0.0),
            "{}: the ReLU passes some values and stops others",
            case.name
        );
        assert!(fused[1].iter().any(|&v| v != 0.0));
        for (k, (a, b)) in fused.iter().zip(&composed).enumerate() {
            let what = format!(
                "{} frozen {frozen} guided {guided} uses {uses}: result {k}",
                case.name
            );
            assert_close(&what, a, b, 1e-5, 1e-5);
        }
    }
    // The bias's scale and shift are kept between passes, and follow the bias when written.
    let forward = |fused: bool| -> Vec<f32> {
        let tape = Tape::no_grad();
        let f = Forward::new(&tape, &store, Mode::Eval);
        let x = tape.input(tensor(&input, &x_data));
        let y = match fused {
            true => conv.forward_relu(&f, &x, "relu").unwrap(),
            false => tape.relu(&conv.forward(&f, &x).unwrap()).unwrap(),
        };
        y.tensor().to_vec().unwrap()
    };
    let before = forward(true);
    let bias: Vec<f32> = rng.vec(case.c_out).iter().map(|v| v + 0.5).collect();
    store.parameter("conv.bias").unwrap().write(&bias).unwrap();
    let (fused, composed) = (forward(true), forward(false));
    let what = format!("{} frozen {frozen}, after writing conv.bias", case.name);
    assert_close(&what, &fused, &composed, 1e-5, 1e-5);
    assert_ne!(fused, before, "{what}: writing the bias changed nothing");
}

/// The folded BatchNorm a convolution applies is kept between forward passes, and follows each
/// of its four tensors, and the convolution's bias where it has one, when one is written (as
/// a training step writes them).
#[test]
fn a_folded_batch_norm_follows_every_tensor_it_comes_from() {
    for conv_bias in [false, true] {
        check_fold_follows(conv_bias);
    }
}

fn check_fold_follows(conv_bias: bool) {
    let mut rng = Rng::new(46);
    let mut store = ParamStore::new(gpu());
    let geometry = ConvGeometry::default().padding(1);
    let conv = Conv2d::new(
        &mut store,
        "conv",
        8,
        8,
        [3, 3],
        geometry,
        conv_bias,
        Init::KaimingNormalFanOut,
        6,
    )
    .unwrap();
    let bn = BatchNorm2d::new(&mut store, "bn", 8, 1e-5).unwrap();
    store.freeze("conv").unwrap();
    store.freeze("bn").unwrap();
    let x_data = rng.vec(2 * 8 * 8 * 8);
    let run = |store: &ParamStore, fused: bool| -> Vec<f32> {
        let tape = Tape::no_grad();
        let f = Forward::new(&tape, store, Mode::Eval);
        let x = tape.input(tensor(&[2, 8, 8, 8], &x_data));
        let y = match fused {
            true => bn.after_conv(&f, &conv, &x, None, true).unwrap(),
            false => bn
                .forward_then(&f, &conv.forward(&f, &x).unwrap(), None, true)
                .unwrap(),
        };
        y.tensor().to_vec().unwrap()
    };
    let mut previous = run(&store, true);
    let mut written = vec!["bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"];
    written.extend(conv_bias.then_some("conv.bias"));
    for name in written {
        let values: Vec<f32> = rng.vec(8).iter().map(|v| v.abs() + 0.5).collect();
        let target = match name {
            "bn.running_mean" | "bn.running_var" => store.buffer(name).unwrap(),
            _ => store.parameter(name).unwrap(),
        };
        target.write(&values).unwrap();
        let (fused, composed) = (run(&store, true), run(&store, false));
        assert_close(
            &format!("conv bias {conv_bias}, after writing {name}"),
            &fused,
            &composed,
            1e-5,
            1e-5,
        );
        assert_ne!(fused, previous, "writing {name} changed nothing");
        previous = fused;
    }
    // Replaced rather than written (`ParamStore::set`), twice with nothing run between. The
    // kept fold holds the tensors it came from, so no new tensor can take over their buffers
    // (whose write generations would start again from 0).
    for round in 0..2 {
        let values: Vec<f32> = rng.vec(8).iter().map(|v| v + round as f32).collect();
        let mean = Tensor::from_slice(gpu(), [8], &values).unwrap();
        store.set("bn.running_mean", mean).unwrap();
        gpu().synchronize().unwrap();
    }
    let (fused, composed) = (run(&store, true), run(&store, false));
    assert_close(
        "after replacing bn.running_mean",
        &fused,
        &composed,
        1e-5,
        1e-5,
    );
    assert_ne!(fused, previous, "replacing bn.running_mean changed nothing");
}
