//! Saliency methods on cases whose answer is known without the engine: SmoothGrad against the
//! mean of plain gradients on the very same noisy inputs, and meaningful perturbation on a
//! model whose score is the mean of one square of the image, so that the smallest region that
//! destroys it is that square on every adapter.

mod common;

use common::{Rng, gpu};
use gradlens::Tensor;
use gradlens::autograd::Var;
use gradlens::models::{Classifier, LesionNet};
use gradlens::nn::{Forward, Linear, ParamStore};
use gradlens::saliency::{
    self, Explained, ExtremalPerturbation, Perturbation, Question, Replacement, Score, SmoothGrad,
    pointing_game_hit, smoothgrad_inputs,
};

/// SmoothGrad's map is the mean over its noisy copies of |∂score/∂x|: computed here one copy
/// at a time through `saliency::gradient` from the same copies (`smoothgrad_inputs`), where
/// SmoothGrad runs them in batches.
#[test]
fn smoothgrad_is_the_mean_of_gradients_on_its_noisy_inputs() {
    let mut store = ParamStore::new(gpu());
    let model = LesionNet::new(&mut store, 1, 3, [4, 6, 8], 11).unwrap();
    let explained = Explained {
        model: &model,
        store: &store,
    };
    let [n, c, h, w] = [2, 1, 20, 20];
    let size = c * h * w;
    let images = Rng::new(12).vec(n * size);
    let x = Tensor::from_slice(gpu(), [n, c, h, w], &images).unwrap();
    let classes = [0, 2];
    let settings = SmoothGrad {
        samples: 7,
        batch: 3,
        seed: 13,
        ..SmoothGrad::default()
    };
    let logit = Question::new(explained, &x, &classes, Score::Logit).unwrap();
    let got = pollster::block_on(saliency::smoothgrad(logit, &settings)).unwrap();

    // An image's noise follows the image, not its place in the batch: the second image alone
    // gets the map it got second in a batch of two.
    let second = Tensor::from_slice(gpu(), [1, c, h, w], &images[size..]).unwrap();
    let alone = Question::new(explained, &second, &classes[1..], Score::Logit).unwrap();
    let alone = pollster::block_on(saliency::smoothgrad(alone, &settings)).unwrap();
    common::assert_close(
        "SmoothGrad alone",
        &alone.data,
        &got.data[size..],
        1e-4,
        1e-6,
    );

    let noisy = pollster::block_on(smoothgrad_inputs(&x, &settings))
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(noisy.len(), n * settings.samples * size);
    // The noise is N(0, σ²), σ = 15% of each image's value range.
    for (image, original) in images.chunks(size).enumerate() {
        let (lo, hi) = original
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let sigma = f64::from(0.15 * (hi - lo));
        let noise: Vec<f64> = noisy
            [image * settings.samples * size..(image + 1) * settings.samples * size]
            .iter()
            .enumerate()
            .map(|(k, &v)| f64::from(v - original[k % size]))
            .collect();
        let mean = noise.iter().sum::<f64>() / noise.len() as f64;
        let deviation =
            (noise.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / noise.len() as f64).sqrt();
        assert!(
            mean.abs() < 0.05 * sigma,
            "image {image}: noise mean {mean} for σ {sigma}"
        );
        assert!(
            (deviation / sigma - 1.0).abs() < 0.05,
            "image {image}: deviation {deviation}, σ {sigma}"
        );
    }
    let mut want = vec![0.0f32; n * size];
    for (copy, values) in noisy.chunks(size).enumerate() {
        let image = copy / settings.samples;
        let one = Tensor::from_slice(gpu(), [1, c, h, w], values).unwrap();
        let grad = pollster::block_on(saliency::gradient(
            Question::new(explained, &one, &classes[image..image + 1], Score::Logit).unwrap(),
        ))
        .unwrap();
        for (k, g) in grad.data.iter().enumerate() {
            want[image * size + k] += g.abs() / settings.samples as f32;
        }
    }
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0);
    common::assert_close("SmoothGrad", &got.data, &want, 1e-4, 1e-5 * scale);
    // The noise is there: the map is not the plain gradient's magnitude.
    let plain = pollster::block_on(saliency::gradient(logit)).unwrap();
    let differs = plain
        .data
        .iter()
        .zip(&got.data)
        .any(|(p, s)| (p.abs() - s).abs() > 1e-3 * scale);
    assert!(
        differs,
        "SmoothGrad's map equals |gradient|: no noise was added"
    );
}

/// Logits [mean of the square, 0]: class 0's score is the mean of one square of the image.
struct SquareMean {
    head: Linear,
}

