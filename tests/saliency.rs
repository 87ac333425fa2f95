//! Saliency on a small ResNet trained here on the synthetic lesion set: the maps must point at
//! the lesions (pointing game, energy), integrated gradients must be complete, removing their
//! pixels must destroy the score (deletion, ROAD), and maps of the trained model must differ
//! from those of a randomised one (the sanity check, at once and cascading). One test function, so
//! the model is trained once.

mod common;

use std::time::Instant;

use common::gpu;
use gradlens::Tensor;
use gradlens::autograd::{Tape, Var};
use gradlens::models::ResNet;
use gradlens::nn::{Forward, Mode, ParamStore};
use gradlens::saliency::{
    self, Attribution, Cam, Explained, ExtremalPerturbation, IntegratedGradients, Method,
    MethodSettings, Occlusion, Perturbation, Question, Reduce, Replacement, Road, Score, ScoreCam,
    SmoothGrad, cascading_randomisation, deletion_insertion, energy_pointing_game,
    pointing_game_hit, rank_correlation, road, to_maps,
};
use gradlens::train::{Adam, LearningRate, Optimizer, Schedule, SyntheticLesions, augment};

const SIZE: usize = 48;
const TRAIN: usize = 1024;
const BATCH: usize = 32;
const EPOCHS: usize = 4;
/// Pointing-game tolerance in pixels: Zhang et al. use 15 at 224; scaled to 48 that is ~3.
const TOLERANCE: f32 = 3.0;

fn train(store: &ParamStore, model: &ResNet, data: &SyntheticLesions) {
    let mut optimizer = Adam::new(1e-4);
    let steps_per_epoch = TRAIN / BATCH;
    let lr = LearningRate {
        base: 0.01,
        warmup: 5,
        schedule: Schedule::Cosine {
            total: EPOCHS * steps_per_epoch - 5,
            min_lr: 5e-4,
        },
    };
    for step in 0..EPOCHS * steps_per_epoch {
        let batch = data.generate(((step % steps_per_epoch) * BATCH) as u64, BATCH);
        let images =
            augment::flip_for_epoch(&batch.images, batch.image_dims(), step / steps_per_epoch);
        let x = Tensor::from_slice(gpu(), batch.image_dims(), &images).unwrap();
        let tape = Tape::new();
        let f = Forward::new(&tape, store, Mode::Train);
        let logits = model.forward(&f, &Var::constant(x)).unwrap();
        let loss = tape.cross_entropy(&logits, &batch.labels, None).unwrap();
        let grads = tape.backward(&loss, None).unwrap();
        optimizer.step(store, &grads, lr.at(step)).unwrap();
    }
}

