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

#[test]
fn tile_grids_cover_the_image_with_the_last_tiles_flush() {
    use gradlens::imaging::tiles::TileGrid;
    let grid = TileGrid::new(40, 30, 100, 130).unwrap();
    let positions = grid.positions();
    assert_eq!(positions.first(), Some(&(0, 0)));
    assert_eq!(
        positions.last(),
        Some(&(60, 90)),
        "flush with the far edges"
    );
    let ys: std::collections::BTreeSet<usize> = positions.iter().map(|p| p.0).collect();
    assert_eq!(ys.into_iter().collect::<Vec<_>>(), [0, 30, 60]);
    let xs: std::collections::BTreeSet<usize> = positions.iter().map(|p| p.1).collect();
    assert_eq!(xs.into_iter().collect::<Vec<_>>(), [0, 30, 60, 90]);
    let mut covered = vec![false; 100 * 130];
    for (y, x) in positions {
        for row in y..y + 40 {
            for column in x..x + 40 {
                covered[row * 130 + column] = true;
            }
        }
    }
    assert!(covered.iter().all(|&c| c));
    assert_eq!(TileGrid::new(40, 40, 40, 40).unwrap().positions(), [(0, 0)]);
    for (tile, stride, h, w, needle) in [
        (40, 50, 100, 100, "gaps"),
        (40, 0, 100, 100, "at least 1"),
        (40, 20, 39, 100, "smaller than one tile"),
        (1, 1, 4096, 4096, "more than 65536"),
    ] {
        let error = TileGrid::new(tile, stride, h, w).unwrap_err().to_string();
        assert!(error.contains(needle), "{error}");
    }
}

#[test]
fn stitching_averages_overlaps_and_resizes_tile_maps() {
    use gradlens::imaging::tiles::{Pooling, Stitcher, TileGrid, crop, pool_logits};
    let grid = TileGrid::new(4, 2, 4, 8).unwrap();
    let positions = grid.positions();
    assert_eq!(positions, [(0, 0), (0, 2), (0, 4)]);
    let mut stitcher = Stitcher::new(grid);
    for (k, &position) in positions.iter().enumerate() {
        // Tile k's map is the constant k + 1, given at 2×2 (resized to the tile's 4×4).
        stitcher.add(&[k as f32 + 1.0; 4], 2, position).unwrap();
    }
    assert!(stitcher.add(&[0.0; 3], 2, (0, 0)).is_err());
    let map = stitcher.finish();
    // Columns 0-1: tile 0 only; 2-3: tiles 0 and 1; 4-5: tiles 1 and 2; 6-7: tile 2.
    let expected_row = [1.0, 1.0, 1.5, 1.5, 2.5, 2.5, 3.0, 3.0];
    for row in map.chunks(8) {
        for (got, want) in row.iter().zip(expected_row) {
            assert!((got - want).abs() < 1e-6, "{row:?}");
        }
    }

    let image = gradlens::imaging::Planes {
        channels: 2,
        height: 3,
        width: 4,
        data: (0..24).map(|v| v as f32).collect(),
    };
    let tile = crop(&image, 2, (1, 2));
    assert_eq!(tile.data, [6.0, 7.0, 10.0, 11.0, 18.0, 19.0, 22.0, 23.0]);

    let logits = [1.0, -2.0, 3.0, 0.0];
    assert_eq!(pool_logits(&logits, 2, Pooling::Max), [3.0, 0.0]);
    assert_eq!(pool_logits(&logits, 2, Pooling::Mean), [2.0, -1.0]);
}

/// 16-bit TIFFs keep every level: values that no 8-bit image holds come back exactly as
/// v / 65535, gray and RGB (the RGB planes in order).
#[test]
fn sixteen_bit_tiff_keeps_its_levels() {
    let dir = std::env::temp_dir().join(format!("gradlens-tiff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (width, height) = (13u32, 7u32);
    let level = |x: u32, y: u32, c: u32| ((x * 4099 + y * 977 + c * 20011 + 1) % 65536) as u16;
    let gray: image::ImageBuffer<image::Luma<u16>, Vec<u16>> =
        image::ImageBuffer::from_fn(width, height, |x, y| image::Luma([level(x, y, 0)]));
    let gray_path = dir.join("gray16.tif");
    gray.save(&gray_path).unwrap();
    let planes = gradlens::imaging::load(&gray_path, 1).unwrap();
    let want: Vec<f32> = (0..height)
        .flat_map(|y| (0..width).map(move |x| f32::from(level(x, y, 0)) / 65535.0))
        .collect();
    assert_close("gray16.tif", &planes.data, &want, 0.0, 1e-7);
    assert!(
        want.iter()
            .any(|v| ((v * 255.0).round() / 255.0 - v).abs() > 1e-3)
    );

    let rgb: image::ImageBuffer<image::Rgb<u16>, Vec<u16>> =
        image::ImageBuffer::from_fn(width, height, |x, y| {
            image::Rgb([level(x, y, 0), level(x, y, 1), level(x, y, 2)])
        });
    let rgb_path = dir.join("rgb16.tiff");
    rgb.save(&rgb_path).unwrap();
    let planes = gradlens::imaging::load(&rgb_path, 3).unwrap();
    let want: Vec<f32> = (0..3)
        .flat_map(|c| {
            (0..height)
                .flat_map(move |y| (0..width).map(move |x| f32::from(level(x, y, c)) / 65535.0))
        })
        .collect();
    assert_close("rgb16.tiff", &planes.data, &want, 0.0, 1e-7);
    assert!(gradlens::imaging::is_image_path(&rgb_path));
    std::fs::remove_dir_all(&dir).unwrap();
}