impl Classifier for SquareMean {
    fn forward_with_aux(&self, f: &Forward, x: &Var) -> gradlens::Result<(Var, Vec<Var>)> {
        let flat = f.tape.flatten(x)?;
        Ok((self.head.forward(f, &flat)?, Vec::new()))
    }

    fn gradcam_layer(&self) -> String {
        String::new()
    }
}

const SIDE: usize = 32;

/// The square `SquareMean` reads: rows 8..16, columns 20..28 (whole cells of an 8 × 8 mask's
/// 4 × 4 pixels).
fn inside(y: usize, x: usize) -> bool {
    (8..16).contains(&y) && (20..28).contains(&x)
}

/// A bright square on a dim, slightly noisy background [SIDE × SIDE], the square's indicator,
/// and the model whose class 0 is the square's mean: (image, region, store, model).
fn square_case() -> (Vec<f32>, Vec<f32>, ParamStore, SquareMean) {
    let mut rng = Rng::new(14);
    let image: Vec<f32> = (0..SIDE * SIDE)
        .map(|i| match inside(i / SIDE, i % SIDE) {
            true => 3.0,
            false => 0.5 + 0.25 * rng.vec(1)[0],
        })
        .collect();
    let region: Vec<f32> = (0..SIDE * SIDE)
        .map(|i| f32::from(u8::from(inside(i / SIDE, i % SIDE))))
        .collect();
    let mut store = ParamStore::new(gpu());
    let head = Linear::new(&mut store, "fc", SIDE * SIDE, 2, None, 0).unwrap();
    let weight: Vec<f32> = region
        .iter()
        .map(|&r| r / 64.0)
        .chain(std::iter::repeat_n(0.0, SIDE * SIDE))
        .collect();
    let weight = Tensor::from_slice(gpu(), [2, SIDE * SIDE], &weight).unwrap();
    store.set("fc.weight", weight).unwrap();
    store
        .set("fc.bias", Tensor::zeros(gpu(), [2]).unwrap())
        .unwrap();
    (image, region, store, SquareMean { head })
}

/// Meaningful perturbation on `SquareMean`: only the square's pixels move the score, each by
/// its brightness above the blurred image, so the learnt deletion region is the square (at the
/// mask's resolution): the map peaks inside it, covers it, and is zero beyond two mask cells.
#[test]
fn perturbation_deletes_exactly_the_region_the_score_reads() {
    let (image, region, store, model) = square_case();
    let explained = Explained {
        model: &model,
        store: &store,
    };
    let x = Tensor::from_slice(gpu(), [1, 1, SIDE, SIDE], &image).unwrap();
    let settings = Perturbation {
        mask_size: Some([SIDE / 4, SIDE / 4]),
        replacement: Replacement::Blur { sigma: 3.0 },
        jitter: 0,
        iterations: 150,
        // No smoothness term: Adam's normalised steps let it grow the region cell by cell
        // from the square's edge, where its pull beats the area term's; without it the
        // smallest destroying region is unique.
        tv: 0.0,
        l1: 1e-3,
        ..Perturbation::default()
    };
    let result = pollster::block_on(saliency::meaningful_perturbation(
        Question::new(explained, &x, &[0], Score::Logit).unwrap(),
        &settings,
    ))
    .unwrap();
    let map = &result.saliency.data;
    assert!(
        pointing_game_hit(map, &region, SIDE, 0.0),
        "the map's peak lies outside the square"
    );
    // The mask is upsampled bilinearly from cells of 4 × 4 pixels: deleting the square's
    // border pixels whole takes the cells around it too, and interpolation spreads those a
    // cell further. Beyond two cells of the square nothing reads the image, so nothing is
    // deleted there.
    let near = |y: usize, x: usize| y < 24 && (12..32).contains(&x);
    let mean = |part: &dyn Fn(usize, usize) -> bool| {
        let values: Vec<f32> = (0..SIDE * SIDE)
            .filter(|&i| part(i / SIDE, i % SIDE))
            .map(|i| map[i])
            .collect();
        values.iter().sum::<f32>() / values.len() as f32
    };
    let inside_mean = mean(&inside);
    let far_mean = mean(&|y, x| !near(y, x));
    let far_max = (0..SIDE * SIDE)
        .filter(|&i| !near(i / SIDE, i % SIDE))
        .map(|i| map[i])
        .fold(0f32, f32::max);
    assert!(
        inside_mean > 0.9 && far_max < 0.05,
        "deletion inside the square {inside_mean}; beyond two cells of it mean {far_mean}, max \
         {far_max}"
    );
    // Deleted means blurred: the square keeps about half its brightness above the background.
    assert!(
        result.perturbed_score[0] < 0.7 * result.original_score[0],
        "the score went from {} to only {}",
        result.original_score[0],
        result.perturbed_score[0]
    );
}

