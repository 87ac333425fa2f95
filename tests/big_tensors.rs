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

/// `--check-finite`'s flag and gradient clipping on a gradient larger than one storage binding:
/// both work piece by piece, and clipping reads its sums back once.
#[test]
fn finite_checks_and_gradient_clipping_beyond_one_binding() {
    use gradlens::autograd::Tape;
    use gradlens::gpu::NonFinite;
    use gradlens::kernels::finite::check_finite;
    use gradlens::nn::{Forward, Linear, Mode, ParamStore};
    use gradlens::train::clip_grad_norm;

    let gpu = gpu();
    let (batch, inputs, outputs) = (2, 8200, 4100);
    assert!((inputs * outputs * 4) as u64 > gpu.limits().max_storage_buffer_binding_size);
    let mut rng = Rng::new(96);

    // A NaN in the first piece, in the last, or none.
    let len = inputs * outputs;
    for at in [Some(3), Some(len - 1), None] {
        let mut values = rng.vec(len);
        if let Some(at) = at {
            values[at] = f32::NAN;
        }
        let x = Tensor::from_slice(gpu, [outputs, inputs], &values).unwrap();
        gpu.start_finite_checks();
        {
            let _scope = gpu.scope("big");
            check_finite(&x, "gradient").unwrap();
        }
        let want = at.map(|_| NonFinite {
            layer: "big".to_string(),
            what: "gradient",
        });
        assert_eq!(
            pollster::block_on(gpu.finish_finite_checks()).unwrap(),
            want,
            "NaN at {at:?}"
        );
    }

    let mut store = ParamStore::new(gpu);
    let head = Linear::new(&mut store, "fc", inputs, outputs, None, 7).unwrap();
    let tape = Tape::new();
    let f = Forward::new(&tape, &store, Mode::Train);
    let x = tape.input(Tensor::from_slice(gpu, [batch, inputs], &rng.vec(batch * inputs)).unwrap());
    let logits = head.forward(&f, &x).unwrap();
    let loss = tape.cross_entropy(&logits, &[1, 4000], None).unwrap();
    let mut grads = tape.backward(&loss, None).unwrap();
    let weight_grad = grads.named("fc.weight").unwrap().to_vec().unwrap();
    let bias_grad = grads.named("fc.bias").unwrap().to_vec().unwrap();
    let norm = weight_grad
        .iter()
        .chain(&bias_grad)
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt() as f32;
    let reported = clip_grad_norm(&mut grads, norm / 2.0).unwrap();
    assert!(
        (reported - norm).abs() < 1e-5 * norm,
        "{reported} vs {norm}"
    );
    let clipped = grads.named("fc.weight").unwrap().to_vec().unwrap();
    let want: Vec<f32> = weight_grad.iter().map(|v| v * 0.5).collect();
    assert_close("fc.weight's clipped gradient", &clipped, &want, 1e-5, 1e-9);
}
