//! shaders/batchnorm.wgsl against the CPU reference, and the reference's backward against
//! finite differences, in training and eval mode.

mod common;

use common::{Rng, assert_close, gpu};
use gradlens::kernels::batchnorm;
use gradlens::reference::batchnorm::{self as reference, Geometry};
use gradlens::reference::gradcheck;
use gradlens::{Error, Tensor};

/// Batch 1 and 3, channel counts not multiples of 4, odd planes, one long reduction; channels
/// of 200 and 512 values (the per-channel reductions' 64- and 128-wide workgroups), and a
/// tensor of two values (smaller than one vec4).
const SHAPES: &[[usize; 4]] = &[
    [1, 3, 5, 7],
    [3, 5, 4, 4],
    [2, 64, 7, 7],
    [1, 2, 1, 2],
    [4, 3, 31, 33],
    [2, 6, 10, 10],
    [2, 4, 16, 16],
    [2, 1, 1, 1],
];

fn geometry(dims: [usize; 4]) -> Geometry {
    Geometry {
        batch: dims[0],
        channels: dims[1],
        plane: dims[2] * dims[3],
    }
}

fn upload(dims: Vec<usize>, data: &[f32]) -> Tensor {
    Tensor::from_slice(gpu(), dims, data).unwrap()
}

#[test]
fn training_mode_matches_reference() {
    let mut rng = Rng::new(40);
    for &dims in SHAPES {
        let g = geometry(dims);
        // An offset and a scale so the statistics are far from 0 and 1.
        let data: Vec<f32> = rng
            .vec(dims.iter().product())
            .iter()
            .map(|v| 3.0 + 2.0 * v)
            .collect();
        let weight: Vec<f32> = rng.vec(dims[1]).iter().map(|v| 1.0 + 0.5 * v).collect();
        let bias = rng.vec(dims[1]);
        let (x, w, b) = (
            upload(dims.to_vec(), &data),
            upload(vec![dims[1]], &weight),
            upload(vec![dims[1]], &bias),
        );
        let eps = 1e-5;

        let stats = batchnorm::batch_norm_statistics(&x).unwrap();
        let (mean, variance) = reference::statistics(&data, g);
        assert_close(
            &format!("mean {dims:?}"),
            &stats.mean.to_vec().unwrap(),
            &mean,
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("variance {dims:?}"),
            &stats.variance.to_vec().unwrap(),
            &variance,
            1e-4,
            1e-5,
        );

        let y =
            batchnorm::batch_norm_forward(&x, &stats.mean, &stats.variance, &w, &b, eps).unwrap();
        let want = reference::forward(&data, g, &mean, &variance, &weight, &bias, eps);
        assert_close(
            &format!("forward {dims:?}"),
            &y.to_vec().unwrap(),
            &want,
            1e-4,
            1e-4,
        );

        let grad = rng.vec(x.numel());
        let dy = upload(dims.to_vec(), &grad);
        let grads =
            batchnorm::batch_norm_backward(&x, &dy, &stats.mean, &stats.variance, &w, eps, true)
                .unwrap();
        let (gi, gw, gb) =
            reference::backward(&data, &grad, g, &mean, &variance, &weight, eps, true);
        let sum_tol = 1e-5 * g.batch as f32 * g.plane as f32;
        assert_close(
            &format!("grad_bias {dims:?}"),
            &grads.grad_bias.to_vec().unwrap(),
            &gb,
            1e-4,
            sum_tol,
        );
        assert_close(
            &format!("grad_weight {dims:?}"),
            &grads.grad_weight.to_vec().unwrap(),
            &gw,
            1e-4,
            sum_tol,
        );
        assert_close(
            &format!("grad_input {dims:?}"),
            &grads.grad_input.to_vec().unwrap(),
            &gi,
            1e-3,
            1e-4,
        );

        let running_mean = upload(vec![dims[1]], &vec![0.0; dims[1]]);
        let running_var = upload(vec![dims[1]], &vec![1.0; dims[1]]);
        batchnorm::batch_norm_update_running(&x, &stats, &running_mean, &running_var, 0.1).unwrap();
        let ones = vec![1.0; dims[1]];
        let (want_mean, want_var) = reference::update_running(
            (&vec![0.0; dims[1]], &ones),
            (&mean, &variance),
            g.batch * g.plane,
            0.1,
        );
        assert_close(
            "running_mean",
            &running_mean.to_vec().unwrap(),
            &want_mean,
            1e-5,
            1e-6,
        );
        assert_close(
            "running_var",
            &running_var.to_vec().unwrap(),
            &want_var,
            1e-4,
            1e-6,
        );
    }
}

