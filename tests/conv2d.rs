//! shaders/conv2d.wgsl, conv2d_implicit_gemm.wgsl and winograd.wgsl (every algorithm) against
//! the CPU reference, whose backward passes are checked against finite differences (`OpCheck`).

mod common;

use common::op_check::{OpCheck, Tolerance};
use common::{Rng, assert_close, gpu};
use gradlens::kernels::conv2d::{
    self, Conv2d, ConvAlgorithm, ConvGradient, ConvShapes, conv2d_shapes,
};
use gradlens::reference::conv2d as reference;
use gradlens::{Error, Tensor};

/// (input, weight, geometry): batch 1 to 3, channels not multiples of 4, odd sizes,
/// non-square kernels (Inception v3's 1×7, 7×1, 3×1), stride larger than the kernel, padding
/// up to half the kernel, outputs of size 1, dilation 2, groups 2, and ResNet's 7×7/2 stem.
fn cases() -> Vec<([usize; 4], [usize; 4], Conv2d)> {
    let asym = |stride: [usize; 2], padding: [usize; 2]| Conv2d {
        stride,
        padding,
        ..Conv2d::default()
    };
    vec![
        ([1, 3, 9, 9], [5, 3, 3, 3], Conv2d::default().padding(1)),
        ([3, 5, 7, 11], [6, 5, 1, 7], asym([1, 1], [0, 3])),
        ([1, 4, 10, 6], [3, 4, 7, 1], asym([1, 1], [3, 0])),
        ([2, 3, 8, 9], [4, 3, 3, 1], asym([2, 1], [1, 0])),
        ([1, 2, 11, 13], [3, 2, 2, 2], Conv2d::default().stride(3)),
        ([1, 6, 5, 5], [4, 6, 5, 5], Conv2d::default()),
        (
            [2, 3, 9, 8],
            [5, 3, 3, 3],
            Conv2d::default().dilation(2).padding(1),
        ),
        (
            [1, 4, 7, 7],
            [6, 2, 3, 3],
            Conv2d::default().groups(2).padding(1),
        ),
        (
            [3, 6, 6, 5],
            [6, 1, 3, 3],
            Conv2d::default().groups(6).stride(2).padding(1),
        ),
        (
            [1, 3, 23, 23],
            [8, 3, 7, 7],
            Conv2d::default().stride(2).padding(3),
        ),
        ([1, 16, 7, 7], [24, 16, 1, 1], Conv2d::default()),
        // Strides and dilations that share a factor and ones that do not: col2im's taps then
        // step by 3 and 2, and by 1 and 2, from a first tap that depends on the position.
        (
            [1, 3, 13, 12],
            [4, 3, 3, 3],
            Conv2d {
                stride: [3, 2],
                dilation: [2, 1],
                padding: [2, 1],
                ..Conv2d::default()
            },
        ),
        (
            [2, 2, 10, 11],
            [3, 2, 3, 2],
            Conv2d {
                stride: [2, 4],
                dilation: [2, 2],
                padding: [1, 0],
                ..Conv2d::default()
            },
        ),
        // More rows (N·OH·OW) than im2row has workgroups: each workgroup loops over several.
        ([2, 4, 30, 30], [8, 4, 3, 3], Conv2d::default().padding(1)),
        // ResNet's downsample (1×1, stride 2) on more small planes than col2im has
        // workgroups: each workgroup folds several planes.
        ([2, 264, 5, 5], [8, 264, 1, 1], Conv2d::default().stride(2)),
        // Batches whose GEMMs are vec4-aligned (the subgroup kernel's condition), 3×3 and 1×1:
        // the weight gradient's one product over N·OH·OW.
        ([2, 8, 6, 6], [8, 8, 3, 3], Conv2d::default().padding(1)),
        ([3, 8, 4, 4], [12, 8, 1, 1], Conv2d::default()),
        // More channels per group than one implicit-GEMM tile, and a weight-gradient sum long
        // enough to be split into chunks.
        (
            [2, 12, 16, 15],
            [20, 6, 3, 3],
            Conv2d::default().groups(2).padding(1),
        ),
        // Winograd F(2×2, 3×3): odd output sizes (partial 2×2 tiles), tile counts that are not
        // multiples of 4, padding 0, 2 and per axis, more outputs than inputs and fewer.
        ([1, 8, 5, 5], [8, 8, 3, 3], Conv2d::default().padding(1)),
        ([1, 4, 7, 5], [12, 4, 3, 3], Conv2d::default().padding(1)),
        ([2, 8, 9, 10], [4, 8, 3, 3], Conv2d::default()),
        ([1, 12, 5, 6], [8, 12, 3, 3], Conv2d::default().padding(2)),
        ([2, 4, 6, 7], [4, 4, 3, 3], asym([1, 1], [1, 0])),
        // Outputs with at least 48 tiles of 4×4, where `Winograd` (and `Auto`) take F(4×4, 3×3):
        // partial tiles on both axes, padding 1, 0, 2 and per axis, batches of two.
        ([2, 8, 19, 21], [8, 8, 3, 3], Conv2d::default().padding(1)),
        ([1, 4, 30, 30], [8, 4, 3, 3], Conv2d::default()),
        ([1, 4, 26, 27], [4, 4, 3, 3], Conv2d::default().padding(2)),
        ([2, 8, 22, 17], [12, 8, 3, 3], asym([1, 1], [0, 1])),
    ]
}

