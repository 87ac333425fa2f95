//! shaders/cam.wgsl (class activation maps from activations and gradients, and their bilinear
//! upsampling) against the CPU reference. The methods themselves are checked against
//! pytorch-grad-cam and Captum (tests/captum.rs) and on the lesion set (tests/saliency.rs).

mod common;

use common::{Rng, assert_close, gpu};
use gradlens::Tensor;
use gradlens::kernels::cam::{
    Cam, class_activation_map, scale_by_nearest, upsample_maps, weighted_map,
};
use gradlens::reference::cam as reference;

/// Every kind on two images of 5 channels of 6 × 7, with gradients of both signs and exact
/// zeros (Grad-CAM++ skips those); and enough positions for more workgroups than
/// tools/test.sh's 64 per grid dimension.
#[test]
fn class_activation_maps_match_the_reference() {
    let mut rng = Rng::new(96);
    for dims in [[2, 5, 6, 7], [1, 3, 130, 130]] {
        let count = dims.iter().product();
        let a: Vec<f32> = rng.vec(count).iter().map(|v| v.abs()).collect();
        let mut g = rng.vec(count);
        for value in g.iter_mut().step_by(7) {
            *value = 0.0;
        }
        let (at, gt) = (
            Tensor::from_slice(gpu(), dims, &a).unwrap(),
            Tensor::from_slice(gpu(), dims, &g).unwrap(),
        );
        for kind in [
            Cam::GradCam,
            Cam::GradCamPlusPlus,
            Cam::HiResCam,
            Cam::LayerCam,
        ] {
            let got = class_activation_map(&at, &gt, kind).unwrap();
            assert_eq!(got.dims(), [dims[0], dims[2], dims[3]]);
            let want = reference::class_activation_map(&a, &g, dims, kind);
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            assert_close(
                &format!("{kind:?} {dims:?}"),
                &got.to_vec().unwrap(),
                &want,
                1e-4,
                1e-5 * scale,
            );
            assert!(
                want.iter().any(|&v| v > 0.0),
                "{kind:?}: an all-zero map tests little"
            );
        }
        let weights = rng.vec(dims[0] * dims[1]);
        let wt = Tensor::from_slice(gpu(), [dims[0], dims[1]], &weights).unwrap();
        let got = weighted_map(&at, &wt).unwrap().to_vec().unwrap();
        assert_close(
            "weighted_map",
            &got,
            &reference::weighted_map(&a, &weights, dims),
            1e-4,
            1e-5,
        );
    }
}

/// Up by 32 (7 → 224, as ResNet's last block to its input), by a fraction, and down.
#[test]
fn map_upsampling_matches_the_reference() {
    let mut rng = Rng::new(97);
    for (n, h, w, height, width) in [(2, 7, 7, 224, 224), (1, 5, 3, 12, 7), (1, 9, 9, 4, 5)] {
        let maps = rng.vec(n * h * w);
        let t = Tensor::from_slice(gpu(), [n, h, w], &maps).unwrap();
        let got = upsample_maps(&t, height, width).unwrap();
        assert_eq!(got.dims(), [n, height, width]);
        let want = reference::upsample_bilinear(&maps, [n, h, w], [height, width]);
        assert_close("upsample_maps", &got.to_vec().unwrap(), &want, 1e-5, 1e-6);
    }
}

/// Guided Grad-CAM's product: 7 × 7 maps onto 3 channels of 20 × 22 (uneven source cells)
/// and a map of the input's own size.
#[test]
fn nearest_scaling_matches_the_reference() {
    let mut rng = Rng::new(98);
    for ([n, c, height, width], [h, w]) in [([2, 3, 20, 22], [7, 7]), ([1, 1, 5, 5], [5, 5])] {
        let attribution = rng.vec(n * c * height * width);
        let cam = rng.vec(n * h * w);
        let a = Tensor::from_slice(gpu(), [n, c, height, width], &attribution).unwrap();
        let m = Tensor::from_slice(gpu(), [n, h, w], &cam).unwrap();
        let got = scale_by_nearest(&a, &m).unwrap().to_vec().unwrap();
        let want = reference::scale_by_nearest(&attribution, [n, c, height, width], &cam, [h, w]);
        assert_close("scale_by_nearest", &got, &want, 1e-6, 1e-7);
    }
}

#[test]
fn cam_kernels_reject_mismatched_shapes() {
    let a = Tensor::from_slice(gpu(), [1, 2, 3, 3], &[0.5; 18]).unwrap();
    let g = Tensor::from_slice(gpu(), [1, 2, 3, 2], &[0.5; 12]).unwrap();
    assert!(class_activation_map(&a, &g, Cam::GradCam).is_err());
    let weights = Tensor::from_slice(gpu(), [1, 3], &[0.5; 3]).unwrap();
    assert!(weighted_map(&a, &weights).is_err());
    assert!(upsample_maps(&a, 4, 4).is_err(), "not maps [N, H, W]");
    let two = Tensor::from_slice(gpu(), [2, 3, 3], &[0.5; 18]).unwrap();
    assert!(scale_by_nearest(&a, &two).is_err(), "maps of another batch");
}
