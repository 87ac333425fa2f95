//! shaders/perturbation.wgsl (the mask arithmetic of meaningful and extremal perturbation)
//! against the CPU reference, whose adjoints and penalty gradient are checked in its own unit
//! tests. The methods themselves are checked on hand-computable cases
//! (tests/saliency_known.rs) and on the lesion set (tests/saliency.rs).

mod common;

use common::{Rng, assert_close, gpu};
use gradlens::Tensor;
use gradlens::kernels::perturbation::{
    KeptCounts, MaskPenalty, Shift, SmoothMasks, blend_pyramid, blend_with_mask, blur_pyramid,
    bump_weights, clamp_to_unit, extremal_mask_gradient, mask_gradient, mask_pixel_gradient,
    replacement_noise,
};
use gradlens::reference::attribution::standard_normal;
use gradlens::reference::perturbation as reference;

fn upload(dims: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_slice(gpu(), dims.to_vec(), data).unwrap()
}

fn scale(values: &[f32]) -> f32 {
    values.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6)
}

/// The blend, the pixel gradient through the shift and the mask gradient through the
/// upsampling, with shifts that clamp at every edge; the second case has more workgroups than
/// tools/test.sh's 64 per grid dimension.
#[test]
fn meaningful_perturbation_kernels_match_the_reference() {
    let mut rng = Rng::new(71);
    let cases = [
        ([2, 3, 13, 17], [4, 5], Shift { dy: 2, dx: -3 }),
        ([1, 3, 130, 130], [17, 17], Shift { dy: -4, dx: 4 }),
        ([1, 1, 9, 8], [9, 8], Shift { dy: 0, dx: 0 }),
    ];
    for (dims, [mh, mw], shift) in cases {
        let [n, _, h, w] = dims;
        let count: usize = dims.iter().product();
        let images = rng.vec(count);
        let replacement = rng.vec(count);
        let g = rng.vec(count);
        let mask: Vec<f32> = rng
            .vec(n * mh * mw)
            .iter()
            .map(|v| v.abs().min(1.0))
            .collect();
        let (it, rt, gt) = (
            upload(&dims, &images),
            upload(&dims, &replacement),
            upload(&dims, &g),
        );
        let mt = upload(&[n, mh, mw], &mask);
        let what = format!("{dims:?} mask {mh}×{mw} {shift:?}");

        let got = blend_with_mask(&it, &rt, &mt, shift)
            .unwrap()
            .to_vec()
            .unwrap();
        let want = reference::blend_with_mask(&images, &replacement, &mask, dims, [mh, mw], shift);
        assert_close(&format!("blend {what}"), &got, &want, 1e-5, 1e-5);

        let pixel = mask_pixel_gradient(&it, &rt, &gt, shift).unwrap();
        let want = reference::mask_pixel_gradient(&images, &replacement, &g, dims, shift);
        assert_close(
            &format!("pixel gradient {what}"),
            &pixel.to_vec().unwrap(),
            &want,
            1e-4,
            1e-5 * scale(&want),
        );

        let penalty = MaskPenalty {
            l1: 0.05,
            tv: 0.3,
            tv_beta: 3.0,
        };
        let got = mask_gradient(&mt, &pixel, penalty)
            .unwrap()
            .to_vec()
            .unwrap();
        let want = reference::mask_gradient(&mask, [n, mh, mw], &want, [h, w], &penalty);
        assert_close(
            &format!("mask gradient {what}"),
            &got,
            &want,
            1e-4,
            1e-5 * scale(&want),
        );
    }
}

