//! shaders/occlusion.wgsl (occluded copies of an image) against the CPU reference, and the
//! windows' placement. Occlusion saliency itself is checked against Captum (tests/captum.rs)
//! and on the lesion set (tests/saliency.rs).

mod common;

use common::{Rng, gpu};
use gradlens::Tensor;
use gradlens::kernels::occlusion::{Windows, occluded_copies};
use gradlens::reference::occlusion as reference;

/// Three channels, the second image of two, windows cut off at the right and bottom edges, a
/// batch that starts part-way through the windows; and enough copies to take more workgroups
/// than tools/test.sh's 64 per grid dimension.
#[test]
fn occluded_copies_match_the_reference() {
    let mut rng = Rng::new(90);
    for (dims, patch, stride, first, count) in [
        ([2, 3, 11, 9], 4, 3, 5, 7),
        ([1, 1, 5, 5], 5, 1, 0, 1),
        ([1, 2, 40, 40], 7, 5, 0, 64),
    ] {
        let [n, _, height, width] = dims;
        let values = rng.vec(dims.iter().product());
        let x = Tensor::from_slice(gpu(), dims, &values).unwrap();
        let windows = Windows::over(height, width, patch, stride).unwrap();
        let image = n - 1;
        let got = occluded_copies(&x, image, &windows, first, count, -7.5)
            .unwrap()
            .to_vec()
            .unwrap();
        let want = reference::occluded_copies(&values, dims, image, &windows, first, count, -7.5);
        assert_eq!(got.len(), want.len());
        let wrong = got
            .iter()
            .zip(&want)
            .filter(|(g, w)| g.to_bits() != w.to_bits())
            .count();
        assert_eq!(
            wrong, 0,
            "{dims:?} patch {patch} stride {stride}: {wrong} values differ"
        );
    }
}

#[test]
fn windows_cover_the_image_as_captum_places_them() {
    // ⌈(11 − 4) / 3⌉ + 1 = 4 rows at 0, 3, 6, 9 (the last cut off at 11); 3 columns at 0, 3, 6
    // over 9.
    let windows = Windows::over(11, 9, 4, 3).unwrap();
    assert_eq!((windows.rows, windows.columns, windows.count()), (4, 3, 12));
    assert_eq!(windows.origin(0), (0, 0));
    assert_eq!(windows.origin(5), (3, 6));
    assert_eq!(windows.origin(11), (9, 6));
    assert_eq!(Windows::over(5, 5, 5, 1).unwrap().count(), 1);

    for (height, width, patch, stride, says) in [
        (8, 8, 9, 1, "does not fit"),
        (8, 8, 0, 1, "does not fit"),
        (8, 8, 4, 5, "leaves pixels under no window"),
        (8, 8, 4, 0, "stride"),
    ] {
        let message = Windows::over(height, width, patch, stride)
            .unwrap_err()
            .to_string();
        assert!(message.contains(says), "{patch}/{stride}: {message}");
    }
    let x = Tensor::from_slice(gpu(), [1, 1, 8, 8], &[0.5; 64]).unwrap();
    let windows = Windows::over(8, 8, 4, 2).unwrap();
    assert!(
        occluded_copies(&x, 1, &windows, 0, 1, 0.0).is_err(),
        "image out of range"
    );
    assert!(
        occluded_copies(&x, 0, &windows, 8, 2, 0.0).is_err(),
        "windows out of range"
    );
    let other = Windows::over(16, 16, 4, 2).unwrap();
    assert!(
        occluded_copies(&x, 0, &other, 0, 1, 0.0).is_err(),
        "another image's windows"
    );
}
