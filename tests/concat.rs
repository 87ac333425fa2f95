//! shaders/concat.wgsl: channel concatenation and its backward (split) against plain Rust.

mod common;

use common::{Rng, gpu};
use gradlens::kernels::concat::{concat_channels, split_channels};
use gradlens::reference::concat as oracle;
use gradlens::{Error, Tensor};

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
        let borrowed: Vec<(&[f32], usize)> =
            parts.iter().map(|(d, c)| (d.as_slice(), *c)).collect();
        let want = oracle::concat_channels(&borrowed, batch, plane);
        assert_eq!(out.to_vec().unwrap(), want, "concat {channels:?}");

        // The backward: a gradient of its own (not the concatenation, which any inverse of
        // concat would split back) split into the inputs' slices.
        let gradient = rng.vec(want.len());
        let grad = Tensor::from_slice(gpu(), out.dims().to_vec(), &gradient).unwrap();
        let split = split_channels(&grad, &channels).unwrap();
        let want_split = oracle::split_channels(&gradient, &channels, batch, plane);
        for (part, want) in split.iter().zip(&want_split) {
            assert_eq!(&part.to_vec().unwrap(), want, "split {channels:?}");
        }
        // And split undoes concat.
        for (part, (data, _)) in split_channels(&out, &channels).unwrap().iter().zip(&parts) {
            assert_eq!(
                &part.to_vec().unwrap(),
                data,
                "split of concat {channels:?}"
            );
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
