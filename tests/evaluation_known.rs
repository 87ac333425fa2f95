//! The saliency evaluation's measures on cases whose answer is known without the engine:
//! the energy pointing game by hand, SSIM against skimage, noisy linear imputation on an
//! image it must reproduce exactly, and the randomisation test's damaged stores and blocks.

mod common;

use common::{Rng, gpu};
use gradlens::Tensor;
use gradlens::models::ResNet;
use gradlens::nn::{ParamStore, SplitMix64};
use gradlens::saliency::{
    Explained, blocks_in_forward_order, energy_pointing_game, noisy_linear_imputation, ssim,
};

#[test]
fn energy_pointing_game_is_the_positive_mass_on_the_mask() {
    // Positive mass 1 + 3 + 4 = 8, of which 3 + 4 lie on the mask; the negative value counts
    // for nothing.
    let map = [1.0, -5.0, 3.0, 4.0];
    let mask = [0.0, 1.0, 1.0, 0.9];
    assert_eq!(energy_pointing_game(&map, &mask), 7.0 / 8.0);
    assert_eq!(energy_pointing_game(&[-1.0, 0.0], &[1.0, 1.0]), 0.0);
}

/// Two maps made by a formula, their SSIM from skimage 0.26:
/// `structural_similarity(scaled(a), scaled(b), gaussian_weights=True,
/// use_sample_covariance=False, data_range=1.0)` with scaled(m) = (m − min) / (max − min),
/// the maps as float32 then float64, i = 0..224 in row order of 16 × 14:
/// a = sin(0.37 i) + 0.1 (i mod 7); b = cos(0.23 i) (1 + 0.05 (i mod 5));
/// c = a + 0.25 sin(0.11 i).
#[test]
fn ssim_matches_skimage() {
    let (h, w) = (16, 14);
    let index = || (0..h * w).map(|i| i as f64);
    let a: Vec<f32> = index()
        .map(|i| ((0.37 * i).sin() + 0.1 * (i % 7.0)) as f32)
        .collect();
    let b: Vec<f32> = index()
        .map(|i| ((0.23 * i).cos() * (1.0 + 0.05 * (i % 5.0))) as f32)
        .collect();
    let c: Vec<f32> = index()
        .zip(&a)
        .map(|(i, &a)| (f64::from(a) + 0.25 * (0.11 * i).sin()) as f32)
        .collect();
    for (other, want) in [(&b, 0.007223158722778403), (&c, 0.9508347240922577)] {
        let got = ssim(&a, other, h, w).unwrap();
        assert!(
            (f64::from(got) - want).abs() < 1e-6,
            "SSIM {got}, skimage {want}"
        );
    }
    // Scaled first: a map and an affine copy of it are the same map.
    let affine: Vec<f32> = a.iter().map(|v| 3.0 * v + 2.0).collect();
    assert!((ssim(&a, &affine, h, w).unwrap() - 1.0).abs() < 1e-6);
    assert_eq!(
        ssim(&a[..100], &b[..100], 10, 10),
        None,
        "under the 11-pixel window"
    );
    assert_eq!(ssim(&a, &vec![0.0; h * w], h, w), None, "a constant map");
}

/// A linear ramp is its own weighted neighbour mean wherever all 8 neighbours lie in the
/// image: a hole away from the border is filled exactly (noise 0), kept pixels are untouched,
/// and with noise the filled pixels scatter around the ramp by the noise's deviation.
#[test]
fn noisy_linear_imputation_fills_a_ramp_exactly() {
    let (h, w) = (24, 20);
    let ramp: Vec<f32> = (0..2)
        .flat_map(|c| {
            (0..h * w).map(move |p| {
                let (y, x) = ((p / w) as f32, (p % w) as f32);
                0.3 * y - 0.2 * x + c as f32
            })
        })
        .collect();
    // An irregular hole: rows 3..=19, columns 4..=14, less a notch.
    let removed: Vec<bool> = (0..h * w)
        .map(|p| {
            let (y, x) = (p / w, p % w);
            (3..=19).contains(&y) && (4..=14).contains(&x) && !(y < 8 && x > 11)
        })
        .collect();
    let holes = removed.iter().filter(|&&r| r).count();
    let filled =
        noisy_linear_imputation(&ramp, [2, h, w], &removed, 0.0, &mut SplitMix64::new(1)).unwrap();
    let worst = filled
        .iter()
        .zip(&ramp)
        .map(|(f, r)| (f - r).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "the ramp is off by {worst}");

    let noisy =
        noisy_linear_imputation(&ramp, [2, h, w], &removed, 0.05, &mut SplitMix64::new(2)).unwrap();
    let mut deviations = Vec::new();
    for (i, (n, r)) in noisy.iter().zip(&ramp).enumerate() {
        if removed[i % (h * w)] {
            deviations.push(f64::from(n - r));
        } else {
            assert_eq!(n.to_bits(), r.to_bits(), "kept pixel {i} changed");
        }
    }
    assert_eq!(deviations.len(), 2 * holes);
    let std = (deviations.iter().map(|d| d * d).sum::<f64>() / deviations.len() as f64).sqrt();
    assert!((std - 0.05).abs() < 0.01, "noise deviation {std}");
}

