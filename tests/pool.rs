//! shaders/pool.wgsl against the CPU reference, and the reference's backward against finite
//! differences.

mod common;

use common::{Rng, assert_close, gpu};
use gradlens::kernels::pool::{self, Pool2d};
use gradlens::reference::gradcheck;
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

#[test]
fn max_pool_forward_and_backward_match_reference() {
    let mut rng = Rng::new(30);
    for (dims, config) in configs() {
        let data = rng.vec(dims.iter().product());
        let x = Tensor::from_slice(gpu(), dims, &data).unwrap();
        let out = config.output_size("test", [dims[2], dims[3]]).unwrap();
        let y = pool::max_pool2d(&x, &config).unwrap();
        assert_eq!(y.dims(), &[dims[0], dims[1], out[0], out[1]]);
        let (want, _) = reference::max_pool2d(&data, planes(dims), &config, out);
        assert_close(
            &format!("max_pool2d {dims:?} {config:?}"),
            &y.to_vec().unwrap(),
            &want,
            0.0,
            0.0,
        );

        let grad = rng.vec(y.numel());
        let g = Tensor::from_slice(gpu(), y.dims().to_vec(), &grad).unwrap();
        let got = pool::max_pool2d_backward(&x, &g, &config)
            .unwrap()
            .to_vec()
            .unwrap();
        let want = reference::max_pool2d_backward(&data, &grad, planes(dims), &config, out);
        assert_close(
            &format!("max_pool2d_backward {dims:?} {config:?}"),
            &got,
            &want,
            1e-6,
            1e-6,
        );

        // The forward that keeps its maxima, and the backward from them.
        let (y_kept, argmax) = pool::max_pool2d_with_argmax(&x, &config).unwrap();
        assert_eq!(y_kept.to_vec().unwrap(), y.to_vec().unwrap(), "{dims:?}");
        let got = pool::max_pool2d_backward_at(&argmax, &dims, &g, &config)
            .unwrap()
            .to_vec()
            .unwrap();
        assert_close(
            &format!("max_pool2d_backward_at {dims:?} {config:?}"),
            &got,
            &want,
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn avg_pool_forward_and_backward_match_reference() {
    let mut rng = Rng::new(31);
    for (dims, config) in configs() {
        for include_pad in [true, false] {
            let data = rng.vec(dims.iter().product());
            let x = Tensor::from_slice(gpu(), dims, &data).unwrap();
            let out = config.output_size("test", [dims[2], dims[3]]).unwrap();
            let what = format!("avg_pool2d {dims:?} {config:?} count_include_pad={include_pad}");
            let y = pool::avg_pool2d(&x, &config, include_pad).unwrap();
            let want = reference::avg_pool2d(&data, planes(dims), &config, out, include_pad);
            assert_close(&what, &y.to_vec().unwrap(), &want, 1e-5, 1e-6);

            let grad = rng.vec(y.numel());
            let g = Tensor::from_slice(gpu(), y.dims().to_vec(), &grad).unwrap();
            let got = pool::avg_pool2d_backward(&x, &g, &config, include_pad).unwrap();
            let want =
                reference::avg_pool2d_backward(&grad, planes(dims), &config, out, include_pad);
            assert_close(
                &format!("{what} backward"),
                &got.to_vec().unwrap(),
                &want,
                1e-5,
                1e-6,
            );
        }
    }
}

#[test]
fn adaptive_avg_pool_forward_and_backward_match_reference() {
    let mut rng = Rng::new(32);
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
    for (dims, out) in cases {
        let data = rng.vec(dims.iter().product());
        let x = Tensor::from_slice(gpu(), dims, &data).unwrap();
        let y = pool::adaptive_avg_pool2d(&x, out).unwrap();
        assert_eq!(y.dims(), &[dims[0], dims[1], out[0], out[1]]);
        let want = reference::adaptive_avg_pool2d(&data, planes(dims), out);
        assert_close(
            &format!("adaptive {dims:?} -> {out:?}"),
            &y.to_vec().unwrap(),
            &want,
            1e-5,
            1e-6,
        );

        let grad = rng.vec(y.numel());
        let g = Tensor::from_slice(gpu(), y.dims().to_vec(), &grad).unwrap();
        let got = pool::adaptive_avg_pool2d_backward(&x, &g)
            .unwrap()
            .to_vec()
            .unwrap();
        let want = reference::adaptive_avg_pool2d_backward(&grad, planes(dims), out);
        assert_close(
            &format!("adaptive backward {dims:?} -> {out:?}"),
            &got,
            &want,
            1e-5,
            1e-6,
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
fn reference_backwards_match_finite_differences() {
    let mut rng = Rng::new(33);
    for (dims, config) in configs()
        .into_iter()
        .filter(|(d, _)| d.iter().product::<usize>() <= 1000)
    {
        let p = planes(dims);
        let out = config.output_size("test", [dims[2], dims[3]]).unwrap();
        let x: Vec<f64> = rng
            .vec(dims.iter().product())
            .into_iter()
            .map(f64::from)
            .collect();
        let g: Vec<f64> = rng
            .vec(p.planes * out[0] * out[1])
            .into_iter()
            .map(f64::from)
            .collect();
        let what = format!("{dims:?} {config:?}");
        gradcheck::check(
            &x,
            &g,
            |x| reference::max_pool2d(x, p, &config, out).0,
            |x, g| reference::max_pool2d_backward(x, g, p, &config, out),
            1e-6,
            1e-6,
        )
        .unwrap_or_else(|e| panic!("max_pool2d {what}: {e}"));
        for include_pad in [true, false] {
            gradcheck::check(
                &x,
                &g,
                |x| reference::avg_pool2d(x, p, &config, out, include_pad),
                |_, g| reference::avg_pool2d_backward(g, p, &config, out, include_pad),
                1e-6,
                1e-6,
            )
            .unwrap_or_else(|e| panic!("avg_pool2d {what} include_pad={include_pad}: {e}"));
        }
        let adaptive = [out[0], out[1] + 1];
        let g: Vec<f64> = rng
            .vec(p.planes * adaptive[0] * adaptive[1])
            .into_iter()
            .map(f64::from)
            .collect();
        gradcheck::check(
            &x,
            &g,
            |x| reference::adaptive_avg_pool2d(x, p, adaptive),
            |_, g| reference::adaptive_avg_pool2d_backward(g, p, adaptive),
            1e-6,
            1e-6,
        )
        .unwrap_or_else(|e| panic!("adaptive_avg_pool2d {what}: {e}"));
    }
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