const ALGORITHMS: [ConvAlgorithm; 7] = [
    ConvAlgorithm::Direct,
    ConvAlgorithm::Gemm,
    ConvAlgorithm::ImplicitGemm,
    ConvAlgorithm::Winograd,
    ConvAlgorithm::WinogradF2,
    ConvAlgorithm::WinogradF4,
    ConvAlgorithm::Auto,
];

/// Every case through every algorithm that applies to it, with and without a bias, forward
/// and the three gradients (`OpCheck`: poisoned outputs, the reference's backward checked by
/// finite differences once per case); an algorithm that does not apply must be refused.
#[test]
fn forward_and_backward_match_reference() {
    let mut rng = Rng::new(60);
    for (input, weight, conv) in cases() {
        let s = conv2d_shapes("test", &input, &weight, &conv).unwrap();
        let x = rng.vec(input.iter().product());
        let w = rng.vec(weight.iter().product());
        let b = rng.vec(weight[0]);
        let what = format!("{input:?} * {weight:?} {conv:?}");
        let taps = (weight[1] * weight[2] * weight[3]) as f32;
        let positions = (s.output[0] * s.output[2] * s.output[3]) as f32;
        let forward = Tolerance {
            rtol: 1e-5,
            atol: 1e-5 * taps.sqrt() * 4.0,
        };
        let weight_gradient = Tolerance {
            rtol: 1e-5,
            atol: 1e-5 * positions.sqrt() * 4.0,
        };
        let bias_gradient = Tolerance {
            rtol: 1e-5,
            atol: 1e-5 * positions,
        };
        let mut gradchecked = false;
        for algorithm in ALGORITHMS {
            let what = format!("{what} {algorithm:?}");
            if let Some(refusal) = refusal(&input, &weight, &conv, algorithm) {
                assert_refused(&x, &w, &s, &conv, algorithm, refusal, &what);
                continue;
            }
            for with_bias in [true, false] {
                let mut inputs = vec![(input.to_vec(), x.clone()), (weight.to_vec(), w.clone())];
                if with_bias {
                    inputs.push((vec![weight[0]], b.clone()));
                }
                let name = format!("conv2d {what} bias={with_bias}");
                let mut check = OpCheck::new(&name, inputs)
                    .output_shape(&s.output)
                    .tolerances(forward, forward)
                    .backward_tolerance_for(1, weight_gradient)
                    .backward_tolerance_for(2, bias_gradient);
                if gradchecked {
                    check = check.without_gradcheck();
                }
                gradchecked = true;
                check.run(
                    |t| conv2d::conv2d_with(&t[0], &t[1], t.get(2), &conv, algorithm),
                    |t, g| {
                        let mut grads = vec![
                            Some(conv2d::conv2d_backward(
                                ConvGradient::Input,
                                &t[0],
                                &t[1],
                                g,
                                &conv,
                                algorithm,
                            )?),
                            Some(conv2d::conv2d_backward(
                                ConvGradient::Weight,
                                &t[0],
                                &t[1],
                                g,
                                &conv,
                                algorithm,
                            )?),
                        ];
                        if t.len() == 3 {
                            grads.push(Some(conv2d::conv2d_backward_bias(g)?));
                        }
                        Ok(grads)
                    },
                    |v| reference::conv2d(v[0], v[1], v.get(2).copied(), &s),
                    |v, g| {
                        let mut grads = vec![
                            Some(reference::conv2d_backward_input(v[1], g, &s)),
                            Some(reference::conv2d_backward_weight(v[0], g, &s)),
                        ];
                        if v.len() == 3 {
                            grads.push(Some(channel_sums(g, s.output)));
                        }
                        grads
                    },
                );
            }
        }
    }
}

