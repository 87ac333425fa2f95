//! shaders/reduce.wgsl and shaders/softmax.wgsl against the CPU reference (`OpCheck`).

mod common;

use common::op_check::{OpCheck, Tolerance};
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
        let count: usize = axes.iter().map(|&a| dims[a]).product();
        // f32 accumulation over `count` terms of magnitude <= 1.
        let atol = 1e-6 * count as f32 + 1e-6;
        let sums = Tolerance { rtol: 1e-5, atol };
        let means = Tolerance {
            rtol: 1e-5,
            atol: atol / count as f32,
        };
        let input = vec![(dims.clone(), data)];
        for keep_dims in [false, true] {
            let shape = reduce::reduced_shape(&dims, &axes, keep_dims);
            OpCheck::new(
                &format!("sum {dims:?} over {axes:?} keep={keep_dims}"),
                input.clone(),
            )
            .output_shape(&shape)
            .tolerances(sums, sums)
            .run_forward(
                |t| reduce::sum(&t[0], &axes, keep_dims),
                |v| reference::reduce::sum(v[0], &dims, &axes),
            );
        }
        OpCheck::new(&format!("mean {dims:?} over {axes:?}"), input)
            .output_shape(&reduce::reduced_shape(&dims, &axes, false))
            .tolerances(means, means)
            .run_forward(
                |t| reduce::mean(&t[0], &axes, false),
                |v| reference::reduce::mean(v[0], &dims, &axes),
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
    // One workgroup per row: more rows than a grid dimension holds fold into a 2-D grid.
    let folded_rows = common::folded_length(1) + 4_464.min(common::folded_length(1));
    for dims in [
        vec![1],
        vec![1, 1000],
        vec![3, 10],
        vec![2, 3, 67],
        vec![folded_rows, 2],
        vec![5, 1],
    ] {
        let cols = *dims.last().unwrap();
        // Spread values to [-20, 20] so the max-subtraction matters.
        let data: Vec<f32> = rng
            .vec(dims.iter().product())
            .iter()
            .map(|v| v * 20.0)
            .collect();
        let input = vec![(dims.clone(), data)];
        let (probabilities, logs) = (
            Tolerance {
                rtol: 1e-5,
                atol: 1e-7,
            },
            Tolerance::relative(1e-5),
        );
        OpCheck::new(&format!("softmax {dims:?}"), input.clone())
            .tolerances(probabilities, probabilities)
            .run_forward(
                |t| softmax::softmax(&t[0]),
                |v| reference::softmax::softmax(v[0], cols),
            );
        OpCheck::new(&format!("log_softmax {dims:?}"), input)
            .tolerances(logs, logs)
            .run_forward(
                |t| softmax::log_softmax(&t[0]),
                |v| reference::softmax::log_softmax(v[0], cols),
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
