//! shaders/concat.wgsl: channel concatenation and its backward (split) against plain Rust, through
//! `OpCheck`.

mod common;

use common::op_check::{OpCheck, Tolerance};
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
        let inputs: Vec<(Vec<usize>, Vec<f32>)> = parts
            .iter()
            .map(|(data, c)| (vec![batch, *c, h, w], data.clone()))
            .collect();
        let out_channels: usize = channels.iter().sum();
        // The backward is split: a gradient of its own (not the concatenation, which any
        // inverse of concat would split back) into the inputs' slices.
        OpCheck::new(&format!("concat {channels:?}"), inputs)
            .output_shape(&[batch, out_channels, h, w])
            .tolerances(Tolerance::EXACT, Tolerance::EXACT)
            .run(
                |t| concat_channels(&t.iter().collect::<Vec<_>>()),
                |_, g| {
                    Ok(split_channels(g, &channels)?
                        .into_iter()
                        .map(Some)
                        .collect())
                },
                |v| {
                    let parts: Vec<(&[f64], usize)> =
                        v.iter().copied().zip(channels.clone()).collect();
                    oracle::concat_channels(&parts, batch, plane)
                },
                |_, g| {
                    oracle::split_channels(g, &channels, batch, plane)
                        .into_iter()
                        .map(Some)
                        .collect()
                },
            );
        let tensors: Vec<Tensor> = parts
            .iter()
            .map(|(data, c)| Tensor::from_slice(gpu(), [batch, *c, h, w], data).unwrap())
            .collect();
        let out = concat_channels(&tensors.iter().collect::<Vec<_>>()).unwrap();
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
