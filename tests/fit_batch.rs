//! `train::fit_batch` lowers a batch until its training step fits a memory budget, and leaves
//! the weights as they were. Alone in its test binary: the pool's peak it reads belongs to the
//! whole GPU context, which other tests of one binary share while they run.

mod common;

use common::fine_tune::{bits, demo_model, lesions};
use gradlens::saliency::Explained;
use gradlens::train::fit_batch;
use gradlens::train::transfer::Trainable;

#[test]
fn the_batch_is_lowered_to_fit_the_memory_budget_and_the_weights_stay() {
    let loaded = demo_model(Trainable::LastBlock, &["clear", "lesion"]);
    let model = Explained {
        model: loaded.model.as_ref(),
        store: &loaded.store,
    };
    let data = lesions(0, 64);
    let preprocess = &loaded.info.preprocess;
    let running = bits(&loaded.store, "layer1.0.bn1.running_mean");
    // The first try also computes the kept copies of the frozen weights (as a first training
    // step does); the next measures what later steps hold.
    let cold = pollster::block_on(fit_batch(model, &data, preprocess, 64, u64::MAX)).unwrap();
    let whole = pollster::block_on(fit_batch(model, &data, preprocess, 64, u64::MAX)).unwrap();
    assert_eq!((cold.batch, whole.batch), (64, 64));
    assert!(whole.refused.is_empty());
    let fitted = pollster::block_on(fit_batch(
        model,
        &data,
        preprocess,
        64,
        whole.peak_bytes - 1,
    ))
    .unwrap();
    assert_eq!(fitted.batch, 32);
    assert_eq!(fitted.refused.len(), 1);
    assert!(
        fitted.refused[0].1.contains("over the limit"),
        "{:?}",
        fitted.refused
    );
    assert!(
        fitted.peak_bytes < whole.peak_bytes / 3 * 2,
        "{} vs {}",
        fitted.peak_bytes,
        whole.peak_bytes
    );
    // The probes moved no running statistic.
    assert_eq!(bits(&loaded.store, "layer1.0.bn1.running_mean"), running);
    let error = pollster::block_on(fit_batch(model, &data, preprocess, 8, 1 << 10)).unwrap_err();
    assert!(
        error.to_string().contains("not even one image fits"),
        "{error}"
    );
}