/// Why `algorithm` must refuse this convolution, if it must.
fn refusal(
    input: &[usize; 4],
    weight: &[usize; 4],
    conv: &Conv2d,
    algorithm: ConvAlgorithm,
) -> Option<&'static str> {
    let winograd = matches!(
        algorithm,
        ConvAlgorithm::Winograd | ConvAlgorithm::WinogradF2 | ConvAlgorithm::WinogradF4
    );
    let winograd_applies = weight[2..] == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && input[1].is_multiple_of(4)
        && weight[0].is_multiple_of(4);
    if winograd && !winograd_applies {
        Some("Winograd")
    } else if algorithm == ConvAlgorithm::Gemm && conv.groups != 1 {
        Some("GEMM with groups")
    } else {
        None
    }
}

/// The forward and the gradients that `refusal` names must be errors, not results.
fn assert_refused(
    x: &[f32],
    w: &[f32],
    s: &ConvShapes,
    conv: &Conv2d,
    algorithm: ConvAlgorithm,
    refusal: &str,
    what: &str,
) {
    let tx = Tensor::from_slice(gpu(), s.input, x).unwrap();
    let tw = Tensor::from_slice(gpu(), s.weight, w).unwrap();
    let tg = Tensor::full(gpu(), s.output, 1.0).unwrap();
    let forward = conv2d::conv2d_with(&tx, &tw, None, conv, algorithm);
    assert!(
        forward.is_err(),
        "{what}: {refusal} must refuse the forward"
    );
    let weight_gradient =
        conv2d::conv2d_backward(ConvGradient::Weight, &tx, &tw, &tg, conv, algorithm);
    assert!(
        weight_gradient.is_err(),
        "{what}: {refusal} must refuse the weight gradient"
    );
    if algorithm == ConvAlgorithm::Gemm {
        let input_gradient =
            conv2d::conv2d_backward(ConvGradient::Input, &tx, &tw, &tg, conv, algorithm);
        assert!(
            input_gradient.is_err(),
            "{what}: {refusal} must refuse the input gradient"
        );
    }
}

/// grad_out [N, C, H, W] summed over N, H and W: the bias gradient.
fn channel_sums(grad_out: &[f64], [n, c, h, w]: [usize; 4]) -> Vec<f64> {
    (0..c)
        .map(|channel| {
            (0..n)
                .flat_map(|sample| grad_out[(sample * c + channel) * h * w..][..h * w].iter())
                .sum()
        })
        .collect()
}

#[test]
fn bad_geometry_is_refused_with_the_values() {
    let x = Tensor::zeros(gpu(), [1, 4, 5, 5]).unwrap();
    let w = Tensor::zeros(gpu(), [6, 4, 7, 7]).unwrap();
    let error = conv2d::conv2d(&x, &w, None, &Conv2d::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("conv2d") && error.contains("larger than the padded input"),
        "{error}"
    );
    let w3 = Tensor::zeros(gpu(), [6, 4, 3, 3]).unwrap();
    let error = conv2d::conv2d(&x, &w3, None, &Conv2d::default().groups(3))
        .unwrap_err()
        .to_string();
    assert!(error.contains("groups = 3"), "{error}");
    assert!(conv2d::conv2d(&x, &w3, None, &Conv2d::default().stride(0)).is_err());
    let bias = Tensor::zeros(gpu(), [5]).unwrap();
    let error = conv2d::conv2d(&x, &w3, Some(&bias), &Conv2d::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("bias must have shape [6]"), "{error}");
    let wrong_grad = Tensor::zeros(gpu(), [1, 6, 4, 4]).unwrap();
    let error = conv2d::conv2d_backward(
        ConvGradient::Input,
        &x,
        &w3,
        &wrong_grad,
        &Conv2d::default(),
        ConvAlgorithm::Auto,
    )
    .unwrap_err();
    assert!(matches!(error, Error::ShapeMismatch { .. }), "{error}");
}

