//! shaders/reduce.wgsl and shaders/softmax.wgsl against the CPU reference.

mod common;

use common::{Rng, assert_close, gpu};
use gradlens::kernels::reduce::{self, WORKGROUP_REDUCTION_MIN_LEN};
use gradlens::kernels::softmax;
use gradlens::{Tensor, reference};

/// (shape, axes) pairs: single axes, interleaved axes (batch-norm statistics), all axes, none,
/// size-1 axes, and reductions on both sides of the per-workgroup threshold.
fn cases() -> Vec<(Vec<usize>, Vec<usize>)> {
    vec![
        (vec![7], vec![0]),
        (vec![1], vec![0]),
        (vec![3, 5], vec![1]),
        (vec![3, 5], vec![0]),
        (vec![2, 3, 4, 5], vec![0, 2, 3]),
        (vec![2, 3, 4, 5], vec![1]),
        (vec![2, 3, 4, 5], vec![0, 1, 2, 3]),
        (vec![2, 3, 4, 5], vec![]),
        (vec![3, 1, 7, 1], vec![2, 3]),
        (vec![5, 2, 3, 7, 2], vec![0, 2, 4]),
        (vec![4, WORKGROUP_REDUCTION_MIN_LEN - 1], vec![1]),
        (vec![3, 64, 29, 31], vec![0, 2, 3]),
        (vec![1013, 3], vec![0]),
        (vec![70_001, 2], vec![1]),
    ]
}

#[test]
fn sum_and_mean_match_reference() {
    let mut rng = Rng::new(20);
    for (dims, axes) in cases() {
        let data = rng.vec(dims.iter().product());
        let x = Tensor::from_slice(gpu(), dims.clone(), &data).unwrap();
        let count: usize = axes.iter().map(|&a| dims[a]).product();
        // f32 accumulation over `count` terms of magnitude <= 1.
        let atol = 1e-6 * count as f32 + 1e-6;
        for keep_dims in [false, true] {
            let sum = reduce::sum(&x, &axes, keep_dims).unwrap();
            assert_eq!(sum.dims(), reduce::reduced_shape(&dims, &axes, keep_dims));
            let want = reference::reduce::sum(&data, &dims, &axes);
            assert_close(
                &format!("sum {dims:?} over {axes:?}"),
                &sum.to_vec().unwrap(),
                &want,
                1e-5,
                atol,
            );
        }
        let mean = reduce::mean(&x, &axes, false).unwrap().to_vec().unwrap();
        let want = reference::reduce::mean(&data, &dims, &axes);
        assert_close(
            &format!("mean {dims:?} over {axes:?}"),
            &mean,
            &want,
            1e-5,
            atol / count as f32,
        );
    }
}

#[test]
fn reductions_over_empty_axes_follow_pytorch() {
    let x = Tensor::from_slice(gpu(), [3, 0], &[]).unwrap();
    assert_eq!(
        reduce::sum(&x, &[1], false).unwrap().to_vec().unwrap(),
        vec![0.0; 3]
    );
    assert!(
        reduce::mean(&x, &[1], false)
            .unwrap()
            .to_vec()
            .unwrap()
            .iter()
            .all(|v| v.is_nan())
    );
}

#[test]
fn bad_axes_are_refused_with_the_shape() {
    let x = Tensor::zeros(gpu(), [2, 3]).unwrap();
    let error = reduce::sum(&x, &[2], false).unwrap_err().to_string();
    assert!(
        error.contains("axis 2") && error.contains("[2, 3]"),
        "{error}"
    );
    assert!(reduce::sum(&x, &[1, 1], false).is_err());
}

#[test]
fn softmax_and_log_softmax_match_reference() {
    let mut rng = Rng::new(21);
    for dims in [
        vec![1],
        vec![1, 1000],
        vec![3, 10],
        vec![2, 3, 67],
        vec![70_000, 2],
        vec![5, 1],
    ] {
        let cols = *dims.last().unwrap();
        // Spread values to [-20, 20] so the max-subtraction matters.
        let data: Vec<f32> = rng
            .vec(dims.iter().product())
            .iter()
            .map(|v| v * 20.0)
            .collect();
        let x = Tensor::from_slice(gpu(), dims.clone(), &data).unwrap();
        let got = softmax::softmax(&x).unwrap().to_vec().unwrap();
        assert_close(
            &format!("softmax {dims:?}"),
            &got,
            &reference::softmax::softmax(&data, cols),
            1e-5,
            1e-7,
        );
        let got = softmax::log_softmax(&x).unwrap().to_vec().unwrap();
        assert_close(
            &format!("log_softmax {dims:?}"),
            &got,
            &reference::softmax::log_softmax(&data, cols),
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn softmax_survives_huge_logits() {
    let x = Tensor::from_slice(gpu(), [1, 3], &[1000.0, 999.0, -1000.0]).unwrap();
    let got = softmax::softmax(&x).unwrap().to_vec().unwrap();
    let want = reference::softmax::softmax(&[1000.0, 999.0, -1000.0], 3);
    assert_close("softmax of huge logits", &got, &want, 1e-6, 1e-7);
    assert!(softmax::softmax(&Tensor::zeros(gpu(), Vec::<usize>::new()).unwrap()).is_err());
}
