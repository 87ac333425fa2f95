//! shaders/score_cam.wgsl (Score-CAM's masked copies of an image) against the CPU reference.
//! Score-CAM itself is checked against pytorch-grad-cam (tests/captum.rs) and on the lesion
//! set (tests/saliency.rs).

mod common;

use common::{Rng, gpu};
use gradlens::Tensor;
use gradlens::kernels::score_cam::masked_copies;
use gradlens::reference::score_cam as reference;

/// Upsampling 5×4 maps to 11×9 (samples off the activations' grid, so the upsampled range is
/// not the maps'), 1×1 maps (a constant: scaled to 0), a dead channel (all 0: masks everything), the second image of
/// two with a batch starting part-way through the maps; and enough copies for more workgroups
/// than tools/test.sh's 64 per grid dimension.
#[test]
fn masked_copies_match_the_reference() {
    let mut rng = Rng::new(91);
    for (x_dims, activation_dims, first, count) in [
        ([2, 3, 11, 9], [2, 6, 5, 4], 2, 3),
        ([1, 1, 7, 7], [1, 2, 1, 1], 0, 2),
        ([1, 2, 40, 40], [1, 70, 3, 3], 0, 70),
    ] {
        let [n, ..] = x_dims;
        let values = rng.vec(x_dims.iter().product());
        let mut activations = rng.vec(activation_dims.iter().product());
        let plane = activation_dims[2] * activation_dims[3];
        let constant = ((n - 1) * activation_dims[1] + first) * plane;
        activations[constant..constant + plane].fill(0.0);
        let x = Tensor::from_slice(gpu(), x_dims, &values).unwrap();
        let a = Tensor::from_slice(gpu(), activation_dims, &activations).unwrap();
        let image = n - 1;
        let got = masked_copies(&x, &a, image, first, count)
            .unwrap()
            .to_vec()
            .unwrap();
        let want = reference::masked_copies(
            &values,
            x_dims,
            &activations,
            activation_dims,
            image,
            first,
            count,
        );
        assert_eq!(got.len(), want.len());
        let per_copy = got.len() / count;
        assert!(
            got[..per_copy].iter().all(|&v| v == 0.0),
            "{x_dims:?}: a constant map masks everything"
        );
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= 1e-5,
            "{x_dims:?} from {activation_dims:?}: off by {worst}"
        );
        assert!(
            got.iter().any(|&v| v != 0.0),
            "{x_dims:?}: every copy is black"
        );
    }
}

/// The upsampling at align_corners = true hits both corners of the map exactly and
/// interpolates linearly between them.
#[test]
fn align_corners_upsampling_keeps_the_corners() {
    let up = reference::upsample_align_corners(&[0.0, 3.0], [1, 2], [1, 4]);
    assert_eq!(up, [0.0, 1.0, 2.0, 3.0]);
}

#[test]
fn masked_copies_reject_mismatched_shapes() {
    let x = Tensor::from_slice(gpu(), [1, 1, 4, 4], &[0.5; 16]).unwrap();
    let a = Tensor::from_slice(gpu(), [1, 2, 2, 2], &[0.5; 8]).unwrap();
    for (first, count) in [(1, 2), (3, 1)] {
        assert!(masked_copies(&x, &a, 0, first, count).is_err());
    }
    assert!(
        masked_copies(&x, &a, 1, 0, 1).is_err(),
        "image out of range"
    );
    let two = Tensor::from_slice(gpu(), [2, 2, 2, 2], &[0.5; 16]).unwrap();
    assert!(
        masked_copies(&x, &two, 0, 0, 1).is_err(),
        "activations of another batch"
    );
}
