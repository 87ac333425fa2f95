//! shaders/elementwise.wgsl and shaders/fill.wgsl against the CPU reference.

mod common;

use common::op_check::{OpCheck, Tolerance};
use common::{Rng, assert_close, gpu};
use gradlens::autograd::{Tape, Var};
use gradlens::kernels::{elementwise, fill};
use gradlens::reference;
use gradlens::reference::elementwise as oracle;
use gradlens::{Error, Result, Tensor};

/// Awkward lengths: 1, primes, not a multiple of the workgroup, just past one workgroup; and
/// multiples of 4 (the vec4 kernels) off the workgroup's 1024 elements.
const LENGTHS: &[usize] = &[1, 2, 7, 97, 255, 256, 257, 1009, 65_537, 4, 1_028, 65_540];

fn pair(rng: &mut Rng, len: usize) -> (Vec<f32>, Vec<f32>, Tensor, Tensor) {
    let a = rng.vec(len);
    let b = rng.vec(len);
    let ta = Tensor::from_slice(gpu(), [len], &a).unwrap();
    let tb = Tensor::from_slice(gpu(), [len], &b).unwrap();
    (a, b, ta, tb)
}

/// The binary kernels (scalar and vec4 entries) against the reference, exactly: one f32
/// operation each, which f64 rounds to the same value.
#[test]
fn binary_ops_match_reference() {
    type Kernel = fn(&Tensor, &Tensor) -> Result<Tensor>;
    type Reference = fn(&[f64], &[f64]) -> Vec<f64>;
    let ops: [(&str, Kernel, Reference); 4] = [
        ("add", elementwise::add, oracle::add),
        ("sub", elementwise::sub, oracle::sub),
        ("mul", elementwise::mul, oracle::mul),
        (
            "relu_backward",
            elementwise::relu_backward,
            oracle::relu_backward,
        ),
    ];
    for &len in LENGTHS {
        for (index, (name, kernel, reference)) in ops.into_iter().enumerate() {
            OpCheck::random(
                &format!("{name} len {len}"),
                &[&[len], &[len]],
                index as u64,
            )
            .tolerances(Tolerance::EXACT, Tolerance::EXACT)
            .run_forward(|t| kernel(&t[0], &t[1]), |v| reference(v[0], v[1]));
        }
    }
}

#[test]
fn unary_ops_match_reference() {
    for &len in LENGTHS {
        OpCheck::random(&format!("scale len {len}"), &[&[len]], 2)
            .tolerances(Tolerance::EXACT, Tolerance::EXACT)
            .run_forward(
                |t| elementwise::scale(&t[0], -2.5),
                |v| oracle::scale(v[0], -2.5),
            );
        OpCheck::random(&format!("relu len {len}"), &[&[len]], 3)
            .tolerances(Tolerance::EXACT, Tolerance::EXACT)
            .run_forward(|t| elementwise::relu(&t[0]), |v| oracle::relu(v[0]));
    }
}

/// The tape's add and scale: forward and both rules (an add's gradient reaches both inputs
/// unchanged), with finite differences of the reference.
#[test]
fn add_and_scale_tape_rules_match_reference() {
    for &len in &[7, 1028] {
        OpCheck::random(&format!("Tape::add len {len}"), &[&[len], &[len]], 34)
            .tolerances(Tolerance::EXACT, Tolerance::EXACT)
            .run(
                |t| elementwise::add(&t[0], &t[1]),
                |t, g| {
                    let tape = Tape::new();
                    let (a, b) = (tape.input(t[0].clone()), tape.input(t[1].clone()));
                    let sum = tape.add(&a, &b)?;
                    let gradients = tape.backward(&sum, Some(g.clone()))?;
                    Ok(vec![gradients.get(&a).cloned(), gradients.get(&b).cloned()])
                },
                |v| oracle::add(v[0], v[1]),
                |_, g| vec![Some(g.to_vec()), Some(g.to_vec())],
            );
        OpCheck::random(&format!("Tape::scale len {len}"), &[&[len]], 35)
            .tolerances(Tolerance::EXACT, Tolerance::EXACT)
            .run(
                |t| elementwise::scale(&t[0], -2.5),
                |t, g| {
                    Ok(vec![Some(tape_gradient(
                        |tape, v| tape.scale(v, -2.5),
                        &t[0],
                        g,
                    )?)])
                },
                |v| oracle::scale(v[0], -2.5),
                |_, g| vec![Some(oracle::scale(g, -2.5))],
            );
    }
}

