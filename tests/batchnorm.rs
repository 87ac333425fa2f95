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

/// Channels `range` of every sample of `values` [N, C, plane], copied out sample after sample.
fn channels_of<T: Copy>(
    values: &[T],
    [n, channels, plane]: [usize; 3],
    range: std::ops::Range<usize>,
) -> Vec<T> {
    (0..n)
        .flat_map(|s| {
            &values[(s * channels + range.start) * plane..(s * channels + range.end) * plane]
        })
        .copied()
        .collect()
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
/// the whole backward split (plain and guided), the second part's gradient so far added to
/// its own. Then the refusals.
#[test]
fn a_norm_of_channels_in_place_and_its_backward_in_parts_match_the_whole() {
    use batchnorm::{EvalBatchNorm, Part, ReluBackward};
    let mut rng = Rng::new(43);
    let eps = 1e-5;
    for dims in [[2, 7, 3, 5], [3, 6, 4, 4]] {
        let [n, c, h, w] = dims;
        let wide_dims = [n, c + 3, h, w];
        let wide = rng.vec(wide_dims.iter().product());
        let plane = h * w;
        // The first c channels of each sample, copied out.
        let prefix = channels_of(&wide, [n, c + 3, plane], 0..c);
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
        let so_far = rng.vec(n * (c - 2) * plane);
        let so_far_t = upload(vec![n, c - 2, h, w], &so_far);
        let stats = [&tensors[0], &tensors[1], &tensors[2]];
        let counts = [2, c - 2];
        let parts = [
            Part {
                channels: counts[0],
                so_far: None,
            },
            Part {
                channels: counts[1],
                so_far: Some(&so_far_t),
            },
        ];
        for guided in [false, true] {
            let relu = ReluBackward { output: &y, guided };
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
            for (k, (part, &count)) in got.iter().zip(&counts).enumerate() {
                assert_eq!(part.dims(), [n, count, h, w]);
                let mut want = channels_of(&whole, [n, c, plane], first..first + count);
                if k == 1 {
                    want.iter_mut().zip(&so_far).for_each(|(w, s)| *w += s);
                }
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
        let part = |channels, so_far| Part { channels, so_far };
        let refused = batchnorm::batch_norm_backward_input_through_relu_parts(
            &grad,
            relu,
            stats,
            eps,
            &[part(1, None), part(1, None)],
        )
        .unwrap_err();
        assert!(refused.to_string().contains("do not add up"), "{refused}");
        let misplaced = [part(2, Some(&so_far_t)), part(c - 2, None)];
        let refused = batchnorm::batch_norm_backward_input_through_relu_parts(
            &grad, relu, stats, eps, &misplaced,
        )
        .unwrap_err();
        assert!(matches!(refused, Error::ShapeMismatch { .. }), "{refused}");
    }
}

/// Training mode over channels 0..C of a wider tensor (a DenseNet block buffer), read in
/// place: the batch statistics and the running averages' update equal the reference's of
/// those channels copied out; the backward taken through the forward's ReLU (plain and
/// guided, with batch and with constant statistics), the input's gradient written per part
/// (one with a gradient so far, which it must include), equals the reference backward of the
/// masked gradient; and the whole-tensor backward through the ReLU also returns that masked
/// gradient (a residual's). Planes of 15 values (the scalar entries) and 16 (the vec4 ones).
/// Then the refusals.
#[test]
fn a_training_norm_of_channels_in_place_and_its_backward_through_relu_match_the_reference() {
    use batchnorm::{EvalBatchNorm, Part, ReluBackward};
    let mut rng = Rng::new(45);
    let eps = 1e-5;
    for dims in [[2, 7, 3, 5], [3, 6, 4, 4]] {
        let [n, c, h, w] = dims;
        let g = geometry(dims);
        let plane = h * w;
        let wide_dims = [n, c + 3, h, w];
        let wide: Vec<f32> = rng
            .vec(wide_dims.iter().product())
            .iter()
            .map(|v| 1.0 + 2.0 * v)
            .collect();
        let prefix = channels_of(&wide, [n, c + 3, plane], 0..c);
        let to64 = |values: &[f32]| values.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        let to32 = |values: &[f64]| values.iter().map(|&x| x as f32).collect::<Vec<_>>();
        let wide_t = upload(wide_dims.to_vec(), &wide);

        let stats = batchnorm::batch_norm_statistics_of_prefix(&wide_t, c).unwrap();
        let (mean, variance) = reference::statistics(&to64(&prefix), g);
        let got_mean = stats.mean.to_vec().unwrap();
        let got_variance = stats.variance.to_vec().unwrap();
        assert_close(
            &format!("mean {dims:?}"),
            &got_mean,
            &to32(&mean),
            1e-5,
            1e-6,
        );
        assert_close(
            &format!("variance {dims:?}"),
            &got_variance,
            &to32(&variance),
            1e-4,
            1e-6,
        );
        let running_mean = upload(vec![c], &vec![0.5; c]);
        let running_var = upload(vec![c], &vec![2.0; c]);
        batchnorm::batch_norm_update_running_of_prefix(
            &wide_t,
            c,
            &stats,
            &running_mean,
            &running_var,
            0.1,
        )
        .unwrap();
        let (want_mean, want_var) = reference::update_running(
            (&vec![0.5; c], &vec![2.0; c]),
            (&mean, &variance),
            g.batch * g.plane,
            0.1,
        );
        let got = running_mean.to_vec().unwrap();
        assert_close(
            "running_mean of the prefix",
            &got,
            &to32(&want_mean),
            1e-5,
            1e-6,
        );
        let got = running_var.to_vec().unwrap();
        assert_close(
            "running_var of the prefix",
            &got,
            &to32(&want_var),
            1e-4,
            1e-6,
        );

        let [weight, bias] = [0; 2].map(|_| rng.vec(c));
        let [weight_t, bias_t] = [&weight, &bias].map(|v| upload(vec![c], v));
        let running = (
            to64(&running_mean.to_vec().unwrap()),
            to64(&running_var.to_vec().unwrap()),
        );
        let grad = rng.vec(dims.iter().product());
        let grad_t = upload(dims.to_vec(), &grad);
        let so_far = rng.vec(n * (c - 2) * plane);
        let so_far_t = upload(vec![n, c - 2, h, w], &so_far);
        for training in [true, false] {
            let (mean_t, variance_t) = match training {
                true => (stats.mean.clone(), stats.variance.clone()),
                false => (running_mean.clone(), running_var.clone()),
            };
            let (mean, variance) = match training {
                true => (mean.clone(), variance.clone()),
                false => running.clone(),
            };
            let bn = EvalBatchNorm {
                mean: &mean_t,
                variance: &variance_t,
                weight: &weight_t,
                bias: &bias_t,
                eps,
            };
            let relu = Epilogue {
                residual: None,
                relu: true,
            };
            let y = bn.forward_prefix(&wide_t, c, relu).unwrap();
            let normalised = reference::forward(
                &to64(&prefix),
                g,
                &mean,
                &variance,
                &to64(&weight),
                &to64(&bias),
                f64::from(eps),
            );
            let want_y: Vec<f32> = normalised.iter().map(|&v| v.max(0.0) as f32).collect();
            let got_y = y.to_vec().unwrap();
            assert_close(&format!("{dims:?} forward"), &got_y, &want_y, 1e-5, 1e-6);
            assert!(got_y.contains(&0.0) && got_y.iter().any(|&v| v > 0.0));

            let statistics = [&mean_t, &variance_t, &weight_t];
            for guided in [false, true] {
                let masked: Vec<f64> = grad
                    .iter()
                    .zip(&want_y)
                    .map(|(&dy, &y)| match y > 0.0 && (!guided || dy > 0.0) {
                        true => f64::from(dy),
                        false => 0.0,
                    })
                    .collect();
                let (want_input, want_weight, want_bias) = reference::backward(
                    &to64(&prefix),
                    &masked,
                    g,
                    &mean,
                    &variance,
                    &to64(&weight),
                    f64::from(eps),
                    training,
                );
                let what = format!("{dims:?} training {training} guided {guided}");
                let relu = ReluBackward { output: &y, guided };
                // The second part has received a gradient already, which its own includes.
                let counts = [2, c - 2];
                let parts = [
                    Part {
                        channels: counts[0],
                        so_far: None,
                    },
                    Part {
                        channels: counts[1],
                        so_far: Some(&so_far_t),
                    },
                ];
                let got = batchnorm::batch_norm_backward_of_parts(
                    &wide_t, &grad_t, relu, statistics, eps, training, &parts,
                )
                .unwrap();
                let sums = 1e-5 * (n * plane) as f32;
                let got_weight = got.grad_weight.to_vec().unwrap();
                let got_bias = got.grad_bias.to_vec().unwrap();
                assert_close(
                    &format!("{what}: weight"),
                    &got_weight,
                    &to32(&want_weight),
                    1e-4,
                    sums,
                );
                assert_close(
                    &format!("{what}: bias"),
                    &got_bias,
                    &to32(&want_bias),
                    1e-4,
                    sums,
                );
                let mut first = 0;
                for (k, (part, &count)) in got.grad_inputs.iter().zip(&counts).enumerate() {
                    assert_eq!(part.dims(), [n, count, h, w]);
                    let input = channels_of(&want_input, [n, c, plane], first..first + count);
                    let mut want = to32(&input);
                    if k == 1 {
                        want.iter_mut().zip(&so_far).for_each(|(w, s)| *w += s);
                    }
                    let channels = format!("{what}: input channels {first}..{}", first + count);
                    assert_close(&channels, &part.to_vec().unwrap(), &want, 1e-4, 1e-5);
                    first += count;
                }

                let x = upload(dims.to_vec(), &prefix);
                let (whole, relu_gradient) = batchnorm::batch_norm_backward_through_relu(
                    &x, &grad_t, relu, true, statistics, eps, training,
                )
                .unwrap();
                let got = whole.grad_input.to_vec().unwrap();
                assert_close(
                    &format!("{what}: whole input"),
                    &got,
                    &to32(&want_input),
                    1e-4,
                    1e-5,
                );
                let got = relu_gradient.expect("kept").to_vec().unwrap();
                assert_close(
                    &format!("{what}: after the ReLU"),
                    &got,
                    &to32(&masked),
                    0.0,
                    0.0,
                );
            }
        }

        let relu = ReluBackward {
            output: &grad_t,
            guided: false,
        };
        let statistics = [&stats.mean, &stats.variance, &weight_t];
        let part = |channels, so_far| Part { channels, so_far };
        let refused = batchnorm::batch_norm_backward_of_parts(
            &wide_t,
            &grad_t,
            relu,
            statistics,
            eps,
            true,
            &[part(1, None), part(1, None)],
        )
        .unwrap_err();
        assert!(refused.to_string().contains("do not add up"), "{refused}");
        let narrow = upload(vec![n, c - 1, h, w], &rng.vec(n * (c - 1) * plane));
        for (x, parts) in [
            (&narrow, [part(2, None), part(c - 2, None)]),
            (&wide_t, [part(2, Some(&so_far_t)), part(c - 2, None)]),
        ] {
            let refused = batchnorm::batch_norm_backward_of_parts(
                x, &grad_t, relu, statistics, eps, true, &parts,
            )
            .unwrap_err();
            assert!(matches!(refused, Error::ShapeMismatch { .. }), "{refused}");
        }
        assert!(batchnorm::batch_norm_statistics_of_prefix(&wide_t, c + 4).is_err());
    }
}
