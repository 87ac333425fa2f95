//! Image preprocessing: resize against PIL, centre crop as torchvision, colormaps, decoding.

mod common;

use common::assert_close;
use gradlens::imaging::{Colormap, Planes, Preprocess, Sizing, center_crop, resize};
use gradlens::weights::WeightsFile;

#[test]
fn resize_matches_pil_bilinear() {
    let file =
        WeightsFile::open(std::path::Path::new("tests/fixtures/resize.safetensors")).unwrap();
    let input = file.get("input").unwrap();
    let planes = Planes {
        channels: 1,
        height: 20,
        width: 30,
        data: input.data.clone(),
    };
    for name in ["down", "up", "mixed"] {
        let want = file.get(name).unwrap();
        let got = resize(&planes, want.dims[0], want.dims[1]);
        assert_close(&format!("resize {name}"), &got.data, &want.data, 1e-5, 1e-5);
    }
}

#[test]
fn center_crop_and_preprocess_follow_torchvision() {
    let data: Vec<f32> = (0..2 * 5 * 8).map(|v| v as f32).collect();
    let planes = Planes {
        channels: 2,
        height: 5,
        width: 8,
        data,
    };
    let crop = center_crop(&planes, 3, 3);
    // top = round((5 − 3) / 2) = 1, left = round((8 − 3) / 2) = round(2.5) = 2 (Python rounds
    // half to even: 2).
    assert_eq!(crop.data[..3], [10.0, 11.0, 12.0]);
    assert_eq!(crop.data[9], 40.0 + 10.0);
    let preprocess = Preprocess {
        channels: 2,
        sizing: Sizing::Whole { size: 4 },
        mean: vec![1.0, 2.0],
        std: vec![2.0, 4.0],
    };
    let constant = Planes {
        channels: 2,
        height: 5,
        width: 8,
        data: vec![3.0; 80],
    };
    let out = preprocess.apply(&constant).unwrap();
    assert_eq!((out.height, out.width), (4, 4));
    assert!(out.data[..16].iter().all(|&v| (v - 1.0).abs() < 1e-6));
    assert!(out.data[16..].iter().all(|&v| (v - 0.25).abs() < 1e-6));
}

#[test]
fn colormaps_run_dark_to_bright() {
    for map in [Colormap::Inferno, Colormap::Viridis] {
        let luminance = |t: f32| {
            let [r, g, b] = map.color(t);
            0.2126 * r + 0.7152 * g + 0.0722 * b
        };
        let samples: Vec<f32> = (0..=10).map(|i| luminance(i as f32 / 10.0)).collect();
        assert!(
            samples.windows(2).all(|w| w[1] > w[0]),
            "{map:?}: {samples:?}"
        );
    }
    assert!(Colormap::Inferno.color(0.0).iter().all(|&c| c < 0.05));
}
