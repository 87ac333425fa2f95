//! Tensors larger than one storage binding (lavapipe allows 128 MiB; VGG's classifier.0.weight
//! is 411 MB): linear layers and optimiser steps on them work through row views and agree with
//! the reference. A binary of its own to keep its half gigabyte apart from the other tests.

mod common;

use common::{Rng, assert_close, gpu};
use gradlens::Tensor;
use gradlens::kernels::linear::{linear, linear_backward};
use gradlens::kernels::optim::{SgdStep, sgd_step};
use gradlens::reference::matmul::matmul as reference_matmul;

#[test]
fn linear_and_sgd_on_a_weight_beyond_one_binding() {
    let (batch, inputs, outputs) = (3, 8200, 4100);
    let bytes = (inputs * outputs * 4) as u64;
    assert!(
        bytes > 128 << 20,
        "the weight must exceed lavapipe's binding limit"
    );
    let mut rng = Rng::new(95);
    let x = rng.vec(batch * inputs);
    let w = rng.vec(outputs * inputs);
    let g = rng.vec(batch * outputs);
    let tx = Tensor::from_slice(gpu(), [batch, inputs], &x).unwrap();
    let tw = Tensor::from_slice(gpu(), [outputs, inputs], &w).unwrap();
    let tg = Tensor::from_slice(gpu(), [batch, outputs], &g).unwrap();
    let tolerance = 1e-5 * (inputs as f32).sqrt() * 4.0;

    let y = linear(&tx, &tw, None).unwrap().to_vec().unwrap();
    assert_close(
        "y",
        &y,
        &reference_matmul(&x, &w, 1, batch, outputs, inputs, false, true, 0, 0),
        1e-5,
        tolerance,
    );

    let grads = linear_backward(&tx, &tw, &tg, false).unwrap();
    let dx = grads.grad_input.to_vec().unwrap();
    assert_close(
        "dx",
        &dx,
        &reference_matmul(&g, &w, 1, batch, inputs, outputs, false, false, 0, 0),
        1e-5,
        tolerance,
    );
    // The input's gradient alone (saliency's), over the same row blocks.
    let dx_only = gradlens::kernels::linear::linear_backward_input(&tw, &tg).unwrap();
    assert_close("dx alone", &dx_only.to_vec().unwrap(), &dx, 1e-6, 1e-7);
    let dw = grads.grad_weight.to_vec().unwrap();
    assert_close(
        "dW",
        &dw,
        &reference_matmul(&g, &x, 1, outputs, inputs, batch, true, false, 0, 0),
        1e-5,
        1e-5,
    );

    let step = SgdStep {
        lr: 0.5,
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
        first_step: true,
    };
    sgd_step(&tw, &grads.grad_weight, None, &step).unwrap();
    let updated = tw.to_vec().unwrap();
    let want: Vec<f32> = w.iter().zip(&dw).map(|(w, d)| w - 0.5 * d).collect();
    assert_close("W after SGD", &updated, &want, 1e-6, 1e-6);
}
