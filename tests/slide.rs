//! Whole-slide images: the tiled TIFF reader against the pixels written (by gradlens's writer
//! and by tifffile), tissue detection against the generated layout, the streaming Deep Zoom
//! pyramid against its definition, and `gradlens slide` through the binary: each tissue
//! tile's probabilities and heat against the same tile classified and explained alone, and
//! a 40 000 × 40 000 slide in bounded memory.

mod common;

use std::path::{Path, PathBuf};

use common::binary::{gradlens, text};
use gradlens::imaging::slide::{
    Compression, DeepZoom, Slide, SyntheticSlide, TileFormat, TissueMask,
};
use gradlens::imaging::{Preprocess, Sizing};

fn folder(test: &str) -> PathBuf {
    common::binary::folder("slide", test)
}

/// RGB bytes as planes [3, h, w] in [0, 1].
fn planes(rgb: &[u8], width: usize, height: usize) -> Vec<f32> {
    let plane = width * height;
    let mut data = vec![0.0; 3 * plane];
    for (p, pixel) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            data[c * plane + p] = f32::from(pixel[c]) / 255.0;
        }
    }
    data
}

fn mean_abs_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .sum::<f32>()
        / want.len() as f32
}

#[test]
fn regions_read_back_exactly_as_written() {
    let dir = folder("regions");
    let slide = SyntheticSlide::new((600, 420), 2, 3);
    for (big, compression) in [(false, Compression::None), (true, Compression::Deflate)] {
        let path = dir.join(format!("slide_{big}.tif"));
        slide.write(&path, big, compression, 128, 3).unwrap();
        let mut opened = Slide::open(&path).unwrap();
        let sizes: Vec<(usize, usize)> = opened
            .levels()
            .iter()
            .map(|l| (l.width, l.height))
            .collect();
        assert_eq!(sizes, [(600, 420), (300, 210), (150, 105)]);
        let regions = [
            (0, (0, 0), (600, 420)),
            (0, (100, 90), (200, 100)),
            // Four tiles' corners meet at (128, 128).
            (0, (126, 126), (4, 4)),
            (0, (590, 410), (10, 10)),
            (1, (50, 40), (250, 170)),
            (2, (0, 0), (150, 105)),
        ];
        for (level, at, size) in regions {
            let want = planes(&slide.region(at, size, 1 << level), size.0, size.1);
            let got = opened.read_region(level, at, size).unwrap();
            assert_eq!((got.width, got.height), size);
            assert!(
                got.data == want,
                "{big} {compression:?}: level {level} {size:?} at {at:?} differs"
            );
        }
        // Outside the level: refused, not clipped.
        assert!(opened.read_region(0, (590, 0), (20, 10)).is_err());
        assert!(opened.read_region(3, (0, 0), (1, 1)).is_err());
    }
    // The image crate's own decoder (the whole first directory at once) reads the writer's
    // file as the tile reader does.
    let path = dir.join("slide_false.tif");
    let whole = image::open(&path).unwrap().into_rgb8();
    assert_eq!(whole.into_raw(), slide.region((0, 0), (600, 420), 1));
}

/// JPEG tiles, each a whole stream, and as Aperio's scanners store them: abbreviated streams
/// sharing the JPEGTables tag, a thumbnail in strips after the full resolution and a label at
/// the end, which are not levels.
#[test]
fn jpeg_tiles_read_within_jpeg_error() {
    let dir = folder("jpeg");
    let slide = SyntheticSlide::new((512, 384), 2, 8);
    for svs in [false, true] {
        let path = dir.join(format!("slide_{svs}.tif"));
        match svs {
            false => slide
                .write(&path, false, Compression::Jpeg, 128, 3)
                .unwrap(),
            true => slide.write_like_svs(&path, false, 128, 3).unwrap(),
        }
        let mut opened = Slide::open(&path).unwrap();
        let sizes: Vec<(usize, usize)> = opened
            .levels()
            .iter()
            .map(|l| (l.width, l.height))
            .collect();
        assert_eq!(sizes, [(512, 384), (256, 192), (128, 96)], "svs {svs}");
        for (level, (width, height)) in sizes.into_iter().enumerate() {
            let want = planes(
                &slide.region((0, 0), (width, height), 1 << level),
                width,
                height,
            );
            let got = opened
                .read_region(level, (0, 0), (width, height))
                .unwrap()
                .data;
            let mean_error = mean_abs_error(&got, &want);
            // Quality 90 with 4:2:0 chroma on a texture of one-pixel nuclei edges; a YCbCr tile
            // read as RGB (the conversion forgotten) is off by about 0.3.
            assert!(
                mean_error < 0.02,
                "svs {svs}, level {level}: mean error {mean_error}"
            );
        }
    }
}