/// Two branches writing their slices of one destination give torch.cat of the two outputs, and
/// the channels outside the slices are left as they were.
#[test]
fn conv2d_into_fills_only_its_channel_slice() {
    let mut rng = Rng::new(62);
    let input = [2, 8, 9, 8];
    let x_data = rng.vec(input.iter().product());
    let x = Tensor::from_slice(gpu(), input, &x_data).unwrap();
    // The implicit GEMM (1×1, and 3×3 with 6 outputs) and Winograd (3×3 with 8 and 4 outputs:
    // 40 tiles) each write their slice.
    let branches = [
        ([3, 8, 1, 1], Conv2d::default()),
        ([6, 8, 3, 3], Conv2d::default().padding(1)),
        ([8, 8, 3, 3], Conv2d::default().padding(1)),
        ([4, 8, 3, 3], Conv2d::default().padding(1)),
    ];
    let total = 23;
    let dest = Tensor::full(gpu(), [2, total, 9, 8], 7.0).unwrap();
    let mut first = 1;
    let mut wanted = vec![7.0; dest.numel()];
    for (weight, conv) in branches {
        let w_data = rng.vec(weight.iter().product());
        let b_data = rng.vec(weight[0]);
        let w = Tensor::from_slice(gpu(), weight, &w_data).unwrap();
        let b = Tensor::from_slice(gpu(), [weight[0]], &b_data).unwrap();
        conv2d::conv2d_into(&x, &w, Some(&b), &conv, &dest, first).unwrap();
        let s = conv2d_shapes("test", &input, &weight, &conv).unwrap();
        let branch = reference::conv2d(&x_data, &w_data, Some(&b_data), &s);
        let plane = 9 * 8;
        for n in 0..2 {
            for c in 0..weight[0] {
                let from = (n * weight[0] + c) * plane;
                let to = (n * total + first + c) * plane;
                wanted[to..to + plane].copy_from_slice(&branch[from..from + plane]);
            }
        }
        first += weight[0];
    }
    assert_close("conv2d_into", &dest.to_vec().unwrap(), &wanted, 1e-5, 1e-4);

    let w = Tensor::zeros(gpu(), [24, 8, 3, 3]).unwrap();
    let error = conv2d::conv2d_into(&x, &w, None, &Conv2d::default(), &dest, 0)
        .unwrap_err()
        .to_string();
    assert!(error.contains("no room"), "{error}");
}

#[test]
fn zero_input_channels_are_refused() {
    let x = Tensor::zeros(gpu(), [1, 0, 5, 5]).unwrap();
    let w = Tensor::zeros(gpu(), [4, 0, 3, 3]).unwrap();
    let error = conv2d::conv2d(&x, &w, None, &Conv2d::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("at least one input channel"), "{error}");
}

/// Padding or dilation near usize::MAX is refused, not wrapped into a small output.
#[test]
fn huge_padding_and_dilation_are_refused() {
    for conv in [
        Conv2d::default().padding(1 << 63),
        Conv2d::default().dilation(usize::MAX / 2),
    ] {
        let error = conv2d::conv2d_shapes("conv2d", &[1, 1, 4, 4], &[1, 1, 3, 3], &conv);
        assert!(error.is_err(), "{conv:?}: {error:?}");
    }
}

