//! Optimiser kernels against the plain-Rust reference over several steps, learning-rate
//! schedules, gradient clipping, and the synthetic lesion data set.

mod common;

use common::{Rng, assert_close, gpu};
use gradlens::Tensor;
use gradlens::autograd::Tape;
use gradlens::kernels::optim::{AdamStep, SgdStep, adam_step, sgd_step};
use gradlens::nn::{Forward, Linear, Mode, ParamStore};
use gradlens::reference::optim as reference;
use gradlens::train::{LearningRate, Schedule, SyntheticLesions, clip_grad_norm};

/// Element counts: not multiples of the workgroup size; the first updated four at a time, the
/// second one by one.
const COUNTS: [usize; 2] = [1000, 1001];

#[test]
fn sgd_matches_reference_over_steps() {
    for (momentum, nesterov, weight_decay, count) in [
        (0.0, false, 0.0, COUNTS[0]),
        (0.9, false, 1e-4, COUNTS[0]),
        (0.9, true, 5e-4, COUNTS[0]),
        (0.0, false, 0.0, COUNTS[1]),
        (0.9, true, 5e-4, COUNTS[1]),
    ] {
        let mut rng = Rng::new(80);
        let mut param = rng.vec(count);
        let mut buffer = vec![0.0; count];
        let t_param = Tensor::from_slice(gpu(), [count], &param).unwrap();
        let t_buffer = Tensor::zeros(gpu(), [count]).unwrap();
        for step in 0..3 {
            let grad = rng.vec(count);
            let t_grad = Tensor::from_slice(gpu(), [count], &grad).unwrap();
            let hyper = SgdStep {
                lr: 0.1,
                momentum,
                nesterov,
                weight_decay,
                first_step: step == 0,
            };
            let momentum_buffer = (momentum != 0.0).then_some(&t_buffer);
            sgd_step(&t_param, &t_grad, momentum_buffer, &hyper).unwrap();
            reference::sgd_step(&mut param, &grad, &mut buffer, &hyper);
        }
        let what =
            format!("sgd momentum {momentum} nesterov {nesterov} wd {weight_decay} n {count}");
        assert_close(&what, &t_param.to_vec().unwrap(), &param, 1e-5, 1e-6);
    }
    let t = Tensor::zeros(gpu(), [4]).unwrap();
    let hyper = SgdStep {
        lr: 0.1,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
        first_step: true,
    };
    assert!(
        sgd_step(&t, &t, None, &hyper)
            .unwrap_err()
            .to_string()
            .contains("momentum buffer")
    );
}

#[test]
fn adam_and_adamw_match_reference_over_steps() {
    for (decoupled, count) in [(false, COUNTS[0]), (true, COUNTS[0]), (true, COUNTS[1])] {
        let mut rng = Rng::new(81);
        let mut param = rng.vec(count);
        let (mut m, mut v) = (vec![0.0; count], vec![0.0; count]);
        let t_param = Tensor::from_slice(gpu(), [count], &param).unwrap();
        let t_m = Tensor::zeros(gpu(), [count]).unwrap();
        let t_v = Tensor::zeros(gpu(), [count]).unwrap();
        for step in 1..=4 {
            let grad = rng.vec(count);
            let t_grad = Tensor::from_slice(gpu(), [count], &grad).unwrap();
            let hyper = AdamStep {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
                decoupled,
                step,
            };
            adam_step(&t_param, &t_grad, &t_m, &t_v, &hyper).unwrap();
            reference::adam_step(&mut param, &grad, &mut m, &mut v, &hyper);
        }
        let what = format!("adam decoupled={decoupled} n {count}");
        assert_close(&what, &t_param.to_vec().unwrap(), &param, 1e-5, 1e-6);
        assert_close(&format!("{what} m"), &t_m.to_vec().unwrap(), &m, 1e-5, 1e-7);
        assert_close(&format!("{what} v"), &t_v.to_vec().unwrap(), &v, 1e-5, 1e-8);
    }
}

