//! shaders/concat.wgsl: channel concatenation and its backward (split) against plain Rust.

mod common;

use common::{Rng, gpu};
use gradlens::kernels::concat::{concat_channels, split_channels};
use gradlens::{Error, Tensor};

/// torch.cat(dim=1) on host data.
fn concat_reference(parts: &[(Vec<f32>, usize)], batch: usize, plane: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for n in 0..batch {
        for (data, channels) in parts {
            out.extend_from_slice(&data[n * channels * plane..(n + 1) * channels * plane]);
        }
    }
    out
}

#[test]
fn concat_and_split_are_inverse_and_match_torch_cat() {
    let mut rng = Rng::new(70);
    for (batch, h, w, channels) in [
        (1, 5, 7, vec![3, 1, 6]),
        (3, 4, 4, vec![64, 32]),
        (2, 1, 1, vec![5]),
    ] {
        let plane = h * w;
        let parts: Vec<(Vec<f32>, usize)> = channels
            .iter()
            .map(|&c| (rng.vec(batch * c * plane), c))
            .collect();
        let tensors: Vec<Tensor> = parts
            .iter()
            .map(|(data, c)| Tensor::from_slice(gpu(), [batch, *c, h, w], data).unwrap())
            .collect();
        let refs: Vec<&Tensor> = tensors.iter().collect();
        let out = concat_channels(&refs).unwrap();
        assert_eq!(out.dims(), &[batch, channels.iter().sum(), h, w]);
        let got = out.to_vec().unwrap();
        assert_eq!(
            got,
            concat_reference(&parts, batch, plane),
            "concat {channels:?}"
        );

        let split = split_channels(&out, &channels).unwrap();
        for (part, (data, _)) in split.iter().zip(&parts) {
            assert_eq!(&part.to_vec().unwrap(), data, "split {channels:?}");
        }
    }
}

#[test]
fn mismatched_inputs_are_refused() {
    let a = Tensor::zeros(gpu(), [1, 2, 4, 4]).unwrap();
    let b = Tensor::zeros(gpu(), [1, 2, 4, 5]).unwrap();
    assert!(matches!(
        concat_channels(&[&a, &b]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(concat_channels(&[]).is_err());
    let error = split_channels(&a, &[1, 2]).unwrap_err().to_string();
    assert!(error.contains("do not add up"), "{error}");
}