/// Pyramids written by tifffile (tools/make_slide_fixtures.py): RGB BigTIFF with deflate,
/// 16-bit gray with LZW (every bit kept), and
/// JPEG (YCbCr, 4:2:0) tiles; the expected pixels are tifffile's own decoding (libjpeg through
/// imagecodecs), saved as PNG. JPEG decoders may differ where they upsample the chroma: libjpeg
/// interpolates it, zune-jpeg (under the tiff crate) need not, which moves the colour of
/// one-pixel dots by up to about 20 levels; the mean difference stays within one level. A tile
/// misplaced, or YCbCr read as RGB, is off by tens of levels on average.
#[test]
fn slides_written_by_tifffile_read_as_tifffile_reads_them() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/slide");
    for (name, worst_allowed, mean_allowed) in [
        ("deflate_bigtiff", 0.0f32, 0.0f32),
        ("jpeg_ycbcr", 32.0 / 255.0, 1.0 / 255.0),
        ("lzw_gray16", 0.0, 0.0),
    ] {
        let mut slide = Slide::open(&fixtures.join(format!("{name}.tif"))).unwrap();
        assert_eq!(slide.levels().len(), 2, "{name}");
        for level in 0..2 {
            // 8-bit RGB, or 16-bit gray as v / 65535 in all three channels.
            let expected = image::open(fixtures.join(format!("{name}_level{level}.png")))
                .unwrap()
                .into_rgb32f();
            let (width, height) = (expected.width() as usize, expected.height() as usize);
            let info = slide.levels()[level];
            assert_eq!((info.width, info.height), (width, height), "{name}");
            let plane = width * height;
            let mut want = vec![0.0f32; 3 * plane];
            for (p, pixel) in expected.as_raw().chunks_exact(3).enumerate() {
                for c in 0..3 {
                    want[c * plane + p] = pixel[c];
                }
            }
            let got = slide
                .read_region(level, (0, 0), (width, height))
                .unwrap()
                .data;
            let worst = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0.0f32, f32::max);
            let mean = mean_abs_error(&got, &want);
            assert!(
                worst <= worst_allowed + 1e-6 && mean <= mean_allowed + 1e-6,
                "{name} level {level}: worst {worst}, mean {mean}"
            );
        }
    }
}

#[test]
fn tissue_is_told_from_glass() {
    let dir = folder("tissue");
    let layout = SyntheticSlide::new((2000, 1600), 3, 11);
    let path = dir.join("slide.tif");
    layout
        .write(&path, false, Compression::Deflate, 256, 4)
        .unwrap();
    let mut slide = Slide::open(&path).unwrap();
    let (thumbnail, _) = slide.thumbnail(512).unwrap();
    assert!(thumbnail.width <= 512 && thumbnail.height <= 512);
    let mask = TissueMask::new(&thumbnail, slide.is_gray());
    let size = (2000, 1600);
    for section in &layout.sections {
        // A 64-pixel tile at the section's centre is tissue; one a radius and a half away
        // (clamped inside the slide) on glass unless another section lies there.
        let centre = (section.x as usize - 32, section.y as usize - 32);
        assert!(mask.fraction(centre, (64, 64), size) > 0.9, "{section:?}");
    }
    let glass = (0..2000 - 64)
        .step_by(64)
        .flat_map(|x| (0..1600 - 64).step_by(64).map(move |y| (x, y)))
        .filter(|&(x, y)| {
            layout.sections.iter().all(|s| {
                let (cx, cy) = (x as f64 + 32.0, y as f64 + 32.0);
                ((cx - s.x).powi(2) + (cy - s.y).powi(2)).sqrt() > s.radius * 1.5
            })
        })
        .collect::<Vec<_>>();
    assert!(glass.len() > 100);
    for at in glass {
        assert_eq!(mask.fraction(at, (64, 64), size), 0.0, "{at:?}");
    }
}

