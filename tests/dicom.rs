//! DICOM decoding against pydicom: tests/fixtures/dicom/ holds small files of every bit depth,
//! sign, photometric interpretation and transfer syntax gradlens reads (tools/
//! make_dicom_fixtures.py), and expected.json what pydicom's own rescale and windowing make of
//! each, or the phrase its error must contain. Hostile files end with an error, never a panic.

use std::path::{Path, PathBuf};

use gradlens::imaging::{DicomOptions, Window, decode_with, is_dicom};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom")
}

fn cases() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn frame(case: &serde_json::Value) -> DicomOptions {
    DicomOptions {
        frame: case["frame"].as_u64().expect("frame") as usize,
        window: None,
    }
}

#[test]
fn every_fixture_decodes_as_pydicom_windows_it() {
    let mut decoded = 0;
    for case in cases().iter().filter(|case| case.get("values").is_some()) {
        let name = case["file"].as_str().expect("file");
        let bytes = read(name);
        assert!(is_dicom(&bytes), "{name}: no DICM magic");
        let planes = case["planes"].as_u64().unwrap() as usize;
        let got = decode_with(&bytes, name, planes, &frame(case))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            [got.channels, got.height, got.width],
            [
                planes,
                case["rows"].as_u64().unwrap() as usize,
                case["columns"].as_u64().unwrap() as usize
            ],
            "{name}: shape"
        );
        let want: Vec<f64> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let tolerance = case["tolerance"].as_f64().unwrap();
        let worst = got
            .data
            .iter()
            .zip(&want)
            .map(|(&g, &w)| (f64::from(g) - w).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= tolerance,
            "{name}: off by {worst} (tolerance {tolerance})"
        );
        // Never all one value: a constant image would pass a broken window.
        let spread = want.iter().fold(f64::INFINITY, |m, &v| m.min(v))
            < want.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        assert!(spread, "{name}: a constant expectation tests little");
        decoded += 1;
    }
    assert_eq!(decoded, 15, "every decodable fixture ran");
}

#[test]
fn unsupported_and_hostile_fixtures_end_with_their_error() {
    let mut refused = 0;
    for case in cases().iter().filter(|case| case.get("error").is_some()) {
        let name = case["file"].as_str().expect("file");
        let phrase = case["error"].as_str().unwrap();
        let error = decode_with(&read(name), name, 1, &frame(case))
            .expect_err(name)
            .to_string();
        assert!(error.contains(phrase), "{name}: {error:?} lacks {phrase:?}");
        assert!(!error.contains('\n'), "{name}: one line, got {error:?}");
        refused += 1;
    }
    assert_eq!(refused, 6);
}

/// Gray to three channels repeats the plane; RGB to one channel weighs by ITU-R 601, as PNGs.
#[test]
fn channels_are_converted_as_for_png() {
    let gray = read("mono8_explicit_le.dcm");
    let one = decode_with(&gray, "gray", 1, &DicomOptions::default()).unwrap();
    let three = decode_with(&gray, "gray", 3, &DicomOptions::default()).unwrap();
    assert_eq!(three.data, one.data.repeat(3));
    let colour = read("rgb8_planar0.dcm");
    let rgb = decode_with(&colour, "rgb", 3, &DicomOptions::default()).unwrap();
    let luma = decode_with(&colour, "rgb", 1, &DicomOptions::default()).unwrap();
    let plane = rgb.height * rgb.width;
    for p in 0..plane {
        let want =
            0.299 * rgb.data[p] + 0.587 * rgb.data[plane + p] + 0.114 * rgb.data[2 * plane + p];
        assert!((luma.data[p] - want).abs() < 1e-6);
    }
}

/// A window given replaces the file's: the CT at a bone window differs from its soft-tissue
/// one, and a width below 1 is refused.
#[test]
fn a_window_given_replaces_the_files() {
    let ct = read("ct16_signed_big_endian.dcm");
    let file = decode_with(&ct, "ct", 1, &DicomOptions::default()).unwrap();
    let bone = DicomOptions {
        window: Some(Window {
            center: 300.0,
            width: 1500.0,
        }),
        frame: 0,
    };
    let given = decode_with(&ct, "ct", 1, &bone).unwrap();
    assert_ne!(file.data, given.data);
    // The fixture's stored values (tools/make_dicom_fixtures.py) in Hounsfield units, through
    // DICOM's LINEAR function at centre 300, width 1500.
    let (c, w) = (300.0f64, 1500.0f64);
    for (i, &got) in given.data.iter().enumerate() {
        let (y, x) = ((i / 9) as i64, (i % 9) as i64);
        let hu = ((y * 331 + x * 97) % 2400 - 200 - 1024) as f64;
        let want = if hu <= c - 0.5 - (w - 1.0) / 2.0 {
            0.0
        } else if hu > c - 0.5 + (w - 1.0) / 2.0 {
            1.0
        } else {
            (hu - (c - 0.5)) / (w - 1.0) + 0.5
        };
        assert!(
            (f64::from(got) - want).abs() < 1e-6,
            "pixel {i}: {got} vs {want}"
        );
    }
    let narrow = DicomOptions {
        window: Some(Window {
            center: 0.0,
            width: 0.5,
        }),
        frame: 0,
    };
    let error = decode_with(&ct, "ct", 1, &narrow).unwrap_err().to_string();
    assert!(error.contains("width must be at least 1"), "{error}");
}

/// Every fixture cut short at many lengths, and with bytes overwritten, ends with an error or
/// an image: never a panic.
#[test]
fn truncated_and_corrupted_files_end_with_an_error() {
    for case in cases() {
        let name = case["file"].as_str().unwrap();
        let bytes = read(name);
        for cut in (0..bytes.len()).step_by(7) {
            let result = decode_with(&bytes[..cut], name, 1, &DicomOptions::default());
            if cut < bytes.len() / 2 {
                assert!(result.is_err(), "{name} cut at {cut} decoded");
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            let mut corrupted = bytes.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % corrupted.len() as u64) as usize;
                corrupted[at] = (state >> 32) as u8;
            }
            let _ = decode_with(&corrupted, name, 1, &DicomOptions::default());
        }
    }
}

/// Files the dicom_decode fuzz target found making dicom-rs panic, refused before it sees them.
#[test]
fn fuzzer_findings_end_with_an_error() {
    // A short RLE segment; the same behind a transfer syntax UID padded with a newline; a US
    // element of 39 bytes, after which dicom-rs read the file out of step into a 4 GB claim;
    // a meta element whose header runs past the group's end (an overflow in the check itself);
    // a transfer syntax UID with a newline in it, quoted in the error (which stays one line).
    for (name, phrase) in [
        ("regression_rle_short_segment.dcm", "RLE segment decodes to"),
        ("regression_rle_padded_syntax.dcm", "RLE segment decodes to"),
        (
            "regression_odd_length_us.dcm",
            "holds 39 bytes, not whole values of 2",
        ),
    ] {
        let error = decode_with(&read(name), name, 1, &DicomOptions::default())
            .expect_err(name)
            .to_string();
        assert!(error.contains(phrase), "{name}: {error}");
        assert!(!error.contains('\n'), "{name}: {error:?} is not one line");
    }
}