/// The masks are exact (the same products of the same bump table, compared in the same order):
/// every winner matches, ties at zero included.
#[test]
fn smooth_masks_and_their_adjoint_match_the_reference() {
    let mut rng = Rng::new(72);
    for (k, [h, w], step, sigma) in [(3, [23, 31], 4, 2.0f32), (2, [120, 96], 7, 7.0)] {
        let smooth = SmoothMasks::new(gpu(), [h, w], step, sigma).unwrap();
        let [gh, gw] = smooth.grid;
        let mut grids: Vec<f32> = rng
            .vec(k * gh * gw)
            .iter()
            .map(|v| v.abs().min(1.0))
            .collect();
        // Zeros scattered, and every grid point of the top half: there every candidate of a
        // pixel is 0 and the bumps break the ties (equal bumps midway between points).
        for (i, value) in grids.iter_mut().enumerate() {
            if i % 3 == 0 || (i % (gh * gw)) / gw < gh / 2 {
                *value = 0.0;
            }
        }
        let (masks, winners) = smooth.apply(&upload(&[k, gh, gw], &grids)).unwrap();
        let bump = bump_weights(sigma);
        let (want, want_winners) =
            reference::smooth_masks(&grids, [k, gh, gw], &bump, step, [h, w]);
        let what = format!("{k} masks of {h}×{w}, step {step}, σ {sigma}");
        assert_eq!(masks.to_vec().unwrap(), want, "masks {what}");
        let got_winners: Vec<u32> = winners
            .to_vec()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(got_winners, want_winners, "winners {what}");

        let grad = rng.vec(k * h * w);
        let got = smooth
            .adjoint(&upload(&[k, h, w], &grad), &winners)
            .unwrap();
        let want =
            reference::smooth_masks_adjoint(&grad, &want_winners, [k, gh, gw], &bump, step, [h, w]);
        assert_close(
            &format!("adjoint {what}"),
            &got.to_vec().unwrap(),
            &want,
            1e-4,
            1e-5 * scale(&want),
        );
    }
}

#[test]
fn the_blur_pyramid_matches_the_reference() {
    let mut rng = Rng::new(73);
    for (dims, levels, max_blur) in [([2, 3, 19, 23], 4, 3.0f32), ([1, 2, 40, 9], 1, 1.5)] {
        let images = rng.vec(dims.iter().product());
        let got = blur_pyramid(&upload(&dims, &images), levels, max_blur).unwrap();
        assert_eq!(got.dims(), [levels, dims[0], dims[1], dims[2], dims[3]]);
        let want = reference::blur_pyramid(&images, [dims[2], dims[3]], levels, max_blur);
        assert_close(
            &format!("pyramid {dims:?}"),
            &got.to_vec().unwrap(),
            &want,
            1e-5,
            1e-5,
        );
    }
}

/// Masks with runs of equal values (zeros and one repeated value) where the threshold falls,
/// and the kept counts 0 and all.
#[test]
fn area_thresholds_blends_and_mask_gradients_match_the_reference() {
    let mut rng = Rng::new(74);
    let ([levels, n, c, h, w], areas) = ([4, 2, 3, 11, 13], 3);
    let plane = h * w;
    let copies = n * areas;
    let mut masks: Vec<f32> = rng
        .vec(copies * plane)
        .iter()
        .map(|v| v.abs().min(1.0))
        .collect();
    for (i, value) in masks.iter_mut().enumerate() {
        match i % 5 {
            0 => *value = 0.0,
            1 => *value = 0.625,
            _ => {}
        }
    }
    let pyramid = rng.vec(levels * n * c * plane);
    let g = rng.vec(copies * c * plane);
    let (pt, mt) = (
        upload(&[levels, n, c, h, w], &pyramid),
        upload(&[copies, h, w], &masks),
    );
    let got = blend_pyramid(&pt, &mt, areas).unwrap().to_vec().unwrap();
    let want = reference::blend_pyramid(&pyramid, [levels, n, c, h, w], &masks, areas);
    assert_close("blend_pyramid", &got, &want, 1e-5, 1e-6);

    for kept in [[0, 40, plane], [1, 90, 130]] {
        let counts = KeptCounts::new(gpu(), [h, w], &kept).unwrap();
        let thresholds = counts.threshold(&mt).unwrap();
        let want = reference::area_threshold(&masks, [copies, h, w], &kept);
        assert_eq!(
            thresholds.to_vec().unwrap(),
            want,
            "thresholds for {kept:?}"
        );
        // The ties at T are split, some kept and some not, in at least one mask.
        let split = want.chunks(2).enumerate().any(|(copy, t)| {
            let mask = &masks[copy * plane..(copy + 1) * plane];
            let tied = |p: &usize| mask[*p] == t[0];
            (0..plane).filter(tied).any(|p| (p as f32) < t[1])
                && (0..plane).filter(tied).any(|p| (p as f32) >= t[1])
        });
        assert!(split, "no threshold falls inside a run of ties: {want:?}");
        let gt = upload(&[copies, c, h, w], &g);
        let got = extremal_mask_gradient(&pt, &mt, areas, &thresholds, &gt, 7.5).unwrap();
        let want = reference::extremal_mask_gradient(
            &pyramid,
            [levels, n, c, h, w],
            &masks,
            areas,
            &want,
            &g,
            7.5,
        );
        assert_close(
            &format!("extremal mask gradient, kept {kept:?}"),
            &got.to_vec().unwrap(),
            &want,
            1e-4,
            1e-5 * scale(&want),
        );
    }
}