/// Winograd's transformed filters are kept with the weight tensor: a forward and a backward
/// after the weights are overwritten from the host, and after a kernel writes them in place,
/// use the new weights (the kept filters of the old ones are recomputed, never reused).
#[test]
fn winograd_filters_follow_the_weights_they_come_from() {
    let mut rng = Rng::new(31);
    let conv = Conv2d::default().padding(1);
    let (input, weight) = ([1, 8, 6, 6], [8, 8, 3, 3]);
    let s = conv2d_shapes("test", &input, &weight, &conv).unwrap();
    let x = rng.vec(input.iter().product());
    let g = rng.vec(s.output.iter().product());
    let tx = Tensor::from_slice(gpu(), input, &x).unwrap();
    let tg = Tensor::from_slice(gpu(), s.output, &g).unwrap();
    let tw = Tensor::from_slice(gpu(), weight, &rng.vec(weight.iter().product())).unwrap();
    let check = |w: &[f32], when: &str| {
        for algorithm in [ConvAlgorithm::WinogradF2, ConvAlgorithm::WinogradF4] {
            let y = conv2d::conv2d_with(&tx, &tw, None, &conv, algorithm).unwrap();
            let want = reference::conv2d(&x, w, None, &s);
            assert_close(
                &format!("forward {algorithm:?} {when}"),
                &y.to_vec().unwrap(),
                &want,
                1e-5,
                1e-4,
            );
            let dx = conv2d::conv2d_backward(ConvGradient::Input, &tx, &tw, &tg, &conv, algorithm)
                .unwrap();
            let want = reference::conv2d_backward_input(w, &g, &s);
            assert_close(
                &format!("backward {algorithm:?} {when}"),
                &dx.to_vec().unwrap(),
                &want,
                1e-5,
                1e-4,
            );
        }
    };
    let first = tw.to_vec().unwrap();
    check(&first, "with the first weights");
    check(&first, "again, from the kept filters");
    let written: Vec<f32> = first.iter().map(|v| 0.5 - 2.0 * v).collect();
    tw.write(&written).unwrap();
    check(&written, "after a host write");
    gradlens::kernels::fill::fill_into(&tw, 0.25).unwrap();
    check(&vec![0.25; written.len()], "after a kernel's write");
}