#[test]
fn schedules_follow_pytorch() {
    let step = LearningRate {
        base: 0.1,
        warmup: 0,
        schedule: Schedule::Step {
            step_size: 10,
            gamma: 0.5,
        },
    };
    assert_eq!(
        [step.at(0), step.at(9), step.at(10), step.at(25)],
        [0.1, 0.1, 0.05, 0.025]
    );
    let cosine = LearningRate {
        base: 1.0,
        warmup: 4,
        schedule: Schedule::Cosine {
            total: 10,
            min_lr: 0.0,
        },
    };
    assert_eq!([cosine.at(0), cosine.at(1), cosine.at(3)], [0.25, 0.5, 1.0]);
    assert!((cosine.at(4) - 1.0).abs() < 1e-6 && (cosine.at(9) - 0.5).abs() < 1e-6);
    assert!((cosine.at(13) - 0.5 * (1.0 + (0.9 * std::f32::consts::PI).cos())).abs() < 1e-6);
    assert_eq!(cosine.at(14), 0.0);
}

#[test]
fn clipping_scales_gradients_to_the_global_norm() {
    // A context of its own: the test counts its readbacks.
    let gpu = &common::private_gpu();
    let mut store = ParamStore::new(gpu);
    let head = Linear::new(&mut store, "fc", 3, 2, None, 1).unwrap();
    let tape = Tape::new();
    let f = Forward::new(&tape, &store, Mode::Train);
    let x = tape.input(Tensor::from_slice(gpu, [2, 3], &[1.0, 2.0, -3.0, 0.5, -1.0, 4.0]).unwrap());
    let logits = head.forward(&f, &x).unwrap();
    let loss = tape.cross_entropy(&logits, &[0, 1], None).unwrap();
    let mut grads = tape.backward(&loss, None).unwrap();
    let before: Vec<Vec<f32>> = grads
        .parameters()
        .map(|(_, g)| g.to_vec().unwrap())
        .collect();
    let norm: f32 = before.iter().flatten().map(|v| v * v).sum::<f32>().sqrt();
    let reads_before = gpu.readbacks();
    let reported = clip_grad_norm(&mut grads, norm / 4.0).unwrap();
    assert_eq!(
        gpu.readbacks() - reads_before,
        1,
        "every parameter's sums come back in one read"
    );
    assert!(
        (reported - norm).abs() < 1e-5 * norm,
        "{reported} vs {norm}"
    );
    for ((_, after), before) in grads.parameters().zip(&before) {
        let want: Vec<f32> = before.iter().map(|v| v * 0.25).collect();
        assert_close("clipped", &after.to_vec().unwrap(), &want, 1e-4, 1e-7);
    }
    // Below the limit nothing changes.
    let unchanged = clip_grad_norm(&mut grads, norm).unwrap();
    assert!((unchanged - norm / 4.0).abs() < 1e-4 * norm);
}

#[test]
fn synthetic_lesions_are_deterministic_and_masks_mark_them() {
    let data = SyntheticLesions {
        size: 40,
        seed: 3,
        ..SyntheticLesions::default()
    };
    let a = data.generate(10, 16);
    let b = data.generate(10, 16);
    assert_eq!(a.images, b.images);
    assert_eq!(a.image_dims(), [16, 1, 40, 40]);
    // Sample 12 alone is sample 12 of the batch: each depends on (seed, index) only.
    assert_eq!(data.generate(12, 1).images, a.images[2 * 1600..3 * 1600]);
    let positives = a.labels.iter().filter(|&&l| l == 1).count();
    assert!((3..=13).contains(&positives), "{positives} of 16 positive");
    for (i, &label) in a.labels.iter().enumerate() {
        let mask = &a.masks[i * 1600..(i + 1) * 1600];
        let area = mask.iter().filter(|&&m| m == 1.0).count();
        if label == 0 {
            assert_eq!(area, 0, "a negative sample has no lesion");
        } else {
            // 1 to 3 lesions of radius 2 to 4: each covers roughly 6 to 60 pixels.
            assert!((6..=250).contains(&area), "sample {i}: lesion area {area}");
            let image = &a.images[i * 1600..(i + 1) * 1600];
            let outside = mean(
                image
                    .iter()
                    .zip(mask)
                    .filter(|(_, m)| **m == 0.0)
                    .map(|(v, _)| *v),
            );
            let deviation = mean(
                image
                    .iter()
                    .zip(mask)
                    .filter(|(_, m)| **m == 1.0)
                    .map(|(v, _)| (v - outside).abs()),
            );
            assert!(
                deviation > 0.12,
                "sample {i}: lesion pixels deviate by {deviation}"
            );
        }
    }
    let other = SyntheticLesions {
        seed: 4,
        ..data.clone()
    }
    .generate(10, 16);
    assert_ne!(other.images, a.images);
}