/// Lengths for the forward-and-backward checks: the scalar entries (1, 7, 257) and the vec4
/// ones (256, 1028); few enough values for finite differences over every element.
const ACTIVATION_LENGTHS: &[usize] = &[1, 7, 256, 257, 1028];

/// The gradient of a one-input op taken through the tape's backward rule.
fn tape_gradient(
    op: impl Fn(&Tape, &Var) -> Result<Var>,
    x: &Tensor,
    grad: &Tensor,
) -> Result<Tensor> {
    let tape = Tape::new();
    let x = tape.input(x.clone());
    let y = op(&tape, &x)?;
    let gradients = tape.backward(&y, Some(grad.clone()))?;
    Ok(gradients
        .get(&x)
        .expect("the input reaches the output")
        .clone())
}

#[test]
fn activations_match_reference_and_finite_differences() {
    // Exact for relu; sigmoid and SiLU go through each adapter's exp (a few ulp).
    let smooth = Tolerance::relative(2e-6);
    for &len in ACTIVATION_LENGTHS {
        OpCheck::random(&format!("relu len {len}"), &[&[len]], 21)
            .tolerances(Tolerance::EXACT, Tolerance::EXACT)
            .run(
                |x| elementwise::relu(&x[0]),
                |x, g| Ok(vec![Some(elementwise::relu_backward(&x[0], g)?)]),
                |x| oracle::relu(x[0]),
                |x, g| vec![Some(oracle::relu_backward(x[0], g))],
            );
        OpCheck::random(&format!("sigmoid len {len}"), &[&[len]], 22)
            .tolerances(smooth, smooth)
            .run(
                |x| elementwise::sigmoid(&x[0]),
                |x, g| {
                    let y = elementwise::sigmoid(&x[0])?;
                    Ok(vec![Some(elementwise::sigmoid_backward(&y, g)?)])
                },
                |x| oracle::sigmoid(x[0]),
                |x, g| vec![Some(oracle::sigmoid_backward(&oracle::sigmoid(x[0]), g))],
            );
        OpCheck::random(&format!("silu len {len}"), &[&[len]], 23)
            .tolerances(smooth, smooth)
            .run(
                |x| elementwise::silu(&x[0]),
                |x, g| Ok(vec![Some(elementwise::silu_backward(&x[0], g)?)]),
                |x| oracle::silu(x[0]),
                |x, g| vec![Some(oracle::silu_backward(x[0], g))],
            );
    }
}

/// The tape's rules for the activations reach the same gradients as the reference.
#[test]
fn activation_tape_rules_match_reference() {
    let smooth = Tolerance::relative(2e-6);
    for &len in &[7, 1028] {
        OpCheck::random(&format!("Tape::relu len {len}"), &[&[len]], 31)
            .tolerances(Tolerance::EXACT, Tolerance::EXACT)
            .run(
                |x| elementwise::relu(&x[0]),
                |x, g| Ok(vec![Some(tape_gradient(|t, v| t.relu(v), &x[0], g)?)]),
                |x| oracle::relu(x[0]),
                |x, g| vec![Some(oracle::relu_backward(x[0], g))],
            );
        OpCheck::random(&format!("Tape::sigmoid len {len}"), &[&[len]], 32)
            .tolerances(smooth, smooth)
            .run(
                |x| elementwise::sigmoid(&x[0]),
                |x, g| Ok(vec![Some(tape_gradient(|t, v| t.sigmoid(v), &x[0], g)?)]),
                |x| oracle::sigmoid(x[0]),
                |x, g| vec![Some(oracle::sigmoid_backward(&oracle::sigmoid(x[0]), g))],
            );
        OpCheck::random(&format!("Tape::silu len {len}"), &[&[len]], 33)
            .tolerances(smooth, smooth)
            .run(
                |x| elementwise::silu(&x[0]),
                |x, g| Ok(vec![Some(tape_gradient(|t, v| t.silu(v), &x[0], g)?)]),
                |x| oracle::silu(x[0]),
                |x, g| vec![Some(oracle::silu_backward(x[0], g))],
            );
    }
}