#[test]
fn deep_zoom_levels_halve_down_to_one_pixel() {
    let dir = folder("deep_zoom");
    let (width, height) = (600usize, 300usize);
    let value = |x: usize, y: usize| ((x * 7 + y * 13) % 256) as f32 / 255.0;
    let mut pyramid = DeepZoom::create(
        &dir,
        "test",
        (width, height),
        1,
        TileFormat::Png,
        Box::new(|v| {
            let b = (v[0] * 255.0).round() as u8;
            [b, b, b, 255]
        }),
    )
    .unwrap()
    .keeping(100);
    // Rows arrive in uneven bands, as a slide's bands of tiles do at its bottom edge.
    let mut y = 0;
    for band in [37, 100, 1, 162] {
        let rows: Vec<f32> = (y..y + band)
            .flat_map(|row| (0..width).map(move |x| value(x, row)))
            .collect();
        pyramid.push_rows(&rows).unwrap();
        y += band;
    }
    assert_eq!(y, height);
    let (kept_width, kept_height, kept) = pyramid.finish().unwrap().unwrap();
    // 600 → 300 → 150 → 75: the largest level within 100 pixels.
    assert_eq!((kept_width, kept_height, kept.len()), (75, 38, 75 * 38));
    let descriptor = std::fs::read_to_string(dir.join("test.dzi")).unwrap();
    assert!(descriptor.contains("TileSize=\"256\" Overlap=\"0\" Format=\"png\""));
    assert!(descriptor.contains("<Size Width=\"600\" Height=\"300\"/>"));
    // ⌈log2 600⌉ = 10: levels 0 (1 × 1) to 10 (600 × 300).
    for level in 0..=10usize {
        let shift = 10 - level;
        let (w, h) = (width.div_ceil(1 << shift), height.div_ceil(1 << shift));
        let files = std::fs::read_dir(dir.join("test_files").join(level.to_string()))
            .unwrap()
            .count();
        assert_eq!(files, w.div_ceil(256) * h.div_ceil(256), "level {level}");
        let last = image::open(dir.join("test_files").join(level.to_string()).join(format!(
            "{}_{}.png",
            (w - 1) / 256,
            (h - 1) / 256
        )))
        .unwrap();
        assert_eq!(
            (last.width() as usize, last.height() as usize),
            ((w - 1) % 256 + 1, (h - 1) % 256 + 1),
            "level {level}"
        );
    }
    // Full size: the values themselves; one level down: means of 2 × 2.
    let top = image::open(dir.join("test_files/10/1_1.png"))
        .unwrap()
        .into_luma8();
    assert_eq!(
        top.get_pixel(3, 5)[0],
        (value(259, 261) * 255.0).round() as u8
    );
    let below = image::open(dir.join("test_files/9/0_0.png"))
        .unwrap()
        .into_luma8();
    let mean = (value(20, 30) + value(21, 30) + value(20, 31) + value(21, 31)) / 4.0;
    assert_eq!(below.get_pixel(10, 15)[0], (mean * 255.0).round() as u8);
}

