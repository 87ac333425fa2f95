//! shaders/pool.wgsl against the CPU reference, and the reference's backward against finite
//! differences (`OpCheck`).

mod common;

use common::op_check::{OpCheck, Tolerance};
use common::{Rng, gpu};
use gradlens::kernels::pool::{self, Pool2d};
use gradlens::reference::pool::{self as reference, Planes};
use gradlens::{Error, Tensor};

/// (N, C, H, W, pool): batch 1 and 3, channels not multiples of 4, odd sizes, non-square
/// windows, stride larger than the kernel, padding up to half the kernel, outputs of size 1,
/// ceil_mode (GoogLeNet) and the classic configurations.
fn configs() -> Vec<([usize; 4], Pool2d)> {
    let p = |kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2], ceil_mode| Pool2d {
        kernel,
        stride,
        padding,
        ceil_mode,
    };
    vec![
        ([1, 1, 4, 4], Pool2d::new(2)),
        ([3, 5, 9, 7], Pool2d::new(3).stride(2)),
        ([3, 5, 9, 7], Pool2d::new(3).stride(2).ceil_mode(true)),
        ([1, 3, 13, 11], Pool2d::new(3).stride(2).padding(1)),
        (
            [2, 3, 12, 12],
            Pool2d::new(3).stride(2).padding(1).ceil_mode(true),
        ),
        ([1, 2, 7, 9], p([2, 3], [3, 2], [1, 1], false)),
        ([1, 2, 8, 10], p([2, 3], [3, 4], [0, 1], true)),
        ([3, 1, 5, 5], Pool2d::new(5)),
        ([1, 7, 3, 3], Pool2d::new(3).stride(1).padding(1)),
        ([2, 3, 15, 15], Pool2d::new(2).ceil_mode(true)),
        ([1, 1, 1, 1], Pool2d::new(1)),
        // ceil_mode windows longer than the input (GoogLeNet's pools on a 16×16 image).
        ([2, 3, 2, 2], Pool2d::new(3).stride(2).ceil_mode(true)),
        ([1, 2, 2, 5], Pool2d::new(3).stride(2).ceil_mode(true)),
        // More small planes than the pass has workgroups: each workgroup takes several.
        ([2, 300, 6, 6], Pool2d::new(3).stride(2).padding(1)),
    ]
}