#[test]
fn eval_mode_matches_reference_and_is_differentiable_in_the_input() {
    let mut rng = Rng::new(41);
    for &dims in SHAPES {
        let g = geometry(dims);
        let c = dims[1];
        let data = rng.vec(dims.iter().product());
        let running_mean = rng.vec(c);
        let running_var: Vec<f32> = rng.vec(c).iter().map(|v| 0.5 + v.abs()).collect();
        let weight = rng.vec(c);
        let bias = rng.vec(c);
        let eps = 1e-3; // GoogLeNet's and Inception v3's BasicConv2d
        let x = upload(dims.to_vec(), &data);
        let (m, v, w, b) = (
            upload(vec![c], &running_mean),
            upload(vec![c], &running_var),
            upload(vec![c], &weight),
            upload(vec![c], &bias),
        );
        let y = batchnorm::batch_norm_forward(&x, &m, &v, &w, &b, eps).unwrap();
        let want = reference::forward(&data, g, &running_mean, &running_var, &weight, &bias, eps);
        assert_close(
            &format!("eval forward {dims:?}"),
            &y.to_vec().unwrap(),
            &want,
            1e-5,
            1e-5,
        );

        let grad = rng.vec(x.numel());
        let dy = upload(dims.to_vec(), &grad);
        let grads = batchnorm::batch_norm_backward(&x, &dy, &m, &v, &w, eps, false).unwrap();
        let (gi, gw, gb) = reference::backward(
            &data,
            &grad,
            g,
            &running_mean,
            &running_var,
            &weight,
            eps,
            false,
        );
        let sum_tol = 1e-5 * g.batch as f32 * g.plane as f32;
        assert_close(
            &format!("eval grad_input {dims:?}"),
            &grads.grad_input.to_vec().unwrap(),
            &gi,
            1e-5,
            1e-6,
        );
        // The input-only backward (saliency: no parameter wants a gradient).
        let input_only = batchnorm::batch_norm_backward_input(&dy, &m, &v, &w, eps).unwrap();
        assert_close(
            &format!("eval grad_input alone {dims:?}"),
            &input_only.to_vec().unwrap(),
            &gi,
            1e-5,
            1e-6,
        );
        assert_close(
            &format!("eval grad_weight {dims:?}"),
            &grads.grad_weight.to_vec().unwrap(),
            &gw,
            1e-4,
            sum_tol,
        );
        assert_close(
            &format!("eval grad_bias {dims:?}"),
            &grads.grad_bias.to_vec().unwrap(),
            &gb,
            1e-4,
            sum_tol,
        );
    }
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(42);
    for &dims in &SHAPES[..2] {
        let g = geometry(dims);
        let c = dims[1];
        let to64 = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
        let x = to64(rng.vec(dims.iter().product()));
        let weight = to64(rng.vec(c));
        let bias = to64(rng.vec(c));
        let grad = to64(rng.vec(x.len()));
        let eps = 1e-5;
        let (mean, variance) = reference::statistics(&x, g);
        // Training mode, with respect to the input (the statistics move with it) ...
        gradcheck::check(
            &x,
            &grad,
            |x| reference::forward_training(x, g, &weight, &bias, eps),
            |x, dy| {
                let (m, v) = reference::statistics(x, g);
                reference::backward(x, dy, g, &m, &v, &weight, eps, true).0
            },
            1e-6,
            1e-6,
        )
        .unwrap_or_else(|e| panic!("training grad_input {dims:?}: {e}"));
        // ... the weight and the bias ...
        gradcheck::check(
            &weight,
            &grad,
            |w| reference::forward_training(&x, g, w, &bias, eps),
            |w, dy| reference::backward(&x, dy, g, &mean, &variance, w, eps, true).1,
            1e-6,
            1e-6,
        )
        .unwrap_or_else(|e| panic!("grad_weight {dims:?}: {e}"));
        gradcheck::check(
            &bias,
            &grad,
            |b| reference::forward_training(&x, g, &weight, b, eps),
            |_, dy| reference::backward(&x, dy, g, &mean, &variance, &weight, eps, true).2,
            1e-6,
            1e-6,
        )
        .unwrap_or_else(|e| panic!("grad_bias {dims:?}: {e}"));
        // ... and eval mode with fixed statistics.
        gradcheck::check(
            &x,
            &grad,
            |x| reference::forward(x, g, &mean, &variance, &weight, &bias, eps),
            |x, dy| reference::backward(x, dy, g, &mean, &variance, &weight, eps, false).0,
            1e-6,
            1e-6,
        )
        .unwrap_or_else(|e| panic!("eval grad_input {dims:?}: {e}"));
    }
}

#[test]
fn bad_arguments_are_refused_before_dispatch() {
    let single = Tensor::zeros(gpu(), [1, 4, 1, 1]).unwrap();
    let error = batchnorm::batch_norm_statistics(&single)
        .unwrap_err()
        .to_string();
    assert!(error.contains("more than one value per channel"), "{error}");

    let x = Tensor::zeros(gpu(), [2, 3, 4, 4]).unwrap();
    let three = Tensor::zeros(gpu(), [3]).unwrap();
    let four = Tensor::zeros(gpu(), [4]).unwrap();
    let error = batchnorm::batch_norm_forward(&x, &three, &three, &four, &three, 1e-5).unwrap_err();
    assert!(
        error.to_string().contains("weight must have shape [3]"),
        "{error}"
    );
    let flat = Tensor::zeros(gpu(), [6, 3]).unwrap();
    assert!(batchnorm::batch_norm_statistics(&flat).is_err());
    let wrong_grad = Tensor::zeros(gpu(), [2, 3, 4, 5]).unwrap();
    let error = batchnorm::batch_norm_backward(&x, &wrong_grad, &three, &three, &three, 1e-5, true)
        .unwrap_err();
    assert!(matches!(error, Error::ShapeMismatch { .. }), "{error}");
}
