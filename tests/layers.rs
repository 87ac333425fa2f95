//! Linear, bias, dropout, softmax backward and NLL loss against the CPU reference, and the
//! references' backward passes against finite differences.

mod common;

use common::op_check::{OpCheck, Tolerance};
use common::{Rng, gpu};
use gradlens::kernels::{elementwise, linear, loss, softmax};
use gradlens::reference;
use gradlens::{Error, Tensor};

fn upload(dims: Vec<usize>, data: &[f32]) -> Tensor {
    Tensor::from_slice(gpu(), dims, data).unwrap()
}

#[test]
fn linear_forward_and_backward_match_reference() {
    use reference::matmul::matmul;
    for (batch, inputs, outputs) in [(1, 7, 3), (3, 64, 10), (5, 33, 17), (2, 1, 1)] {
        let shapes: [&[usize]; 3] = [&[batch, inputs], &[outputs, inputs], &[outputs]];
        OpCheck::random(&format!("linear {batch}x{inputs}->{outputs}"), &shapes, 50)
            .output_shape(&[batch, outputs])
            .run(
                |t| linear::linear(&t[0], &t[1], Some(&t[2])),
                |t, g| {
                    let grads = linear::linear_backward(&t[0], &t[1], g, true)?;
                    Ok(vec![
                        Some(grads.grad_input),
                        Some(grads.grad_weight),
                        grads.grad_bias,
                    ])
                },
                |v| {
                    let xw = matmul(v[0], v[1], 1, batch, outputs, inputs, false, true, 0, 0);
                    reference::elementwise::add_row_bias(&xw, v[2])
                },
                |v, g| {
                    vec![
                        Some(matmul(
                            g, v[1], 1, batch, inputs, outputs, false, false, 0, 0,
                        )),
                        Some(matmul(
                            g, v[0], 1, outputs, inputs, batch, true, false, 0, 0,
                        )),
                        Some(reference::reduce::sum(g, &[batch, outputs], &[0])),
                    ]
                },
            );
    }
    let x = Tensor::zeros(gpu(), [2, 3]).unwrap();
    let w = Tensor::zeros(gpu(), [4, 5]).unwrap();
    assert!(matches!(
        linear::linear(&x, &w, None),
        Err(Error::ShapeMismatch { .. })
    ));
}

/// Forward and backward (the same mask on the gradient) through `OpCheck`; the share of
/// dropped values, the mask's repetition for a seed and its change with another seed.
#[test]
fn dropout_matches_reference_keeps_the_right_share_and_repeats_its_mask() {
    for p in [0.0, 0.1, 0.5, 0.9] {
        let threshold = elementwise::dropout_threshold(p);
        let scale = 1.0 / (1.0 - p);
        OpCheck::random(&format!("dropout p={p}"), &[&[1031]], 51)
            .tolerances(Tolerance::EXACT, Tolerance::EXACT)
            .run(
                |t| elementwise::dropout(&t[0], p, 1234),
                |_, g| Ok(vec![Some(elementwise::dropout(g, p, 1234)?)]),
                |v| reference::elementwise::dropout(v[0], threshold, f64::from(scale), 1234),
                |_, g| {
                    let mask_of_gradient =
                        reference::elementwise::dropout(g, threshold, f64::from(scale), 1234);
                    vec![Some(mask_of_gradient)]
                },
            );
    }
    let mut rng = Rng::new(51);
    let len = 100_003;
    let x = upload(vec![len], &rng.vec(len));
    for p in [0.0, 0.1, 0.5, 0.9] {
        let y = elementwise::dropout(&x, p, 1234).unwrap().to_vec().unwrap();
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f32 / len as f32;
        assert!((dropped - p).abs() < 0.01, "p = {p}: dropped {dropped}");
        // Same seed, same mask: the backward is dropout of the gradient with the seed.
        let again = elementwise::dropout(&x, p, 1234).unwrap().to_vec().unwrap();
        assert_eq!(y, again);
    }
    let other = elementwise::dropout(&x, 0.5, 99).unwrap().to_vec().unwrap();
    let first = elementwise::dropout(&x, 0.5, 1234)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_ne!(other, first, "different seeds give different masks");
    assert!(elementwise::dropout(&x, 1.0, 1).is_err());
}