#[test]
fn saliency_points_at_the_lesions() {
    let started = Instant::now();
    let data = SyntheticLesions {
        size: SIZE,
        seed: 11,
        ..SyntheticLesions::default()
    };
    let mut store = ParamStore::new(gpu());
    let model = ResNet::with_width(&mut store, "resnet18", 1, 2, 8, 2).unwrap();
    train(&store, &model, &data);
    let trained_at = started.elapsed().as_secs_f64();
    let explained = Explained {
        model: &model,
        store: &store,
    };

    let held_out = data.generate(500_000, 96);
    let x = Tensor::from_slice(gpu(), held_out.image_dims(), &held_out.images).unwrap();
    let predicted = pollster::block_on(saliency::top_classes(explained, &x)).unwrap();
    let accuracy = predicted
        .iter()
        .zip(&held_out.labels)
        .filter(|(p, l)| p == l)
        .count() as f64
        / held_out.len() as f64;

    let positives: Vec<usize> = (0..held_out.len())
        .filter(|&i| held_out.labels[i] == 1)
        .collect();
    let plane = SIZE * SIZE;
    let pick = |indices: &[usize]| -> (Tensor, Vec<Vec<f32>>) {
        let images: Vec<f32> = indices
            .iter()
            .flat_map(|&i| held_out.images[i * plane..(i + 1) * plane].to_vec())
            .collect();
        let masks = indices
            .iter()
            .map(|&i| held_out.masks[i * plane..(i + 1) * plane].to_vec())
            .collect();
        (
            Tensor::from_slice(gpu(), [indices.len(), 1, SIZE, SIZE], &images).unwrap(),
            masks,
        )
    };
    let (positive_images, masks) = pick(&positives);
    let lesion_class = vec![1; positives.len()];
    let hits = |maps: &[f32]| -> f64 {
        masks
            .iter()
            .enumerate()
            .filter(|(i, mask)| {
                pointing_game_hit(&maps[i * plane..(i + 1) * plane], mask, SIZE, TOLERANCE)
            })
            .count() as f64
            / masks.len() as f64
    };

    // Chance: the share of the image's pixels whose one-hot map would be a hit, i.e. the hit
    // rate of a map whose peak falls anywhere at random.
    let chance = masks
        .iter()
        .map(|mask| {
            let hits = (0..plane)
                .filter(|&pixel| {
                    let mut one_hot = vec![0.0f32; plane];
                    one_hot[pixel] = 1.0;
                    pointing_game_hit(&one_hot, mask, SIZE, TOLERANCE)
                })
                .count();
            hits as f64 / plane as f64
        })
        .sum::<f64>()
        / masks.len() as f64;

    let lesion_logit =
        Question::new(explained, &positive_images, &lesion_class, Score::Logit).unwrap();
    let gradient = pollster::block_on(saliency::gradient(lesion_logit)).unwrap();
    let gradient_maps = to_maps(&gradient, Reduce::AbsMax).unwrap();
    let gradient_hits = hits(&gradient_maps.data);

    // Occlusion: a 12-pixel window (a lesion's size) every 6 pixels, 49 windows an image, 64
    // occluded copies per forward pass, hidden with the images' mean (these images are not
    // normalised: 0 would be a black square, itself a dark lesion to this model).
    let mean =
        held_out.images.iter().map(|&v| f64::from(v)).sum::<f64>() / held_out.images.len() as f64;
    let occlusion_settings = Occlusion {
        patch: SIZE / 4,
        stride: SIZE / 8,
        baseline: mean as f32,
        batch: 64,
    };
    let occlusion_maps =
        pollster::block_on(saliency::occlusion(lesion_logit, &occlusion_settings)).unwrap();
    let occlusion_hits = hits(&occlusion_maps.data);

    // Integrated gradients on 8 positives; its completeness error shrinks with the steps
    // (measured on this model: ~30% of F(x) − F(x') at 16 Gauss–Legendre steps, ~3% at 64).
    let subset: Vec<usize> = positives.iter().copied().take(8).collect();
    let (ig_images, ig_masks) = pick(&subset);
    let settings = IntegratedGradients {
        steps: 64,
        ..Default::default()
    };
    let ig = pollster::block_on(saliency::integrated_gradients(
        Question::new(explained, &ig_images, &[1; 8], Score::Logit).unwrap(),
        &settings,
    ))
    .unwrap();
    let ig_maps = to_maps(&ig.attribution, Reduce::Sum).unwrap();
    let ig_hits = ig_masks
        .iter()
        .enumerate()
        .filter(|(i, mask)| {
            pointing_game_hit(
                &ig_maps.data[i * plane..(i + 1) * plane],
                mask,
                SIZE,
                TOLERANCE,
            )
        })
        .count() as f64
        / 8.0;
    let worst_completeness = ig
        .completeness_error
        .iter()
        .zip(&ig.score_difference)
        .map(|(e, d)| e.abs() / d.abs().max(1.0))
        .fold(0.0, f32::max);
    let (_, cam) = pollster::block_on(saliency::grad_cam(lesion_logit, Some("layer2"))).unwrap();
    let gradcam_hits = hits(&cam.data);
    let cam_hits = |kind: Cam| {
        let layer2 = Some("layer2");
        let (_, cam) =
            pollster::block_on(saliency::class_activation_map(lesion_logit, layer2, kind)).unwrap();
        hits(&cam.data)
    };
    let (_, score_cam) = pollster::block_on(saliency::score_cam(
        lesion_logit,
        Some("layer2"),
        &ScoreCam { batch: 64 },
    ))
    .unwrap();
    let score_cam_hits = hits(&score_cam.data);
    let guided_cam =
        pollster::block_on(saliency::guided_grad_cam(lesion_logit, Some("layer2"))).unwrap();
    let guided_gradcam_hits = hits(&to_maps(&guided_cam, Reduce::AbsMax).unwrap().data);
    let (gradcam_plus_plus_hits, hirescam_hits, layercam_hits) = (
        cam_hits(Cam::GradCamPlusPlus),
        cam_hits(Cam::HiResCam),
        cam_hits(Cam::LayerCam),
    );
    let gxi = pollster::block_on(saliency::gradient_x_input(lesion_logit)).unwrap();
    let gxi_hits = hits(
        &to_maps(&gxi, Reduce::Sum)
            .unwrap()
            .data
            .iter()
            .map(|v| v.abs())
            .collect::<Vec<_>>(),
    );
    let guided = pollster::block_on(saliency::guided_backprop(lesion_logit)).unwrap();
    let guided_hits = hits(&to_maps(&guided, Reduce::AbsMax).unwrap().data);
    let smooth = SmoothGrad {
        samples: 10,
        ..SmoothGrad::default()
    };
    let smoothgrad = pollster::block_on(saliency::smoothgrad(lesion_logit, &smooth)).unwrap();
    let smoothgrad_hits = hits(&to_maps(&smoothgrad, Reduce::AbsMax).unwrap().data);

    // Deletion and insertion on 6 positives: deleting pixels in the gradient map's order must
    // destroy the lesion score faster than in a random order, and inserting them restore it
    // faster. Deleted pixels take the image's mean: black (the usual baseline) would paint
    // dark lesions.
    let mut order_rng = gradlens::nn::SplitMix64::new(3);
    let (mut faithful, mut shuffled_order) = ((0.0, 0.0), (0.0, 0.0));
    for k in 0..6 {
        let one = pick(&positives[k..k + 1]).0;
        let image = &held_out.images[positives[k] * plane..(positives[k] + 1) * plane];
        let baseline = vec![image.iter().sum::<f32>() / plane as f32; plane];
        let map = &gradient_maps.data[k * plane..(k + 1) * plane];
        let shuffled: Vec<f32> = (0..plane).map(|_| order_rng.uniform() as f32).collect();
        let a = pollster::block_on(deletion_insertion(explained, &one, 1, map, &baseline, 16))
            .unwrap()
            .areas();
        let b = pollster::block_on(deletion_insertion(
            explained, &one, 1, &shuffled, &baseline, 16,
        ))
        .unwrap()
        .areas();
        faithful = (faithful.0 + a.0 / 6.0, faithful.1 + a.1 / 6.0);
        shuffled_order = (shuffled_order.0 + b.0 / 6.0, shuffled_order.1 + b.1 / 6.0);
    }

    // ROAD on 8 positives: removing the gradient map's most relevant pixels (filled by noisy
    // linear imputation) must take the lesion probability down faster than removing them in a
    // random order, and removing its least relevant ones slower.
    let (road_images, _) = pick(&positives[..8]);
    let road_settings = Road::default();
    let shuffled = Attribution {
        dims: vec![8, SIZE, SIZE],
        data: (0..8 * plane).map(|_| order_rng.uniform() as f32).collect(),
    };
    let gradient_8 = Attribution {
        dims: vec![8, SIZE, SIZE],
        data: gradient_maps.data[..8 * plane].to_vec(),
    };
    let mean_areas = |maps: &Attribution| {
        let curves =
            pollster::block_on(road(explained, &road_images, &[1; 8], maps, &road_settings))
                .unwrap();
        curves.iter().fold((0.0, 0.0), |(m, l), curve| {
            let (morf, lerf) = curve.areas();
            (m + morf / 8.0, l + lerf / 8.0)
        })
    };
    let (road_gradient, road_random) = (mean_areas(&gradient_8), mean_areas(&shuffled));

    // Energy pointing game: the share of each map's positive mass on the lesion, against the
    // lesion's share of the image (a uniform map's score).
    let energy = |maps: &[f32]| -> f64 {
        masks
            .iter()
            .enumerate()
            .map(|(i, mask)| {
                f64::from(energy_pointing_game(
                    &maps[i * plane..(i + 1) * plane],
                    mask,
                ))
            })
            .sum::<f64>()
            / masks.len() as f64
    };
    let lesion_share = masks
        .iter()
        .map(|mask| mask.iter().filter(|&&m| m > 0.5).count() as f64 / plane as f64)
        .sum::<f64>()
        / masks.len() as f64;
    let (gradient_energy, gradcam_energy) = (energy(&gradient_maps.data), energy(&cam.data));

    // Cascading randomisation on 8 positives: once every block is re-initialised, the
    // gradient's maps must no longer resemble the trained model's.
    let (_, cascade) = pollster::block_on(cascading_randomisation(
        explained,
        &road_images,
        &[1; 8],
        Method::Gradient,
        &MethodSettings::default(),
        5,
    ))
    .unwrap();
    let mean = |values: &[f32]| values.iter().sum::<f32>() / values.len() as f32;
    let cascade_rank: Vec<f32> = cascade.iter().map(|s| mean(&s.rank_correlation)).collect();
    let cascade_ssim: Vec<f32> = cascade
        .iter()
        .map(|s| mean(&s.ssim.iter().map(|v| v.unwrap()).collect::<Vec<_>>()))
        .collect();

    // Meaningful perturbation on 24 positives the model classifies correctly (a deletion mask
    // for a class the model does not see is meaningless). The paper's settings are for
    // ImageNet objects at 224; lesions of a few pixels at 48 need a finer mask (12×12: one value
    // per 4×4 pixels), the blur scaled with the image (σ = 10 · 48/224 ≈ 2, taken as 3) and a
    // stronger area term, so that the deleted region shrinks onto the lesion; 150 iterations
    // instead of 300 keep the test short. Measured on three models (seeds 2, 5, 7; the
    // numerics of lavapipe): λ₁ = 1e-4 hit 21, 20–21 and 22 of 24 (an H200 gave 10 of 12 on
    // this test's model), λ₁ = 1e-2 hit 24, 24 and 23; 300 iterations changed nothing.
    let subset: Vec<usize> = positives
        .iter()
        .copied()
        .filter(|&i| predicted[i] == 1)
        .take(24)
        .collect();
    let (subset_images, subset_masks) = pick(&subset);
    let settings = Perturbation {
        mask_size: Some([SIZE / 4, SIZE / 4]),
        replacement: Replacement::Blur { sigma: 3.0 },
        jitter: 1,
        iterations: 150,
        l1: 1e-2,
        ..Perturbation::default()
    };
    let perturbation = pollster::block_on(saliency::meaningful_perturbation(
        Question::new(
            explained,
            &subset_images,
            &vec![1; subset.len()],
            Score::Probability,
        )
        .unwrap(),
        &settings,
    ))
    .unwrap();
    let perturbation_hits = subset_masks
        .iter()
        .enumerate()
        .filter(|(i, mask)| {
            pointing_game_hit(
                &perturbation.saliency.data[i * plane..(i + 1) * plane],
                mask,
                SIZE,
                TOLERANCE,
            )
        })
        .count() as f64
        / subset.len() as f64;

    // Extremal perturbation on the same 24: the paper's settings scaled from 224 to 48 (bumps
    // of σ 21 every 7 pixels → σ 4 every 2, blur up to 20 → 4), areas around a lesion's
    // (2% of the image) and 100 iterations instead of 300 to keep the test short.
    let extremal_settings = ExtremalPerturbation {
        areas: vec![0.025, 0.05, 0.1],
        step: 2,
        sigma: 4.0,
        max_blur: 4.0,
        iterations: 100,
        ..ExtremalPerturbation::default()
    };
    let extremal = pollster::block_on(saliency::extremal_perturbation(
        Question::new(
            explained,
            &subset_images,
            &vec![1; subset.len()],
            Score::Logit,
        )
        .unwrap(),
        &extremal_settings,
    ))
    .unwrap();
    let extremal_hits = subset_masks
        .iter()
        .enumerate()
        .filter(|(i, mask)| {
            pointing_game_hit(
                &extremal.saliency.data[i * plane..(i + 1) * plane],
                mask,
                SIZE,
                TOLERANCE,
            )
        })
        .count() as f64
        / subset.len() as f64;

    // Sanity check: the same architecture with fresh random weights.
    let mut random_store = ParamStore::new(gpu());
    let random_model = ResNet::with_width(&mut random_store, "resnet18", 1, 2, 8, 99).unwrap();
    let random = pollster::block_on(saliency::gradient(
        Question::new(
            Explained {
                model: &random_model,
                store: &random_store,
            },
            &positive_images,
            &lesion_class,
            Score::Logit,
        )
        .unwrap(),
    ))
    .unwrap();
    let random_maps = to_maps(&random, Reduce::AbsMax).unwrap();
    let correlations: Vec<f32> = (0..positives.len())
        .map(|i| {
            rank_correlation(
                &gradient_maps.data[i * plane..(i + 1) * plane],
                &random_maps.data[i * plane..(i + 1) * plane],
            )
        })
        .collect();
    let mean_correlation = correlations.iter().sum::<f32>() / correlations.len() as f32;

    eprintln!(
        "ROAD (MoRF, LeRF) mean areas: gradient {road_gradient:.3?}, random order {road_random:.3?}; energy pointing game: gradient {gradient_energy:.3}, Grad-CAM {gradcam_energy:.3} (lesion share {lesion_share:.3}); cascading randomisation of the gradient, blocks {:?}: rank correlation {cascade_rank:.3?}, SSIM {cascade_ssim:.3?}",
        cascade.iter().map(|s| s.block.as_str()).collect::<Vec<_>>()
    );
    eprintln!(
        "trained in {trained_at:.1} s; accuracy {accuracy:.3}; pointing game over {} positives (chance {chance:.3}): gradient {gradient_hits:.3}, gradient × input {gxi_hits:.3}, guided backprop {guided_hits:.3}, SmoothGrad (10 samples) {smoothgrad_hits:.3}, IG {ig_hits:.3} (of 8; completeness error ≤ {worst_completeness:.3}), Grad-CAM {gradcam_hits:.3}, Grad-CAM++ {gradcam_plus_plus_hits:.3}, HiResCAM {hirescam_hits:.3}, LayerCAM {layercam_hits:.3}, Score-CAM {score_cam_hits:.3}, guided Grad-CAM {guided_gradcam_hits:.3}, occlusion {occlusion_hits:.3}, perturbation {perturbation_hits:.3}, extremal perturbation {extremal_hits:.3} (of {}); trained vs random rank correlation {mean_correlation:.3}; deletion / insertion AUC, gradient order {faithful:.3?} vs random order {shuffled_order:.3?}; {:.1} s in all",
        positives.len(),
        subset.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(accuracy >= 0.85, "held-out accuracy {accuracy}");
    assert!(
        faithful.0 < shuffled_order.0 && faithful.1 > shuffled_order.1,
        "deletion / insertion {faithful:?} vs random order {shuffled_order:?}"
    );
    assert!(
        worst_completeness < 0.1,
        "IG completeness error {worst_completeness} of F(x) − F(x')"
    );
    // Pointing-game floors for every method. Measured on lavapipe this session (2026-12-07):
    // gradient 0.95, gradient × input 0.89, guided backprop 0.97, SmoothGrad 0.95, IG 8 of 8,
    // at layer2 (a 6 × 6 map) Grad-CAM 0.68, Grad-CAM++ 0.71, HiResCAM 0.53, LayerCAM 0.50,
    // Score-CAM 0.71,
    // guided Grad-CAM 0.95,
    // occlusion 0.79 (with the mean as baseline; 0.03 with 0, below chance: see above),
    // perturbation 22 of 24.
    for (method, rate, floor) in [
        ("gradient", gradient_hits, 0.8),
        ("gradient × input", gxi_hits, 0.75),
        ("guided backprop", guided_hits, 0.8),
        ("SmoothGrad", smoothgrad_hits, 0.8),
        ("integrated gradients", ig_hits, 0.75),
        ("Grad-CAM", gradcam_hits, 0.3f64.max(2.0 * chance)),
        (
            "Grad-CAM++",
            gradcam_plus_plus_hits,
            0.3f64.max(2.0 * chance),
        ),
        ("HiResCAM", hirescam_hits, 0.3f64.max(2.0 * chance)),
        ("LayerCAM", layercam_hits, 0.3f64.max(2.0 * chance)),
        ("Score-CAM", score_cam_hits, 0.3f64.max(2.0 * chance)),
        ("guided Grad-CAM", guided_gradcam_hits, 0.8),
        ("occlusion", occlusion_hits, 0.65),
    ] {
        assert!(
            rate >= floor && rate > 2.0 * chance,
            "{method}: pointing game {rate:.3}, below {floor:.3} (chance {chance:.3})"
        );
    }
    // Measured on lavapipe (2026-12-07): ROAD (MoRF, LeRF) gradient (0.12, 0.84) against a
    // random order's (0.72, 0.68); energy gradient 0.20, Grad-CAM 0.07 on lesions covering
    // 0.023 of the image; after the full cascade rank correlation 0.12, SSIM 0.14 (0.78 and
    // 0.82 with only fc reset).
    assert!(
        road_gradient.0 < 0.5 * road_random.0 && road_gradient.1 > road_random.1,
        "ROAD (MoRF, LeRF) gradient {road_gradient:?} vs random order {road_random:?}"
    );
    assert!(
        gradient_energy > 4.0 * lesion_share && gradcam_energy > 2.0 * lesion_share,
        "energy pointing game: gradient {gradient_energy}, Grad-CAM {gradcam_energy}, lesion share {lesion_share}"
    );
    let (last_rank, last_ssim) = (
        cascade_rank[cascade.len() - 1],
        cascade_ssim[cascade.len() - 1],
    );
    assert!(
        last_rank < 0.5 && last_ssim < 0.5 && last_rank < cascade_rank[0],
        "cascading randomisation: rank correlation {cascade_rank:?}, SSIM {cascade_ssim:?}"
    );
    // Extremal perturbation: 22 of 24 on lavapipe (2026-12-07).
    assert!(
        extremal_hits >= 0.8,
        "extremal perturbation pointing game {extremal_hits}"
    );
    assert!(
        perturbation_hits >= 0.9,
        "perturbation pointing game {perturbation_hits}"
    );
    assert!(
        mean_correlation < 0.5,
        "trained and random maps correlate at {mean_correlation}"
    );
}