/// Imputation is a weighted mean of neighbours: on random images it stays within the kept
/// values' range (a maximum principle), whatever share is removed.
#[test]
fn noisy_linear_imputation_stays_within_the_kept_range() {
    let (h, w) = (17, 13);
    let image = Rng::new(5).vec(h * w);
    let mut rng = SplitMix64::new(4);
    for share in [0.1, 0.5, 0.9] {
        let removed: Vec<bool> = (0..h * w).map(|_| rng.uniform() < share).collect();
        let kept = || (0..h * w).filter(|&p| !removed[p]).map(|p| image[p]);
        let (low, high) = (
            kept().fold(f32::INFINITY, f32::min),
            kept().fold(f32::NEG_INFINITY, f32::max),
        );
        let filled = noisy_linear_imputation(&image, [1, h, w], &removed, 0.0, &mut rng).unwrap();
        for (p, v) in filled.iter().enumerate() {
            assert!(
                *v >= low - 1e-5 && *v <= high + 1e-5,
                "share {share}: pixel {p} = {v} outside [{low}, {high}]"
            );
        }
    }
}

/// ResNet's blocks in forward order, and a store with the last two reset: exactly those
/// blocks' tensors change (BatchNorm to its fresh state), every other is the trained one.
#[test]
fn randomisation_resets_exactly_the_named_blocks() {
    let mut store = ParamStore::new(gpu());
    let model = ResNet::with_width(&mut store, "resnet18", 1, 2, 8, 3).unwrap();
    // "Trained" values unlike any fresh ones (BatchNorm's included), all positive.
    let mut rng = Rng::new(8);
    let names: Vec<(String, Vec<usize>)> = store
        .shapes()
        .map(|(name, dims, _)| (name.to_string(), dims.to_vec()))
        .collect();
    for (name, dims) in names {
        let values: Vec<f32> = rng
            .vec(dims.iter().product())
            .iter()
            .map(|v| v.abs() + 0.5)
            .collect();
        store
            .set(&name, Tensor::from_slice(gpu(), dims, &values).unwrap())
            .unwrap();
    }
    let x = Tensor::from_slice(gpu(), [1, 1, 32, 32], &Rng::new(6).vec(32 * 32)).unwrap();
    let explained = Explained {
        model: &model,
        store: &store,
    };
    let blocks = blocks_in_forward_order(explained, &x).unwrap();
    let want = [
        "conv1", "bn1", "layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1",
        "layer4.0", "layer4.1", "fc",
    ];
    assert_eq!(blocks, want);
    let reset = store.with_blocks_reset(&["layer4.1", "fc"], 7).unwrap();
    for (name, tensor) in store.parameters().chain(store.buffers()) {
        let before = tensor.to_vec().unwrap();
        let after = reset.get(name).unwrap().to_vec().unwrap();
        let changed = before != after;
        let in_reset = name.starts_with("layer4.1.") || name.starts_with("fc.");
        if name == "layer4.1.bn2.running_var" || name == "layer4.1.bn1.weight" {
            assert!(after.iter().all(|&v| v == 1.0), "{name}: {after:?}");
        } else if name.ends_with("running_mean") && in_reset {
            assert!(after.iter().all(|&v| v == 0.0), "{name}");
        } else {
            assert_eq!(changed, in_reset, "{name}: changed {changed}");
        }
        if name == "fc.weight" {
            // U(-1/√fan_in, 1/√fan_in), fan_in = 64 (width 8 · 8 at layer4).
            assert!(after.iter().all(|v| v.abs() <= 0.125), "{name}");
        }
    }
}

/// One removed pixel with all its neighbours kept is their weighted mean: 1/6 for the four
/// edge neighbours, 1/12 for the four diagonal ones (ROAD's weights); at a corner, the three
/// neighbours' weights renormalised.
#[test]
fn one_removed_pixel_is_its_neighbours_weighted_mean() {
    let (h, w) = (5, 6);
    let image = Rng::new(9).vec(h * w);
    let at = |y: usize, x: usize| f64::from(image[y * w + x]);
    let mut removed = vec![false; h * w];
    removed[2 * w + 3] = true;
    removed[0] = true;
    let filled =
        noisy_linear_imputation(&image, [1, h, w], &removed, 0.0, &mut SplitMix64::new(1)).unwrap();
    let edges = at(1, 3) + at(3, 3) + at(2, 2) + at(2, 4);
    let diagonals = at(1, 2) + at(1, 4) + at(3, 2) + at(3, 4);
    let interior = edges / 6.0 + diagonals / 12.0;
    let corner = (at(0, 1) / 6.0 + at(1, 0) / 6.0 + at(1, 1) / 12.0) / (1.0 / 3.0 + 1.0 / 12.0);
    assert!((f64::from(filled[2 * w + 3]) - interior).abs() < 1e-5);
    assert!((f64::from(filled[0]) - corner).abs() < 1e-5);
}