/// Far from zero, exp overflows; the sigmoid saturates to 0 and 1 (never NaN) and NaN passes
/// through, in both the scalar and the vec4 entries.
#[test]
fn sigmoid_and_silu_saturate_and_pass_nan() {
    for values in [
        &[-100.0, 100.0, f32::NAN, 0.0][..],
        &[-100.0, 100.0, f32::NAN, 0.0, -89.0],
    ] {
        let t = Tensor::from_slice(gpu(), [values.len()], values).unwrap();
        let sigmoid = elementwise::sigmoid(&t).unwrap().to_vec().unwrap();
        assert_eq!(sigmoid[0], 0.0, "sigmoid(-100)");
        assert_eq!(sigmoid[1], 1.0, "sigmoid(100)");
        assert!(sigmoid[2].is_nan(), "sigmoid(NaN)");
        assert_eq!(sigmoid[3], 0.5, "sigmoid(0)");
        let silu = elementwise::silu(&t).unwrap().to_vec().unwrap();
        assert_eq!(silu[0], 0.0, "silu(-100)");
        assert_eq!(silu[1], 100.0, "silu(100)");
        assert!(silu[2].is_nan(), "silu(NaN)");
        assert_eq!(silu[3], 0.0, "silu(0)");
    }
}

#[test]
fn relu_passes_nan_through_like_pytorch() {
    // Lengths 4 and 5: the vec4 kernel and the scalar one.
    for values in [
        &[f32::NAN, -1.0, 0.0, 2.0][..],
        &[f32::NAN, -1.0, 0.0, 2.0, 3.0],
    ] {
        let t = Tensor::from_slice(gpu(), [values.len()], values).unwrap();
        let out = elementwise::relu(&t).unwrap().to_vec().unwrap();
        assert!(out[0].is_nan());
        assert_eq!(&out[1..4], &[0.0, 0.0, 2.0]);
    }
}

/// More workgroups of 256 than one grid dimension holds (65535 on most adapters; fewer under
/// `GRADLENS_TEST_MAX_WORKGROUPS`): the dispatch must fold into a 2-D grid and still cover
/// every element exactly once.
#[test]
fn long_tensors_fold_into_a_two_dimensional_grid() {
    let len = common::folded_length(256) + 1_000_003.min(common::folded_length(256) / 4);
    let mut rng = Rng::new(3);
    let (a, b, ta, tb) = pair(&mut rng, len);
    let got = elementwise::add(&ta, &tb).unwrap().to_vec().unwrap();
    assert_close(
        "add (folded grid)",
        &got,
        &reference::elementwise::add(&a, &b),
        0.0,
        0.0,
    );
}

#[test]
fn fill_and_copy_write_exactly_their_ranges() {
    let t = Tensor::full(gpu(), [3, 5], 1.5).unwrap();
    assert_eq!(t.to_vec().unwrap(), vec![1.5; 15]);

    let mut rng = Rng::new(4);
    let src_values = rng.vec(40);
    let src = Tensor::from_slice(gpu(), [40], &src_values).unwrap();
    let dst = Tensor::full(gpu(), [30], -7.0).unwrap();
    fill::copy_into(&src, 11, &dst, 3, 20).unwrap();
    let got = dst.to_vec().unwrap();
    let want = reference::fill::copy_into(&src_values, 11, &[-7.0; 30], 3, 20);
    assert_eq!(got, want);

    OpCheck::new("copy", vec![(vec![40], src_values)])
        .tolerances(Tolerance::EXACT, Tolerance::EXACT)
        .run_forward(|t| fill::copy(&t[0]), |v| v[0].to_vec());
}

#[test]
fn shape_mismatch_names_both_shapes() {
    let a = Tensor::zeros(gpu(), [2, 3]).unwrap();
    let b = Tensor::zeros(gpu(), [3, 2]).unwrap();
    let error = elementwise::add(&a, &b).unwrap_err();
    assert!(matches!(error, Error::ShapeMismatch { .. }));
    let message = error.to_string();
    assert!(
        message.contains("[2, 3]") && message.contains("[3, 2]"),
        "{message}"
    );
}

#[test]
fn copy_out_of_range_is_refused() {
    let a = Tensor::zeros(gpu(), [10]).unwrap();
    let b = Tensor::zeros(gpu(), [10]).unwrap();
    let error = fill::copy_into(&a, 5, &b, 0, 6).unwrap_err();
    assert!(error.to_string().contains("offset 5"), "{error}");
}

#[test]
fn empty_tensors_need_no_dispatch() {
    let a = Tensor::from_slice(gpu(), [0, 3], &[]).unwrap();
    let out = elementwise::add(&a, &a).unwrap();
    assert_eq!(out.dims(), &[0, 3]);
    assert!(out.to_vec().unwrap().is_empty());
}
