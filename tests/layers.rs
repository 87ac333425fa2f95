//! Linear, bias, dropout, softmax backward and NLL loss against the CPU reference, and the
//! references' backward passes against finite differences.

mod common;

use common::op_check::{OpCheck, Tolerance};
use common::{Rng, assert_close, gpu};
use gradlens::kernels::{elementwise, linear, loss, softmax};
use gradlens::reference::{self, gradcheck};
use gradlens::{Error, Tensor};

fn upload(dims: Vec<usize>, data: &[f32]) -> Tensor {
    Tensor::from_slice(gpu(), dims, data).unwrap()
}

#[test]
fn linear_forward_and_backward_match_reference() {
    let mut rng = Rng::new(50);
    for (batch, inputs, outputs) in [(1, 7, 3), (3, 64, 10), (5, 33, 17), (2, 1, 1)] {
        let x = rng.vec(batch * inputs);
        let w = rng.vec(outputs * inputs);
        let b = rng.vec(outputs);
        let (tx, tw, tb) = (
            upload(vec![batch, inputs], &x),
            upload(vec![outputs, inputs], &w),
            upload(vec![outputs], &b),
        );
        let y = linear::linear(&tx, &tw, Some(&tb)).unwrap();
        let xw = reference::matmul::matmul(&x, &w, 1, batch, outputs, inputs, false, true, 0, 0);
        let want = reference::elementwise::add_row_bias(&xw, &b);
        let what = format!("linear {batch}x{inputs}->{outputs}");
        assert_close(&what, &y.to_vec().unwrap(), &want, 1e-5, 1e-5);

        let g = rng.vec(batch * outputs);
        let grads =
            linear::linear_backward(&tx, &tw, &upload(vec![batch, outputs], &g), true).unwrap();
        let want_dx =
            reference::matmul::matmul(&g, &w, 1, batch, inputs, outputs, false, false, 0, 0);
        let want_dw =
            reference::matmul::matmul(&g, &x, 1, outputs, inputs, batch, true, false, 0, 0);
        let want_db = reference::reduce::sum(&g, &[batch, outputs], &[0]);
        assert_close(
            &format!("{what} dx"),
            &grads.grad_input.to_vec().unwrap(),
            &want_dx,
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("{what} dW"),
            &grads.grad_weight.to_vec().unwrap(),
            &want_dw,
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("{what} db"),
            &grads.grad_bias.unwrap().to_vec().unwrap(),
            &want_db,
            1e-5,
            1e-5,
        );
    }
    let x = Tensor::zeros(gpu(), [2, 3]).unwrap();
    let w = Tensor::zeros(gpu(), [4, 5]).unwrap();
    assert!(matches!(
        linear::linear(&x, &w, None),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn dropout_matches_reference_keeps_the_right_share_and_repeats_its_mask() {
    let mut rng = Rng::new(51);
    let len = 100_003;
    let data = rng.vec(len);
    let x = upload(vec![len], &data);
    for p in [0.0, 0.1, 0.5, 0.9] {
        let y = elementwise::dropout(&x, p, 1234).unwrap().to_vec().unwrap();
        let scale = 1.0 / (1.0 - p);
        let want =
            reference::elementwise::dropout(&data, elementwise::dropout_threshold(p), scale, 1234);
        assert_close(&format!("dropout p={p}"), &y, &want, 1e-6, 0.0);
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

#[test]
fn nll_loss_matches_reference_with_and_without_class_weights() {
    let mut rng = Rng::new(53);
    for (batch, classes) in [(1, 2), (3, 10), (70, 1000), (5, 1)] {
        let logits: Vec<f32> = rng.vec(batch * classes).iter().map(|v| v * 4.0).collect();
        let targets: Vec<usize> = (0..batch).map(|_| rng.below(classes)).collect();
        let weights: Vec<f32> = rng.vec(classes).iter().map(|v| 0.5 + v.abs()).collect();
        let log_probs = softmax::log_softmax(&upload(vec![batch, classes], &logits)).unwrap();
        let lp = log_probs.to_vec().unwrap();
        for weighted in [false, true] {
            let class_weight = if weighted {
                weights.clone()
            } else {
                vec![1.0; classes]
            };
            let tw = upload(vec![classes], &class_weight);
            let result = loss::nll_loss(&log_probs, &targets, weighted.then_some(&tw)).unwrap();
            let what = format!("nll_loss {batch}x{classes} weighted={weighted}");
            assert_eq!(result.loss.dims(), &[] as &[usize]);
            let want = reference::loss::nll_loss(&lp, &targets, &class_weight);
            assert_close(&what, &result.loss.to_vec().unwrap(), &[want], 1e-5, 1e-6);

            let one = Tensor::full(gpu(), Vec::<usize>::new(), 2.0).unwrap();
            let grad = loss::nll_loss_backward(&log_probs, &result, &one).unwrap();
            let want = reference::loss::nll_loss_backward(&targets, &class_weight, 2.0);
            assert_close(
                &format!("{what} backward"),
                &grad.to_vec().unwrap(),
                &want,
                1e-5,
                1e-7,
            );

            // Finite differences of the reference, in f64, through log_softmax (cross-entropy).
            if batch * classes <= 40 {
                let x64: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
                let w64: Vec<f64> = class_weight.iter().map(|&v| f64::from(v)).collect();
                gradcheck::check(
                    &x64,
                    &[1.0],
                    |x| {
                        vec![reference::loss::nll_loss(
                            &reference::softmax::log_softmax(x, classes),
                            &targets,
                            &w64,
                        )]
                    },
                    |x, g| {
                        let dlp = reference::loss::nll_loss_backward(&targets, &w64, g[0]);
                        reference::softmax::log_softmax_backward(
                            &reference::softmax::log_softmax(x, classes),
                            &dlp,
                            classes,
                        )
                    },
                    1e-6,
                    1e-6,
                )
                .unwrap_or_else(|e| panic!("{what} gradcheck: {e}"));
            }
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
