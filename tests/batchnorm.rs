//! shaders/batchnorm.wgsl against the CPU reference, whose backward is checked against finite
//! differences (`OpCheck`), in training and eval mode.

mod common;

use common::op_check::{OpCheck, Tolerance};
use common::{Rng, assert_close, gpu};
use gradlens::kernels::batchnorm::{self, Epilogue};
use gradlens::reference::batchnorm::{self as reference, Geometry};
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

/// Training mode: the batch's statistics, then the normalisation, forward and the three
/// gradients through `OpCheck` (the statistics move with the input in the reference too);
/// the statistics and the running averages' update against the reference.
#[test]
fn training_mode_matches_reference() {
    let mut rng = Rng::new(40);
    let eps = 1e-5;
    for &dims in SHAPES {
        let g = geometry(dims);
        let c = dims[1];
        // An offset and a scale so the statistics are far from 0 and 1.
        let data: Vec<f32> = rng
            .vec(dims.iter().product())
            .iter()
            .map(|v| 3.0 + 2.0 * v)
            .collect();
        let weight: Vec<f32> = rng.vec(c).iter().map(|v| 1.0 + 0.5 * v).collect();
        let bias = rng.vec(c);
        let sums = Tolerance {
            rtol: 1e-4,
            atol: 1e-5 * (g.batch * g.plane) as f32,
        };
        let inputs = vec![
            (dims.to_vec(), data.clone()),
            (vec![c], weight),
            (vec![c], bias),
        ];
        OpCheck::new(&format!("batch_norm training {dims:?}"), inputs)
            .tolerances(Tolerance::relative(1e-4), Tolerance::relative(1e-4))
            .backward_tolerance_for(
                0,
                Tolerance {
                    rtol: 1e-3,
                    atol: 1e-4,
                },
            )
            .backward_tolerance_for(1, sums)
            .backward_tolerance_for(2, sums)
            .run(
                |t| {
                    let stats = batchnorm::batch_norm_statistics(&t[0])?;
                    batchnorm::batch_norm_forward(
                        &t[0],
                        &stats.mean,
                        &stats.variance,
                        &t[1],
                        &t[2],
                        eps,
                        Epilogue::default(),
                    )
                },
                |t, dy| {
                    let stats = batchnorm::batch_norm_statistics(&t[0])?;
                    let (mean, variance) = (&stats.mean, &stats.variance);
                    let grads = batchnorm::batch_norm_backward(
                        &t[0], dy, mean, variance, &t[1], eps, true,
                    )?;
                    Ok(vec![
                        Some(grads.grad_input),
                        Some(grads.grad_weight),
                        Some(grads.grad_bias),
                    ])
                },
                |v| reference::forward_training(v[0], g, v[1], v[2], eps as f64),
                |v, dy| {
                    let (mean, variance) = reference::statistics(v[0], g);
                    let (gi, gw, gb) =
                        reference::backward(v[0], dy, g, &mean, &variance, v[1], eps as f64, true);
                    vec![Some(gi), Some(gw), Some(gb)]
                },
            );

        let x = upload(dims.to_vec(), &data);
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

        let running_mean = upload(vec![c], &vec![0.0; c]);
        let running_var = upload(vec![c], &vec![1.0; c]);
        batchnorm::batch_norm_update_running(&x, &stats, &running_mean, &running_var, 0.1).unwrap();
        let ones = vec![1.0; c];
        let (want_mean, want_var) = reference::update_running(
            (&vec![0.0; c], &ones),
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

/// Eval mode: fixed running statistics, forward and the three gradients through `OpCheck`,
/// and the input-only backward (saliency: no parameter wants a gradient) against the same
/// reference.
#[test]
fn eval_mode_matches_reference_and_is_differentiable_in_the_input() {
    let mut rng = Rng::new(41);
    let eps = 1e-3; // GoogLeNet's and Inception v3's BasicConv2d
    for &dims in SHAPES {
        let g = geometry(dims);
        let c = dims[1];
        let data = rng.vec(dims.iter().product());
        let running_mean = rng.vec(c);
        let running_var: Vec<f32> = rng.vec(c).iter().map(|v| 0.5 + v.abs()).collect();
        let (m, v) = (
            upload(vec![c], &running_mean),
            upload(vec![c], &running_var),
        );
        let to64 = |values: &[f32]| values.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        let (mean64, var64) = (to64(&running_mean), to64(&running_var));
        let sums = Tolerance {
            rtol: 1e-4,
            atol: 1e-5 * (g.batch * g.plane) as f32,
        };
        let weight = rng.vec(c);
        let inputs = vec![
            (dims.to_vec(), data.clone()),
            (vec![c], weight.clone()),
            (vec![c], rng.vec(c)),
        ];
        OpCheck::new(&format!("batch_norm eval {dims:?}"), inputs)
            .tolerances(
                Tolerance::relative(1e-5),
                Tolerance {
                    rtol: 1e-5,
                    atol: 1e-6,
                },
            )
            .backward_tolerance_for(1, sums)
            .backward_tolerance_for(2, sums)
            .run(
                |t| {
                    batchnorm::batch_norm_forward(
                        &t[0],
                        &m,
                        &v,
                        &t[1],
                        &t[2],
                        eps,
                        Epilogue::default(),
                    )
                },
                |t, dy| {
                    let grads =
                        batchnorm::batch_norm_backward(&t[0], dy, &m, &v, &t[1], eps, false)?;
                    Ok(vec![
                        Some(grads.grad_input),
                        Some(grads.grad_weight),
                        Some(grads.grad_bias),
                    ])
                },
                |x| reference::forward(x[0], g, &mean64, &var64, x[1], x[2], f64::from(eps)),
                |x, dy| {
                    let (gi, gw, gb) = reference::backward(
                        x[0],
                        dy,
                        g,
                        &mean64,
                        &var64,
                        x[1],
                        f64::from(eps),
                        false,
                    );
                    vec![Some(gi), Some(gw), Some(gb)]
                },
            );

        let grad = rng.vec(data.len());
        let dy = upload(dims.to_vec(), &grad);
        let w = upload(vec![c], &weight);
        let input_only = batchnorm::batch_norm_backward_input(&dy, &m, &v, &w, eps).unwrap();
        let want = reference::backward(
            &data,
            &grad,
            g,
            &running_mean,
            &running_var,
            &weight,
            eps,
            false,
        )
        .0;
        assert_close(
            &format!("eval grad_input alone {dims:?}"),
            &input_only.to_vec().unwrap(),
            &want,
            1e-5,
            1e-6,
        );
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
    let error =
        batchnorm::batch_norm_forward(&x, &three, &three, &four, &three, 1e-5, Epilogue::default())
            .unwrap_err();
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

/// The eval-mode norm of channels 0..C of a wider tensor (a DenseNet block buffer), read in
/// place, equals the reference norm of those channels copied out (plane of 15 values: the
/// scalar entry; of 16: the vec4 one); its backward through the ReLU written per part equals
/// the whole backward split (plain and guided). Then the refusals.
#[test]
fn a_norm_of_channels_in_place_and_its_backward_in_parts_match_the_whole() {
    use batchnorm::{EvalBatchNorm, ReluBackward};
    let mut rng = Rng::new(43);
    let eps = 1e-5;
    for dims in [[2, 7, 3, 5], [3, 6, 4, 4]] {
        let [n, c, h, w] = dims;
        let wide_dims = [n, c + 3, h, w];
        let wide = rng.vec(wide_dims.iter().product());
        let plane = h * w;
        // The first c channels of each sample, copied out.
        let prefix: Vec<f32> = (0..n)
            .flat_map(|s| wide[s * (c + 3) * plane..][..c * plane].to_vec())
            .collect();
        let [mean, weight, bias] = [0; 3].map(|_| rng.vec(c));
        let variance: Vec<f32> = rng.vec(c).iter().map(|v| 0.5 + v.abs()).collect();
        let tensors = [&mean, &variance, &weight, &bias].map(|v| upload(vec![c], v));
        let bn = EvalBatchNorm {
            mean: &tensors[0],
            variance: &tensors[1],
            weight: &tensors[2],
            bias: &tensors[3],
            eps,
        };
        let relu = Epilogue {
            residual: None,
            relu: true,
        };
        let wide_t = upload(wide_dims.to_vec(), &wide);
        let y = bn.forward_prefix(&wide_t, c, relu).unwrap();
        assert_eq!(y.dims(), dims);
        let to64 = |values: &[f32]| values.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        let want: Vec<f32> = reference::forward(
            &to64(&prefix),
            geometry(dims),
            &to64(&mean),
            &to64(&variance),
            &to64(&weight),
            &to64(&bias),
            f64::from(eps),
        )
        .iter()
        .map(|&v| v.max(0.0) as f32)
        .collect();
        let got = y.to_vec().unwrap();
        assert_close(&format!("prefix {dims:?}"), &got, &want, 1e-5, 1e-6);
        assert!(got.contains(&0.0) && got.iter().any(|&v| v > 0.0));

        let grad = upload(dims.to_vec(), &rng.vec(dims.iter().product()));
        let stats = [&tensors[0], &tensors[1], &tensors[2]];
        for guided in [false, true] {
            let relu = ReluBackward { output: &y, guided };
            let parts = [2, c - 2];
            let got = batchnorm::batch_norm_backward_input_through_relu_parts(
                &grad, relu, stats, eps, &parts,
            )
            .unwrap();
            let (whole, _) = batchnorm::batch_norm_backward_input_through_relu(
                &grad, None, relu, false, stats, eps,
            )
            .unwrap();
            let whole = whole.to_vec().unwrap();
            let mut first = 0;
            for (part, &count) in got.iter().zip(&parts) {
                assert_eq!(part.dims(), [n, count, h, w]);
                let want: Vec<f32> = (0..n)
                    .flat_map(|s| whole[(s * c + first) * plane..][..count * plane].to_vec())
                    .collect();
                let what = format!(
                    "{dims:?} guided {guided}: channels {first}..{}",
                    first + count
                );
                assert_close(&what, &part.to_vec().unwrap(), &want, 1e-6, 1e-7);
                first += count;
            }
        }

        let refused = bn.forward_prefix(&wide_t, c + 4, relu).unwrap_err();
        assert!(refused.to_string().contains("of a"), "{refused}");
        let relu = ReluBackward {
            output: &y,
            guided: false,
        };
        let refused = batchnorm::batch_norm_backward_input_through_relu_parts(
            &grad,
            relu,
            stats,
            eps,
            &[1, 1],
        )
        .unwrap_err();
        assert!(refused.to_string().contains("do not add up"), "{refused}");
    }
}
