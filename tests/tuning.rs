//! The subgroup matmul's tuning: every tile timed per shape class, the fastest written to the
//! tuning file under this adapter, and products still right afterwards. Its own test binary:
//! it points GRADLENS_TUNING_FILE at a file of its own before any matmul runs.

mod common;

use common::{Rng, assert_close, gpu};
use gradlens::Tensor;
use gradlens::kernels::matmul::{MatmulOptions, matmul, subgroup_kernel_available};
use gradlens::kernels::tuning::{SUBGROUP_TILES, record_shapes, recorded_shapes, tune};
use gradlens::reference;

#[test]
fn tiles_are_tuned_per_shape_class_and_kept_on_disk() {
    let file = std::env::temp_dir().join(format!("gradlens-tuning-{}.json", std::process::id()));
    // A damaged file costs only the defaults.
    std::fs::write(&file, b"{ not json").unwrap();
    // SAFETY: set before this test binary's only test touches the GPU or spawns threads.
    unsafe { std::env::set_var("GRADLENS_TUNING_FILE", &file) };
    if common::skipped_without(
        subgroup_kernel_available(gpu()),
        "tuning",
        "8-lane subgroups (nothing to tune)",
    ) {
        return;
    }
    let mut rng = Rng::new(23);
    let (m, n, k) = (24, 52, 64);
    let a = rng.vec(m * k);
    let b = rng.vec(k * n);
    let (ta, tb) = (
        Tensor::from_slice(gpu(), [m, k], &a).unwrap(),
        Tensor::from_slice(gpu(), [k, n], &b).unwrap(),
    );
    let want = reference::matmul::matmul(&a, &b, 1, m, n, k, false, false, 0, 0);

    record_shapes();
    let before = matmul(&ta, &tb, MatmulOptions::default()).unwrap();
    assert_close("default tile", &before.to_vec().unwrap(), &want, 1e-5, 1e-5);
    let shapes = recorded_shapes();
    assert_eq!(shapes, [[m, n, k]]);

    // Two shapes of one class (24 and 30 rows both round up to 32) are tuned once.
    let tuned = tune(gpu(), &[[m, n, k], [30, n, k], [64, 256, 128]], 1).unwrap();
    assert_eq!(tuned.len(), 2);
    for result in &tuned {
        assert_eq!(result.times.len(), SUBGROUP_TILES.len());
        assert!(result.times.iter().all(|(_, ms)| *ms >= 0.0));
        let fastest = result
            .times
            .iter()
            .map(|t| t.1)
            .fold(f64::INFINITY, f64::min);
        let best = result
            .times
            .iter()
            .find(|(t, _)| *t == result.best)
            .unwrap()
            .1;
        assert_eq!(best, fastest);
    }
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let adapter = written.as_object().unwrap().values().next().unwrap();
    let tile = &adapter["32x64x64"];
    let best = tuned[0].best;
    assert_eq!(
        tile,
        &serde_json::json!([best.row_groups, best.column_vecs])
    );

    // Auto now runs the tuned tile: still the same product.
    let after = matmul(&ta, &tb, MatmulOptions::default()).unwrap();
    assert_close("tuned tile", &after.to_vec().unwrap(), &want, 1e-5, 1e-5);
    std::fs::remove_file(&file).unwrap();
}