#[test]
fn noise_and_clamping_match_the_reference() {
    let dims = [2, 3, 7, 9];
    let noise = replacement_noise(gpu(), dims, 0.5, 0x1234_5678_9abc, 11).unwrap();
    let want: Vec<f32> = (0..dims.iter().product::<usize>() as u32)
        .map(|i| 0.5 * standard_normal(0x1234_5678_9abc, 11, i))
        .collect();
    assert_close(
        "replacement_noise",
        &noise.to_vec().unwrap(),
        &want,
        1e-4,
        1e-5,
    );
    let again = replacement_noise(gpu(), dims, 0.5, 0x1234_5678_9abc, 12).unwrap();
    assert_ne!(
        again.to_vec().unwrap(),
        noise.to_vec().unwrap(),
        "a new sample draws anew"
    );

    let values: Vec<f32> = Rng::new(75).vec(300).iter().map(|v| 3.0 * v).collect();
    let t = upload(&[300], &values);
    clamp_to_unit(&t).unwrap();
    let want: Vec<f32> = values.iter().map(|v| v.clamp(0.0, 1.0)).collect();
    assert_eq!(t.to_vec().unwrap(), want);
}

/// Bad arguments end with a clear error before any dispatch.
#[test]
fn bad_arguments_are_refused() {
    let images = Tensor::zeros(gpu(), [1, 3, 8, 8]).unwrap();
    let mask = Tensor::zeros(gpu(), [2, 2, 2]).unwrap();
    let error = blend_with_mask(&images, &images, &mask, Shift { dy: 0, dx: 0 }).unwrap_err();
    assert!(
        error.to_string().contains("2 masks for 1 images"),
        "{error}"
    );
    assert!(
        SmoothMasks::new(gpu(), [8, 8], 9, 1.0).is_err(),
        "σ too small for the step"
    );
    let masks = Tensor::zeros(gpu(), [3, 4, 4]).unwrap();
    assert!(
        KeptCounts::new(gpu(), [4, 4], &[17]).is_err(),
        "more kept than pixels"
    );
    assert!(
        KeptCounts::new(gpu(), [4, 4], &[1, 2])
            .unwrap()
            .threshold(&masks)
            .is_err(),
        "copies not a multiple of the areas"
    );
    assert!(blur_pyramid(&images, 0, 1.0).is_err());
}

/// The rank threshold at the size it runs at: masks of 40 × 40 (more pixels than a workgroup
/// has invocations, so every loop strides) with long runs of ties spread over indices above
/// 256, and 70 masks (more workgroups than tools/test.sh's 64 per grid dimension).
#[test]
fn area_thresholds_of_many_large_masks_match_the_reference() {
    let mut rng = Rng::new(76);
    let (copies, h, w) = (70, 40, 40);
    let masks: Vec<f32> = rng
        .vec(copies * h * w)
        .iter()
        .enumerate()
        .map(|(i, v)| match i % 7 {
            0 | 1 => 0.0,
            2 => 0.375,
            _ => v.abs().min(1.0),
        })
        .collect();
    let t = Tensor::from_slice(gpu(), [copies, h, w], &masks).unwrap();
    for kept in [[10, 800], [700, 1500]] {
        let counts = KeptCounts::new(gpu(), [h, w], &kept).unwrap();
        let got = counts.threshold(&t).unwrap().to_vec().unwrap();
        let want = reference::area_threshold(&masks, [copies, h, w], &kept);
        assert_eq!(got, want, "kept {kept:?}");
        let tied_firsts = want
            .chunks(2)
            .filter(|t| t[0] == 0.0 || t[0] == 0.375)
            .count();
        assert!(
            tied_firsts > 0,
            "no threshold falls in a run of ties for {kept:?}"
        );
        assert!(
            want.chunks(2).any(|t| t[1] > 256.0),
            "no tie index above 256"
        );
    }
}