#[test]
fn softmax_backwards_match_reference_and_finite_differences() {
    let mut rng = Rng::new(52);
    let forward = Tolerance {
        rtol: 1e-5,
        atol: 1e-6,
    };
    let backward = Tolerance {
        rtol: 1e-4,
        atol: 1e-5,
    };
    for dims in [vec![1, 5], vec![3, 10], vec![2, 1000], vec![4, 1]] {
        let cols = dims[1];
        // Scaled so that rows are far from uniform.
        let data: Vec<f32> = rng
            .vec(dims.iter().product())
            .iter()
            .map(|v| v * 5.0)
            .collect();
        let input = || vec![(dims.clone(), data.clone())];
        OpCheck::new(&format!("softmax {dims:?}"), input())
            .tolerances(forward, backward)
            .run(
                |x| softmax::softmax(&x[0]),
                |x, g| {
                    let y = softmax::softmax(&x[0])?;
                    Ok(vec![Some(softmax::softmax_backward(&y, g)?)])
                },
                |x| reference::softmax::softmax(x[0], cols),
                |x, g| {
                    let y = reference::softmax::softmax(x[0], cols);
                    vec![Some(reference::softmax::softmax_backward(&y, g, cols))]
                },
            );
        OpCheck::new(&format!("log_softmax {dims:?}"), input())
            .tolerances(forward, backward)
            .run(
                |x| softmax::log_softmax(&x[0]),
                |x, g| {
                    let y = softmax::log_softmax(&x[0])?;
                    Ok(vec![Some(softmax::log_softmax_backward(&y, g)?)])
                },
                |x| reference::softmax::log_softmax(x[0], cols),
                |x, g| {
                    let y = reference::softmax::log_softmax(x[0], cols);
                    vec![Some(reference::softmax::log_softmax_backward(&y, g, cols))]
                },
            );
    }
}

/// The loss and its gradient to the log-probabilities through `OpCheck` (the loss is linear in
/// them, so the reference's gradient is finite-differenced exactly), with and without class
/// weights, on log-probabilities of spread logits.
#[test]
fn nll_loss_matches_reference_with_and_without_class_weights() {
    let mut rng = Rng::new(53);
    for (batch, classes) in [(1, 2), (3, 10), (70, 1000), (5, 1)] {
        let logits: Vec<f32> = rng.vec(batch * classes).iter().map(|v| v * 4.0).collect();
        let log_probs = reference::softmax::log_softmax(&logits, classes);
        let targets: Vec<usize> = (0..batch).map(|_| rng.below(classes)).collect();
        let weights: Vec<f32> = rng.vec(classes).iter().map(|v| 0.5 + v.abs()).collect();
        for weighted in [false, true] {
            let class_weight = if weighted {
                weights.clone()
            } else {
                vec![1.0; classes]
            };
            let weight64: Vec<f64> = class_weight.iter().map(|&w| f64::from(w)).collect();
            let tw = upload(vec![classes], &class_weight);
            let class_weight_tensor = weighted.then_some(&tw);
            let input = vec![(vec![batch, classes], log_probs.clone())];
            OpCheck::new(
                &format!("nll_loss {batch}x{classes} weighted={weighted}"),
                input,
            )
            .output_shape(&[])
            .tolerances(
                Tolerance {
                    rtol: 1e-5,
                    atol: 1e-6,
                },
                Tolerance {
                    rtol: 1e-5,
                    atol: 1e-7,
                },
            )
            .run(
                |t| Ok(loss::nll_loss(&t[0], &targets, class_weight_tensor)?.loss),
                |t, g| {
                    let result = loss::nll_loss(&t[0], &targets, class_weight_tensor)?;
                    Ok(vec![Some(loss::nll_loss_backward(&t[0], &result, g)?)])
                },
                |v| vec![reference::loss::nll_loss(v[0], &targets, &weight64)],
                |_, g| {
                    let gradient = reference::loss::nll_loss_backward(&targets, &weight64, g[0]);
                    vec![Some(gradient)]
                },
            );
        }
    }
}

#[test]
fn nll_loss_refuses_bad_targets_and_shapes() {
    let lp = Tensor::zeros(gpu(), [2, 3]).unwrap();
    let error = loss::nll_loss(&lp, &[0, 3], None).unwrap_err().to_string();
    assert!(
        error.contains("target 3 of sample 1") && error.contains("3 classes"),
        "{error}"
    );
    assert!(loss::nll_loss(&lp, &[0], None).is_err());
    let weights = Tensor::zeros(gpu(), [4]).unwrap();
    assert!(loss::nll_loss(&lp, &[0, 1], Some(&weights)).is_err());
    let bias = Tensor::zeros(gpu(), [4]).unwrap();
    assert!(matches!(
        elementwise::add_row_bias(&lp, &bias),
        Err(Error::ShapeMismatch { .. })
    ));
}