/// An (untrained) narrow RGB ResNet-18 checkpoint, input 40 × 40, two classes.
fn model(dir: &Path) -> PathBuf {
    let preprocess = Preprocess {
        channels: 3,
        sizing: Sizing::Whole { size: 40 },
        mean: vec![0.8, 0.6, 0.7],
        std: vec![0.2, 0.2, 0.2],
    };
    common::binary::narrow_checkpoint(dir, ["tissue", "lesion"], preprocess)
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Every tissue tile's line and heat are what the same tile gives alone through `classify`
/// and `saliency`; glass tiles are skipped and transparent; the pyramids and the overview
/// have the level's size.
#[test]
fn slide_tiles_match_the_same_tiles_explained_alone() {
    let dir = folder("binary");
    let weights = model(&dir);
    let w = weights.to_str().unwrap();
    let layout = SyntheticSlide::new((520, 360), 2, 4);
    let path = dir.join("slide.tif");
    layout
        .write(&path, false, Compression::Deflate, 64, 2)
        .unwrap();
    let out = dir.join("out");
    let output = gradlens(&[
        "slide",
        path.to_str().unwrap(),
        "--weights",
        w,
        "--out",
        out.to_str().unwrap(),
        "--class",
        "lesion",
        "--method",
        "gradient",
        "--tile",
        "40",
        "--downsample",
        "1",
        "--batch",
        "5",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("slide.json")).unwrap()).unwrap();
    let lines = json_lines(&out.join("tiles.jsonl"));
    // 13 × 9 tiles of 40 (the last row and column cut to 0 and 0 pixels are not tiles).
    assert_eq!(summary["tiles"], 13 * 9);
    assert_eq!(summary["tissue_tiles"], lines.len());
    assert!(lines.len() >= 4 && lines.len() < 13 * 9, "{}", lines.len());
    assert!(summary["peak_rss_bytes"].as_u64().unwrap() > 0);
    let heat_top = image::open(out.join("heatmap_files/10/0_0.png"))
        .unwrap()
        .into_rgba8();
    assert_eq!((heat_top.width(), heat_top.height()), (256, 256));
    let heat_alpha = |x: usize, y: usize| -> u8 {
        let (tile_x, tile_y) = (x / 256, y / 256);
        let file = out.join(format!("heatmap_files/10/{tile_x}_{tile_y}.png"));
        let tile = image::open(file).unwrap().into_rgba8();
        tile.get_pixel((x % 256) as u32, (y % 256) as u32)[3]
    };
    let mut analysed = std::collections::HashSet::new();
    for line in &lines {
        let (x, y) = (
            line["x"].as_u64().unwrap() as usize,
            line["y"].as_u64().unwrap() as usize,
        );
        assert_eq!((x % 40, y % 40), (0, 0));
        assert!(line["tissue"].as_f64().unwrap() >= 0.2);
        assert_eq!(line["class_name"], "lesion");
        analysed.insert((x, y));
    }
    // A glass tile: no line, transparent heat.
    let glass = (0..13 * 9)
        .map(|i| ((i % 13) * 40, (i / 13) * 40))
        .find(|&(x, y)| {
            !analysed.contains(&(x, y))
                && layout
                    .region((x, y), (40, 40), 1)
                    .chunks(3)
                    .all(|p| p == [242, 240, 238])
        })
        .expect("a glass tile");
    assert_eq!(heat_alpha(glass.0 + 20, glass.1 + 20), 0);

    // Two tissue tiles alone, as PNG files of the same pixels.
    for line in lines.iter().take(2) {
        let (x, y) = (
            line["x"].as_u64().unwrap() as usize,
            line["y"].as_u64().unwrap() as usize,
        );
        let tile = dir.join(format!("tile_{x}_{y}.png"));
        image::save_buffer(
            &tile,
            &layout.region((x, y), (40, 40), 1),
            40,
            40,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
        let t = tile.to_str().unwrap();
        let output = gradlens(&["classify", t, "--weights", w, "--json"]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let alone: serde_json::Value = serde_json::from_str(text(&output.stdout).trim()).unwrap();
        let top = &alone["results"][0]["top"];
        let lesion = top
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["name"] == "lesion")
            .unwrap()["probability"]
            .as_f64()
            .unwrap();
        let probability = line["probabilities"]["lesion"].as_f64().unwrap();
        assert!(
            (probability - lesion).abs() < 1e-5,
            "{probability} vs {lesion}"
        );

        let raw = dir.join(format!("tile_{x}_{y}.safetensors"));
        let output = gradlens(&[
            "saliency",
            t,
            "--weights",
            w,
            "--method",
            "gradient",
            "--class",
            "lesion",
            "--raw-out",
            raw.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let map = gradlens::weights::WeightsFile::open(&raw).unwrap();
        let map = &map.get("saliency").unwrap().data;
        let mut sorted: Vec<f32> = map.iter().map(|v| v.abs()).collect();
        sorted.sort_by(f32::total_cmp);
        let high = sorted[(sorted.len() - 1) * 99 / 100];
        assert!(high > 0.0, "tile ({x}, {y}): a gradient map of zeros");
        let mut checked = 0;
        for row in 0..40 {
            for column in 0..40 {
                let heat = (map[row * 40 + column].abs() / high).min(1.0) * probability as f32;
                let want = (heat * 255.0).round();
                let got = f32::from(heat_alpha(x + column, y + row));
                assert!(
                    (got - want).abs() <= 1.0,
                    "tile ({x}, {y}) pixel ({column}, {row}): alpha {got}, want {want}"
                );
                checked += usize::from(want > 0.0);
            }
        }
        assert!(checked > 1000, "tile ({x}, {y}): {checked} pixels of heat");
    }

    let overview = image::open(out.join("heatmap.png")).unwrap();
    assert_eq!((overview.width(), overview.height()), (520, 360));
    let descriptor = std::fs::read_to_string(out.join("slide.dzi")).unwrap();
    assert!(descriptor.contains("<Size Width=\"520\" Height=\"360\"/>"));
    // ⌈log2 520⌉ = 10 levels above the 1 × 1 one; the last tile is 520 − 512 by 360 − 256.
    let slide_tile = image::open(out.join("slide_files/10/2_1.jpeg")).unwrap();
    assert_eq!((slide_tile.width(), slide_tile.height()), (8, 104));
}

/// The slide's own pyramid at half size comes from the file's level 1 when it has one (glass is
/// then not decoded at full resolution), else from level 0 shrunk; either way it holds the
/// slide's pixels (within JPEG's error).
#[test]
fn the_slide_pyramid_comes_from_a_level_of_its_size() {
    let dir = folder("imagery");
    let weights = model(&dir);
    let layout = SyntheticSlide::new((1024, 768), 2, 6);
    for levels in [3, 1] {
        let path = dir.join(format!("slide_{levels}.tif"));
        layout
            .write(&path, false, Compression::Deflate, 128, levels)
            .unwrap();
        let out = dir.join(format!("out_{levels}"));
        let output = gradlens(&[
            "slide",
            path.to_str().unwrap(),
            "--weights",
            weights.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--tile",
            "64",
            "--downsample",
            "2",
        ]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("slide.json")).unwrap())
                .unwrap();
        let want_level = match levels {
            3 => serde_json::json!(1),
            _ => serde_json::Value::Null,
        };
        assert_eq!(summary["slide_pyramid_from_level"], want_level);
        // 512 × 384: Deep Zoom level 9 is full size. The Deep Zoom tile holding the first
        // section's centre (tissue, where a misplaced or wrongly shrunk band shows).
        let section = &layout.sections[0];
        let (column, row) = (
            (section.x / 2.0) as usize / 256,
            (section.y / 2.0) as usize / 256,
        );
        let (x0, y0) = (column * 256, row * 256);
        let (w, h) = (256.min(512 - x0), 256.min(384 - y0));
        let tile = image::open(out.join(format!("slide_files/9/{column}_{row}.jpeg")))
            .unwrap()
            .into_rgb8();
        assert_eq!((tile.width() as usize, tile.height() as usize), (w, h));
        let want: Vec<f32> = match levels {
            3 => layout
                .region((x0, y0), (w, h), 2)
                .iter()
                .map(|&v| f32::from(v) / 255.0)
                .collect(),
            _ => {
                let full = planes(
                    &layout.region((2 * x0, 2 * y0), (2 * w, 2 * h), 1),
                    2 * w,
                    2 * h,
                );
                let shrunk = gradlens::imaging::slide::box_downsample(
                    &gradlens::imaging::Planes {
                        channels: 3,
                        height: 2 * h,
                        width: 2 * w,
                        data: full,
                    },
                    2,
                );
                let plane = w * h;
                (0..plane)
                    .flat_map(|p| (0..3).map(move |c| (c, p)))
                    .map(|(c, p)| shrunk.data[c * plane + p])
                    .collect()
            }
        };
        let got: Vec<f32> = tile
            .as_raw()
            .iter()
            .map(|&v| f32::from(v) / 255.0)
            .collect();
        let mean_error = mean_abs_error(&got, &want);
        // JPEG at quality 90 leaves about 0.003 here; the band read 8 rows off gives 0.014.
        assert!(
            mean_error < 0.006,
            "{levels} levels: mean error {mean_error}"
        );
    }
}

/// Bad slides and arguments: one line naming the problem, a non-zero exit, no descriptor.
#[test]
fn bad_slides_end_in_one_line() {
    let dir = folder("bad");
    let weights = model(&dir);
    let w = weights.to_str().unwrap();
    let good = dir.join("good.tif");
    SyntheticSlide::new((400, 300), 1, 2)
        .write(&good, false, Compression::Deflate, 64, 2)
        .unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.join("truncated.tif");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let strips = dir.join("strips.tif");
    image::save_buffer(
        &strips,
        &[200u8; 64 * 64 * 3],
        64,
        64,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    let png = dir.join("photo.png");
    image::save_buffer(
        &png,
        &[200u8; 64 * 64 * 3],
        64,
        64,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    // ImageWidth (tag 256, LONG, one value) claimed as 2³¹ − 1.
    let mut wide = bytes.clone();
    let entry = [0u8, 1, 4, 0, 1, 0, 0, 0, 144, 1, 0, 0];
    let at = wide
        .windows(entry.len())
        .position(|w| w == entry)
        .expect("the width entry");
    wide[at + 8..at + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let absurd = dir.join("absurd.tif");
    std::fs::write(&absurd, &wide).unwrap();
    let cases: [(&Path, &[&str], &str); 7] = [
        (&truncated, &[], "truncated.tif"),
        (&strips, &[], "strips"),
        (&png, &[], "photo.png"),
        (&absurd, &[], "absurd.tif"),
        (&good, &["--level", "5"], "no level 5"),
        (&good, &["--downsample", "3"], "does not divide"),
        (&dir.join("missing.tif"), &[], "missing.tif"),
    ];
    for (slide, extra, expected) in cases {
        let out = dir.join("out");
        let mut args = vec![
            "slide",
            slide.to_str().unwrap(),
            "--weights",
            w,
            "--out",
            out.to_str().unwrap(),
            "--tile",
            "40",
            "--min-tissue",
            "0",
        ];
        args.extend_from_slice(extra);
        let output = gradlens(&args);
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{expected}: succeeded");
        assert_eq!(stderr.trim().lines().count(), 1, "{expected}: {stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(!out.join("heatmap.dzi").exists(), "{expected}");
    }
}

/// A 40 000 × 40 000 slide (BigTIFF, six levels) classified and explained at full resolution
/// with the peak memory well under 1 GB: what the process holds is bounded by the batch and
/// one band of tiles, not the slide (its pixels alone would be 4.8 GB as bytes).
#[test]
fn a_40000_pixel_slide_in_bounded_memory() {
    let dir = folder("big");
    let weights = model(&dir);
    let path = dir.join("big.tif");
    let output = gradlens(&[
        "synthetic-slide",
        path.to_str().unwrap(),
        "--width",
        "40000",
        "--height",
        "40000",
        "--levels",
        "6",
        "--bigtiff",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let out = dir.join("out");
    let output = gradlens(&[
        "slide",
        path.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--tile",
        "320",
        "--downsample",
        "8",
        "--class",
        "lesion",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    println!("{}", text(&output.stdout));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("slide.json")).unwrap()).unwrap();
    assert_eq!(summary["level_size"], serde_json::json!([40000, 40000]));
    assert_eq!(summary["pyramid_size"], serde_json::json!([5000, 5000]));
    assert_eq!(summary["tiles"], 125 * 125);
    let tissue = summary["tissue_tiles"].as_u64().unwrap();
    assert!(
        tissue > 300 && tissue < 125 * 125 / 4,
        "{tissue} tissue tiles"
    );
    let peak = summary["peak_rss_bytes"].as_u64().unwrap();
    assert!(peak < 1 << 30, "peak memory {} MB", peak >> 20);
    std::fs::remove_dir_all(&dir).unwrap();
}