/// PyTorch: max_pool2d and avg_pool2d of [[1, 2], [3, 4]] with a 3×3 window, stride 2 and
/// ceil_mode give one value, 4 and 2.5 (the window clipped to the input, its divisor too).
#[test]
fn ceil_mode_windows_may_overhang_the_input() {
    let pool = Pool2d::new(3).stride(2).ceil_mode(true);
    let x = Tensor::from_slice(gpu(), [1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(
        pool::max_pool2d(&x, &pool).unwrap().to_vec().unwrap(),
        [4.0]
    );
    assert_eq!(
        pool::avg_pool2d(&x, &pool, true).unwrap().to_vec().unwrap(),
        [2.5]
    );
    let single = Tensor::from_slice(gpu(), [1, 1, 1, 1], &[1.0]).unwrap();
    assert!(
        pool::max_pool2d(&single, &pool).is_err(),
        "PyTorch: output size too small"
    );
}

fn planes(dims: [usize; 4]) -> Planes {
    Planes {
        planes: dims[0] * dims[1],
        height: dims[2],
        width: dims[3],
    }
}

/// A planes-by-planes op on one NCHW input, checked forward, backward (on the GPU and against
/// finite differences of the reference) by `OpCheck`.
fn pool_check(
    name: String,
    dims: [usize; 4],
    out: [usize; 2],
    seed: u64,
    [forward, backward]: [Tolerance; 2],
) -> OpCheck<'static> {
    let data = Rng::new(seed).vec(dims.iter().product());
    OpCheck::new(name.leak(), vec![(dims.to_vec(), data)])
        .tolerances(forward, backward)
        .output_shape(&[dims[0], dims[1], out[0], out[1]])
}

/// Max pooling picks values exactly; its backward sums overlapping windows' gradients in
/// another order than the reference.
const MAX_POOL: [Tolerance; 2] = [Tolerance::EXACT, Tolerance::relative(1e-6)];
/// Averages: a few ulp.
const AVERAGE: [Tolerance; 2] = [
    Tolerance {
        rtol: 1e-5,
        atol: 1e-6,
    },
    Tolerance {
        rtol: 1e-5,
        atol: 1e-6,
    },
];

#[test]
fn max_pool_forward_and_backward_match_reference() {
    for (i, (dims, config)) in configs().into_iter().enumerate() {
        let out = config.output_size("test", [dims[2], dims[3]]).unwrap();
        let p = planes(dims);
        pool_check(
            format!("max_pool2d {dims:?} {config:?}"),
            dims,
            out,
            30 + i as u64,
            MAX_POOL,
        )
        .run(
            |x| pool::max_pool2d(&x[0], &config),
            |x, g| Ok(vec![Some(pool::max_pool2d_backward(&x[0], g, &config)?)]),
            |x| reference::max_pool2d(x[0], p, &config, out).0,
            |x, g| {
                vec![Some(reference::max_pool2d_backward(
                    x[0], g, p, &config, out,
                ))]
            },
        );
        // The forward that keeps its maxima, and the backward from them.
        pool_check(
            format!("max_pool2d_with_argmax {dims:?} {config:?}"),
            dims,
            out,
            60 + i as u64,
            MAX_POOL,
        )
        .run(
            |x| Ok(pool::max_pool2d_with_argmax(&x[0], &config)?.0),
            |x, g| {
                let (_, argmax) = pool::max_pool2d_with_argmax(&x[0], &config)?;
                Ok(vec![Some(pool::max_pool2d_backward_at(
                    &argmax, &dims, g, &config,
                )?)])
            },
            |x| reference::max_pool2d(x[0], p, &config, out).0,
            |x, g| {
                vec![Some(reference::max_pool2d_backward(
                    x[0], g, p, &config, out,
                ))]
            },
        );
    }
}

#[test]
fn avg_pool_forward_and_backward_match_reference() {
    for (i, (dims, config)) in configs().into_iter().enumerate() {
        let out = config.output_size("test", [dims[2], dims[3]]).unwrap();
        let p = planes(dims);
        for include_pad in [true, false] {
            let name = format!("avg_pool2d {dims:?} {config:?} count_include_pad={include_pad}");
            pool_check(name, dims, out, 90 + i as u64, AVERAGE).run(
                |x| pool::avg_pool2d(&x[0], &config, include_pad),
                |x, g| {
                    let grad = pool::avg_pool2d_backward(&x[0], g, &config, include_pad)?;
                    Ok(vec![Some(grad)])
                },
                |x| reference::avg_pool2d(x[0], p, &config, out, include_pad),
                |_, g| {
                    vec![Some(reference::avg_pool2d_backward(
                        g,
                        p,
                        &config,
                        out,
                        include_pad,
                    ))]
                },
            );
        }
    }
}

#[test]
fn adaptive_avg_pool_forward_and_backward_match_reference() {
    // VGG's 7×7 (from 7, from 14, from odd sizes), the global 1×1, and outputs larger than
    // the input (overlapping windows).
    let cases = [
        ([1, 3, 7, 7], [7, 7]),
        ([2, 5, 14, 14], [7, 7]),
        ([1, 3, 9, 11], [7, 7]),
        ([3, 6, 5, 7], [1, 1]),
        ([1, 2, 3, 5], [7, 4]),
        ([1, 1, 10, 3], [4, 3]),
    ];
    for (i, (dims, out)) in cases.into_iter().enumerate() {
        let p = planes(dims);
        pool_check(
            format!("adaptive {dims:?} -> {out:?}"),
            dims,
            out,
            120 + i as u64,
            AVERAGE,
        )
        .run(
            |x| pool::adaptive_avg_pool2d(&x[0], out),
            |x, g| Ok(vec![Some(pool::adaptive_avg_pool2d_backward(&x[0], g)?)]),
            |x| reference::adaptive_avg_pool2d(x[0], p, out),
            |_, g| vec![Some(reference::adaptive_avg_pool2d_backward(g, p, out))],
        );
    }
}

#[test]
fn max_pool_ties_go_to_the_first_maximum_and_nan_wins() {
    // One 2×2 window of equal values: all the gradient goes to the first element.
    let x = Tensor::from_slice(gpu(), [1, 1, 2, 2], &[1.0, 1.0, 1.0, 1.0]).unwrap();
    let g = Tensor::from_slice(gpu(), [1, 1, 1, 1], &[5.0]).unwrap();
    let grad = pool::max_pool2d_backward(&x, &g, &Pool2d::new(2)).unwrap();
    assert_eq!(grad.to_vec().unwrap(), vec![5.0, 0.0, 0.0, 0.0]);

    let (_, argmax) = pool::max_pool2d_with_argmax(&x, &Pool2d::new(2)).unwrap();
    let grad = pool::max_pool2d_backward_at(&argmax, &[1, 1, 2, 2], &g, &Pool2d::new(2)).unwrap();
    assert_eq!(grad.to_vec().unwrap(), vec![5.0, 0.0, 0.0, 0.0]);

    let x = Tensor::from_slice(gpu(), [1, 1, 2, 2], &[1.0, f32::NAN, 3.0, 2.0]).unwrap();
    let (y, _) = pool::max_pool2d_with_argmax(&x, &Pool2d::new(2)).unwrap();
    assert!(y.to_vec().unwrap()[0].is_nan());
    assert!(
        pool::max_pool2d(&x, &Pool2d::new(2))
            .unwrap()
            .to_vec()
            .unwrap()[0]
            .is_nan()
    );
}

#[test]
fn bad_arguments_are_refused_before_dispatch() {
    let x = Tensor::zeros(gpu(), [1, 1, 4, 4]).unwrap();
    let error = pool::max_pool2d(&x, &Pool2d::new(3).padding(2))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("max_pool2d") && error.contains("half the kernel"),
        "{error}"
    );
    let error = pool::avg_pool2d(&x, &Pool2d::new(7), true)
        .unwrap_err()
        .to_string();
    assert!(error.contains("larger than the padded input"), "{error}");
    let flat = Tensor::zeros(gpu(), [4, 4]).unwrap();
    let error = pool::max_pool2d(&flat, &Pool2d::new(2))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("rank 4") && error.contains("[4, 4]"),
        "{error}"
    );
    assert!(pool::adaptive_avg_pool2d(&x, [0, 3]).is_err());
    let wrong_grad = Tensor::zeros(gpu(), [1, 1, 3, 3]).unwrap();
    let error = pool::max_pool2d_backward(&x, &wrong_grad, &Pool2d::new(2)).unwrap_err();
    assert!(matches!(error, Error::ShapeMismatch { .. }), "{error}");
    // The backward from kept maxima: the gradient, the maxima and the input's rank checked.
    let (y, argmax) = pool::max_pool2d_with_argmax(&x, &Pool2d::new(2)).unwrap();
    for (argmax, grad, input) in [
        (&argmax, &wrong_grad, &[1, 1, 4, 4][..]),
        (&wrong_grad, &y, &[1, 1, 4, 4][..]),
        (&argmax, &y, &[1, 4, 4][..]),
    ] {
        let error = pool::max_pool2d_backward_at(argmax, input, grad, &Pool2d::new(2)).unwrap_err();
        assert!(error.to_string().contains("max_pool2d_backward"), "{error}");
    }
}