/// `conv2d_then` against the references (the convolution, then its bias or an eval-mode
/// BatchNorm with or without the convolution's bias, then the residual and the ReLU, in
/// float64) on each algorithm it may take: 1×1 and strided GEMMs, on planes of a multiple of 4
/// positions and on a 7×7 one padded to 52 (the subgroup GEMM's epilogue where that kernel
/// runs and no residual is added, passes of their own otherwise), Winograd F(2×2) and F(4×4)
/// (the output transform's epilogue) and a grouped convolution (implicit GEMM, passes of
/// their own); then its refusals.
#[test]
fn a_convolution_with_its_bias_or_batch_norm_matches_the_references() {
    use gradlens::kernels::batchnorm::{Epilogue, EvalBatchNorm};
    use gradlens::kernels::conv2d::ChannelAffine;
    use gradlens::reference::batchnorm::{self as bn_reference, Geometry};
    let cases: [([usize; 4], [usize; 4], Conv2d); 6] = [
        ([2, 8, 8, 8], [12, 8, 1, 1], Conv2d::default()),
        ([1, 8, 7, 7], [12, 8, 1, 1], Conv2d::default()),
        (
            [1, 4, 16, 16],
            [8, 4, 3, 3],
            Conv2d::default().stride(2).padding(1),
        ),
        ([2, 8, 8, 8], [8, 8, 3, 3], Conv2d::default().padding(1)),
        ([3, 4, 16, 16], [8, 4, 3, 3], Conv2d::default().padding(1)),
        (
            [1, 8, 6, 6],
            [8, 4, 3, 3],
            Conv2d::default().padding(1).groups(2),
        ),
    ];
    let mut rng = Rng::new(47);
    let upload =
        |dims: &[usize], data: &[f32]| Tensor::from_slice(gpu(), dims.to_vec(), data).unwrap();
    for (input, weight, conv) in cases {
        let shapes = conv2d_shapes("test", &input, &weight, &conv).unwrap();
        let c_out = weight[0];
        let x = rng.vec(input.iter().product());
        let w = rng.vec(weight.iter().product());
        let residual = rng.vec(shapes.output.iter().product());
        let [mean, gamma, beta, conv_bias] = [0; 4].map(|_| rng.vec(c_out));
        let variance: Vec<f32> = rng.vec(c_out).iter().map(|v| v.abs() + 0.3).collect();
        let tensors = [&mean, &variance, &gamma, &beta].map(|v| upload(&[c_out], v));
        let bn = EvalBatchNorm {
            mean: &tensors[0],
            variance: &tensors[1],
            weight: &tensors[2],
            bias: &tensors[3],
            eps: 1e-5,
        };
        let wide = |v: &[f32]| v.iter().map(|&a| f64::from(a)).collect::<Vec<f64>>();
        let convolved = reference::conv2d(&wide(&x), &wide(&w), None, &shapes);
        let biased = reference::conv2d(&wide(&x), &wide(&w), Some(&wide(&conv_bias)), &shapes);
        let [n, _, oh, ow] = shapes.output;
        let geometry = Geometry {
            batch: n,
            channels: c_out,
            plane: oh * ow,
        };
        let [mean64, variance64, gamma64, beta64] =
            [&mean, &variance, &gamma, &beta].map(|v| wide(v));
        let normalised = |v: &[f64]| {
            bn_reference::forward(v, geometry, &mean64, &variance64, &gamma64, &beta64, 1e-5)
        };
        let (x_t, w_t, r_t, b_t) = (
            upload(&input, &x),
            upload(&weight, &w),
            upload(&shapes.output, &residual),
            upload(&[c_out], &conv_bias),
        );
        let affines = [
            (
                "BatchNorm",
                ChannelAffine::BatchNorm {
                    bn: &bn,
                    conv_bias: None,
                },
                normalised(&convolved),
            ),
            (
                "bias, BatchNorm",
                ChannelAffine::BatchNorm {
                    bn: &bn,
                    conv_bias: Some(&b_t),
                },
                normalised(&biased),
            ),
            ("bias", ChannelAffine::Bias(&b_t), biased.clone()),
        ];
        for (name, affine, before_epilogue) in affines {
            for (with_residual, relu) in
                [(false, false), (false, true), (true, false), (true, true)]
            {
                let want: Vec<f32> = before_epilogue
                    .iter()
                    .zip(&residual)
                    .map(|(&v, &r)| {
                        let added = if with_residual { v + f64::from(r) } else { v };
                        (if relu { added.max(0.0) } else { added }) as f32
                    })
                    .collect();
                let then = Epilogue {
                    residual: with_residual.then_some(&r_t),
                    relu,
                };
                let got = conv2d::conv2d_then(&x_t, &w_t, &conv, affine, then)
                    .unwrap()
                    .to_vec()
                    .unwrap();
                let what =
                    format!("{input:?} * {weight:?}, {name}, residual {with_residual} relu {relu}");
                assert_close(&what, &got, &want, 1e-4, 1e-4);
            }
        }
    }

    // A residual or statistics of the wrong shape are refused before anything runs.
    let x_t = upload(&[1, 8, 8, 8], &rng.vec(512));
    let w_t = upload(&[4, 8, 1, 1], &rng.vec(32));
    let four = upload(&[4], &[0.5, 1.0, 1.5, 2.0]);
    let three = upload(&[3], &[0.5, 1.0, 1.5]);
    let bn = |mean| EvalBatchNorm {
        mean,
        variance: &four,
        weight: &four,
        bias: &four,
        eps: 1e-5,
    };
    let wrong_residual = upload(&[1, 4, 4, 4], &rng.vec(64));
    let then = Epilogue {
        residual: Some(&wrong_residual),
        relu: true,
    };
    let (bn_four, bn_three) = (bn(&four), bn(&three));
    let with_bn = |bn| ChannelAffine::BatchNorm {
        bn,
        conv_bias: None,
    };
    let refused = conv2d::conv2d_then(&x_t, &w_t, &Conv2d::default(), with_bn(&bn_four), then)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("[1, 4, 8, 8]") && refused.contains("[1, 4, 4, 4]"),
        "{refused}"
    );
    let refused = conv2d::conv2d_then(
        &x_t,
        &w_t,
        &Conv2d::default(),
        with_bn(&bn_three),
        Epilogue::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(refused.contains("mean must have shape [4]"), "{refused}");
    // A convolution bias of the wrong length, alone or before a BatchNorm.
    for affine in [
        ChannelAffine::Bias(&three),
        ChannelAffine::BatchNorm {
            bn: &bn_four,
            conv_bias: Some(&three),
        },
    ] {
        let refused =
            conv2d::conv2d_then(&x_t, &w_t, &Conv2d::default(), affine, Epilogue::default())
                .unwrap_err()
                .to_string();
        assert!(refused.contains("[3]"), "{refused}");
    }
}
