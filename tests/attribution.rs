//! shaders/attribution.wgsl (SmoothGrad's noisy copies, integrated gradients' path, their
//! accumulation and the channel reduction to maps) against the CPU reference.

mod common;

use common::{Rng, assert_close, gpu};
use gradlens::Tensor;
use gradlens::kernels::attribution::{
    ChannelReduction, accumulate, interpolate, noisy_copies, reduce_channels,
};
use gradlens::reference::attribution as reference;

/// The second image of two, copies from sample 5 on; enough copies for more workgroups than
/// tools/test.sh's 64 per grid dimension. The integer hashes match bit for bit; the GPU's log
/// and cos may differ from Rust's in the last bits.
#[test]
fn noisy_copies_match_the_reference() {
    let dims = [2, 3, 9, 7];
    let size = 3 * 9 * 7;
    let values = Rng::new(93).vec(2 * size);
    let x = Tensor::from_slice(gpu(), dims, &values).unwrap();
    let seed = 0x1234_5678_9abc_def0;
    for count in [3, 90] {
        let got = noisy_copies(&x, 1, count, 5, seed, 0.25)
            .unwrap()
            .to_vec()
            .unwrap();
        let want = reference::noisy_copies(&values, size, 1, count, 5, seed, 0.25);
        assert_close("noisy_copies", &got, &want, 1e-5, 1e-5);
    }
    // Another seed, another stream; the same counters, the same noise.
    let a = noisy_copies(&x, 0, 2, 0, 1, 1.0).unwrap().to_vec().unwrap();
    let b = noisy_copies(&x, 0, 2, 0, 2, 1.0).unwrap().to_vec().unwrap();
    let again = noisy_copies(&x, 0, 1, 1, 1, 1.0).unwrap().to_vec().unwrap();
    assert!(a.iter().zip(&b).all(|(a, b)| a != b), "seeds share noise");
    assert_eq!(a[size..], again[..], "copy 1 of a batch is sample 1 alone");
}

#[test]
fn interpolation_and_accumulation_match_the_reference() {
    let mut rng = Rng::new(94);
    let (n, size) = (3, 2 * 5 * 4);
    let values = rng.vec(n * size);
    let baseline = rng.vec(size);
    let alphas = [0.0, 0.25, 0.6, 1.0];
    let x = Tensor::from_slice(gpu(), [n, 2, 5, 4], &values).unwrap();
    let b = Tensor::from_slice(gpu(), [2, 5, 4], &baseline).unwrap();
    let a = Tensor::from_slice(gpu(), [4], &alphas).unwrap();
    let path = interpolate(&x, 2, &b, &a).unwrap().to_vec().unwrap();
    let want = reference::interpolate(&values, size, 2, &baseline, &alphas);
    assert_close("interpolate", &path, &want, 1e-6, 1e-6);
    assert_eq!(path[..size], baseline[..], "α = 0 is the baseline");

    let g_values = rng.vec(4 * size);
    let g = Tensor::from_slice(gpu(), [4, 2, 5, 4], &g_values).unwrap();
    let weights = [0.5, -1.25, 2.0, 0.125, 99.0]; // the fifth lies past the count: unused
    let w = Tensor::from_slice(gpu(), [5], &weights).unwrap();
    let start = rng.vec(n * size);
    for absolute in [false, true] {
        let sum = Tensor::from_slice(gpu(), [n, 2, 5, 4], &start).unwrap();
        accumulate(&sum, 1, &g, &w, absolute).unwrap();
        accumulate(&sum, 1, &g, &w, absolute).unwrap();
        let mut want = start.clone();
        reference::accumulate(&mut want, size, 1, &g_values, &weights[..4], absolute);
        reference::accumulate(&mut want, size, 1, &g_values, &weights[..4], absolute);
        let got = sum.to_vec().unwrap();
        assert_close("accumulate", &got, &want, 1e-5, 1e-5);
        assert_eq!(got[..size], start[..size], "other images untouched");
    }
}

#[test]
fn channel_reduction_matches_the_reference() {
    let dims = [2, 3, 40, 30];
    let values = Rng::new(95).vec(dims.iter().product());
    let a = Tensor::from_slice(gpu(), dims, &values).unwrap();
    for reduction in [ChannelReduction::AbsMax, ChannelReduction::Sum] {
        let got = reduce_channels(&a, reduction).unwrap();
        assert_eq!(got.dims(), [2, 40, 30]);
        let want = reference::reduce_channels(&values, 3, 1200, reduction);
        assert_close("reduce_channels", &got.to_vec().unwrap(), &want, 1e-6, 1e-6);
    }
}

#[test]
fn attribution_kernels_reject_mismatched_shapes() {
    let x = Tensor::from_slice(gpu(), [1, 1, 2, 2], &[0.5; 4]).unwrap();
    let three = Tensor::from_slice(gpu(), [3], &[0.5; 3]).unwrap();
    assert!(
        noisy_copies(&x, 1, 1, 0, 0, 1.0).is_err(),
        "image out of range"
    );
    assert!(noisy_copies(&x, 0, 2, u64::from(u32::MAX) - 1, 0, 1.0).is_err());
    assert!(interpolate(&x, 0, &three, &three).is_err(), "baseline size");
    let g = Tensor::from_slice(gpu(), [4, 1, 2, 2], &[0.5; 16]).unwrap();
    assert!(
        accumulate(&x, 0, &g, &three, false).is_err(),
        "fewer weights than gradients"
    );
    assert!(reduce_channels(&three, ChannelReduction::Sum).is_err());
}
