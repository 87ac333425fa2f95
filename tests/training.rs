//! End to end: LesionNet trained from scratch on the synthetic lesion set must generalise: at
//! least 95% held-out accuracy in eval mode (running BN statistics). 1536 training images of
//! 32×32 with flips, 4 epochs of Adam; about 27 s on lavapipe here.

mod common;

use std::time::Instant;

use common::gpu;
use gradlens::Tensor;
use gradlens::autograd::{Tape, Var};
use gradlens::models::LesionNet;
use gradlens::nn::{Forward, Mode, ParamStore};
use gradlens::train::{Adam, LearningRate, Optimizer, Schedule, SyntheticLesions, augment};

const SIZE: usize = 32;
const TRAIN: usize = 1536;
const HELD_OUT: usize = 256;
const BATCH: usize = 32;
const EPOCHS: usize = 4;

/// Eval-mode accuracy on the held-out samples.
fn accuracy(model: &LesionNet, store: &ParamStore, data: &SyntheticLesions, first: u64) -> f64 {
    let mut correct = 0;
    for start in (0..HELD_OUT).step_by(64) {
        let batch = data.generate(first + start as u64, 64);
        let x = Tensor::from_slice(gpu(), batch.image_dims(), &batch.images).unwrap();
        let tape = Tape::no_grad();
        let f = Forward::new(&tape, store, Mode::Eval);
        let logits = model
            .forward(&f, &Var::constant(x))
            .unwrap()
            .into_tensor()
            .to_vec()
            .unwrap();
        for (row, &label) in logits.chunks(2).zip(&batch.labels) {
            correct += usize::from(usize::from(row[1] > row[0]) == label);
        }
    }
    correct as f64 / HELD_OUT as f64
}

#[test]
fn lesion_net_learns_the_synthetic_lesions() {
    let started = Instant::now();
    let data = SyntheticLesions {
        size: SIZE,
        seed: 7,
        ..SyntheticLesions::default()
    };
    let mut store = ParamStore::new(gpu());
    let model = LesionNet::new(&mut store, 1, 2, [8, 16, 32], 1).unwrap();
    let mut optimizer = Adam::new(0.0);
    let steps_per_epoch = TRAIN / BATCH;
    let lr = LearningRate {
        base: 0.01,
        warmup: 5,
        schedule: Schedule::Cosine {
            total: EPOCHS * steps_per_epoch - 5,
            min_lr: 0.0005,
        },
    };
    let mut losses = Vec::new();
    for step in 0..EPOCHS * steps_per_epoch {
        let first = ((step % steps_per_epoch) * BATCH) as u64;
        let batch = data.generate(first, BATCH);
        // Each epoch sees the images in another orientation.
        let images =
            augment::flip_for_epoch(&batch.images, batch.image_dims(), step / steps_per_epoch);
        let x = Tensor::from_slice(gpu(), batch.image_dims(), &images).unwrap();
        let tape = Tape::new();
        let f = Forward::new(&tape, &store, Mode::Train);
        let logits = model.forward(&f, &Var::constant(x)).unwrap();
        let loss = tape.cross_entropy(&logits, &batch.labels, None).unwrap();
        if step % steps_per_epoch == 0 || step + 1 == EPOCHS * steps_per_epoch {
            losses.push(loss.tensor().to_vec().unwrap()[0]);
        }
        let grads = tape.backward(&loss, None).unwrap();
        optimizer.step(&store, &grads, lr.at(step)).unwrap();
    }
    let held_out = accuracy(&model, &store, &data, 1_000_000);
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("losses {losses:?}; held-out accuracy {held_out:.3}; {seconds:.1} s");
    assert!(
        held_out >= 0.95,
        "held-out accuracy {held_out:.3} (losses {losses:?})"
    );
}
