//! shaders/roofline.wgsl, the roofline's microkernels, against the CPU reference.

mod common;

use common::{Rng, assert_close, gpu};
use gradlens::Tensor;
use gradlens::kernels::roofline::{fma_chain, fma_chain_flops, stream_copy};
use gradlens::reference::roofline as reference;

/// Invocations not a multiple of the workgroup size, and more workgroups than the 64 per
/// dimension of tools/test.sh's folded pass; values that converge to offset / (1 − scale).
#[test]
fn fma_chain_matches_the_reference() {
    for (invocations, iterations, scale, offset) in [
        (1, 1, 0.5, 0.25),
        (1000, 37, 0.75, 0.5),
        (70_001, 5, -0.9, 1.5),
    ] {
        let got = fma_chain(gpu(), invocations, iterations, scale, offset)
            .unwrap()
            .to_vec()
            .unwrap();
        let want = reference::fma_chain(invocations, iterations, scale, offset);
        let what = format!("{invocations} invocations × {iterations} steps");
        assert_close(&what, &got, &want, 1e-5, 1e-5);
    }
    assert_eq!(fma_chain_flops(1000, 37), 1000 * 37 * 8 * 8);
}

#[test]
fn stream_copy_copies_every_element() {
    let mut rng = Rng::new(80);
    for len in [4, 1000, 4 * 70_001] {
        let values = rng.vec(len);
        let src = Tensor::from_slice(gpu(), [len], &values).unwrap();
        let dst = Tensor::empty(gpu(), [len]).unwrap();
        stream_copy(&src, &dst).unwrap();
        let copied = dst.to_vec().unwrap();
        let wrong = copied
            .iter()
            .zip(&values)
            .filter(|(got, want)| got.to_bits() != want.to_bits())
            .count();
        assert_eq!(wrong, 0, "{wrong} of {len} elements not copied");
    }
    let six = Tensor::empty(gpu(), [6]).unwrap();
    let eight = Tensor::empty(gpu(), [8]).unwrap();
    assert!(stream_copy(&six, &six).is_err(), "not a multiple of 4");
    assert!(stream_copy(&eight, &six).is_err(), "different lengths");
}