fn mean(values: impl Iterator<Item = f32>) -> f32 {
    let (sum, count) = values.fold((0.0, 0), |(s, c), v| (s + v, c + 1));
    sum / count.max(1) as f32
}

/// A resumed optimiser (its state copied through the host, as a checkpoint does) continues
/// exactly as the uninterrupted one: the same parameters, bit for bit.
#[test]
fn optimiser_state_resumes_exactly() {
    use gradlens::autograd::Var;
    use gradlens::train::{Adam, Optimizer, Sgd};

    fn store() -> ParamStore {
        let mut store = ParamStore::new(gpu());
        Linear::new(&mut store, "fc", 6, 3, None, 5).unwrap();
        store
    }
    fn step(store: &ParamStore, optimizer: &mut dyn Optimizer, index: usize) {
        let mut rng = Rng::new(90 + index as u64);
        let tape = Tape::new();
        let f = Forward::new(&tape, store, Mode::Train);
        let x = Var::constant(Tensor::from_slice(gpu(), [4, 6], &rng.vec(24)).unwrap());
        let logits = Linear {
            name: "fc".to_string(),
        }
        .forward(&f, &x)
        .unwrap();
        let loss = tape.cross_entropy(&logits, &[0, 2, 1, 2], None).unwrap();
        let grads = tape.backward(&loss, None).unwrap();
        optimizer.step(store, &grads, 0.05).unwrap();
    }
    fn through_host(state: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
        state
            .into_iter()
            .map(|(name, t)| {
                let copy = Tensor::from_slice(gpu(), t.dims().to_vec(), &t.to_vec().unwrap());
                (name, copy.unwrap())
            })
            .collect()
    }
    let optimisers: [fn() -> Box<dyn Optimizer>; 3] = [
        || Box::new(Sgd::new(0.9, true, 1e-3)),
        || Box::new(Adam::new(1e-3)),
        || Box::new(Adam::adamw(0.01)),
    ];
    for make in optimisers {
        let (straight, resumed) = (store(), store());
        let mut uninterrupted = make();
        let mut first_half = make();
        for index in 0..3 {
            step(&straight, uninterrupted.as_mut(), index);
            step(&resumed, first_half.as_mut(), index);
        }
        let state = through_host(first_half.state().unwrap());
        assert!(!state.is_empty());
        let mut second_half = make();
        second_half.load_state(state).unwrap();
        for index in 3..5 {
            step(&straight, uninterrupted.as_mut(), index);
            step(&resumed, second_half.as_mut(), index);
        }
        for name in ["fc.weight", "fc.bias"] {
            let a = straight.parameter(name).unwrap().to_vec().unwrap();
            let b = resumed.parameter(name).unwrap().to_vec().unwrap();
            assert_eq!(a, b, "{name}");
        }
    }

    let mut adam = Adam::new(0.0);
    let lonely = vec![(
        "fc.weight.exp_avg".to_string(),
        Tensor::zeros(gpu(), [3, 6]).unwrap(),
    )];
    assert!(
        adam.load_state(lonely)
            .unwrap_err()
            .to_string()
            .contains("together")
    );
    let unknown = vec![(
        "fc.weight.velocity".to_string(),
        Tensor::zeros(gpu(), [1]).unwrap(),
    )];
    assert!(
        adam.load_state(unknown.clone())
            .unwrap_err()
            .to_string()
            .contains("velocity")
    );
    assert!(Sgd::new(0.9, false, 0.0).load_state(unknown).is_err());
}