/// Extremal perturbation on `SquareMean` with the square's own area (1/16 of the image): the
/// mask that keeps the most of the score at that area keeps the square, since blurring it
/// is what lowers its mean; nothing outside it is worth keeping.
#[test]
fn extremal_perturbation_keeps_exactly_the_region_the_score_reads() {
    let (image, region, store, model) = square_case();
    let explained = Explained {
        model: &model,
        store: &store,
    };
    let x = Tensor::from_slice(gpu(), [1, 1, SIDE, SIDE], &image).unwrap();
    let settings = ExtremalPerturbation {
        areas: vec![1.0 / 16.0],
        step: 2,
        sigma: 2.0,
        max_blur: 4.0,
        iterations: 150,
        ..ExtremalPerturbation::default()
    };
    let result = pollster::block_on(saliency::extremal_perturbation(
        Question::new(explained, &x, &[0], Score::Logit).unwrap(),
        &settings,
    ))
    .unwrap();
    let mask = &result.masks.data;
    let mean = |part: &dyn Fn(usize, usize) -> bool| {
        let values: Vec<f32> = (0..SIDE * SIDE)
            .filter(|&i| part(i / SIDE, i % SIDE))
            .map(|i| mask[i])
            .collect();
        values.iter().sum::<f32>() / values.len() as f32
    };
    // Two pixels' margin: a bump's shoulder.
    let near = |y: usize, x: usize| (6..18).contains(&y) && (18..30).contains(&x);
    let (inside_mean, far_mean) = (mean(&inside), mean(&|y, x| !near(y, x)));
    assert!(
        pointing_game_hit(&result.saliency.data, &region, SIDE, 0.0),
        "the map's peak lies outside the square"
    );
    // Bumps of σ 2 every 2 pixels reach 0.88 between their centres (measured: 0.75 over the
    // square with its edge pixels, 0.004 beyond two pixels).
    let total: f32 = mask.iter().sum();
    let near_share = (0..SIDE * SIDE)
        .filter(|&i| near(i / SIDE, i % SIDE))
        .map(|i| mask[i])
        .sum::<f32>()
        / total;
    assert!(
        inside_mean > 0.6 && far_mean < 0.02 && near_share > 0.9,
        "mask inside the square {inside_mean}, beyond two pixels of it {far_mean}; {near_share} \
         of its mass within two pixels"
    );
    let kept = result.kept_area[0];
    // Bumps too narrow to reach every pixel from the grid (3σ < step / 2) are refused.
    let narrow = ExtremalPerturbation {
        step: 7,
        sigma: 1.0,
        ..settings.clone()
    };
    let refused = pollster::block_on(saliency::extremal_perturbation(
        Question::new(explained, &x, &[0], Score::Logit).unwrap(),
        &narrow,
    ))
    .err()
    .expect("σ 1 every 7 pixels is refused")
    .to_string();
    assert!(refused.contains("σ at least step / 6"), "{refused}");
    // ROAD's fractions must rise.
    let maps = saliency::Attribution {
        dims: vec![1, SIDE, SIDE],
        data: region.clone(),
    };
    let unsorted = saliency::Road {
        fractions: vec![0.5, 0.2],
        ..saliency::Road::default()
    };
    let refused = pollster::block_on(saliency::road(explained, &x, &[0], &maps, &unsorted))
        .expect_err("unsorted fractions are refused")
        .to_string();
    assert!(refused.contains("increasing order"), "{refused}");
    assert!(
        (kept - 1.0 / 16.0).abs() < 0.03,
        "kept area {kept}, asked 1/16"
    );
    // The square kept sharp: its mean stays near 3, where blurring it at σ 4 loses much.
    assert!(result.score[0] > 2.4, "preserved score {}", result.score[0]);
}

/// The CAM family and Score-CAM need a convolutional layer: on a model without one each ends
/// with one line saying so.
#[test]
fn class_activation_maps_need_a_convolutional_layer() {
    let (image, _, store, model) = square_case();
    let explained = Explained {
        model: &model,
        store: &store,
    };
    let x = Tensor::from_slice(gpu(), [1, 1, SIDE, SIDE], &image).unwrap();
    let logit = Question::new(explained, &x, &[0], Score::Logit).unwrap();
    let errors = [
        pollster::block_on(saliency::grad_cam(logit, None)).err(),
        pollster::block_on(saliency::score_cam(
            logit,
            None,
            &saliency::ScoreCam::default(),
        ))
        .err(),
    ];
    for error in errors {
        let message = error.expect("an error").to_string();
        assert!(
            message.contains("no convolutional layer") && !message.contains('\n'),
            "{message}"
        );
    }
}
