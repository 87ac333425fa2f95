//! Saliency methods on a model at 224×224, batch 1 (random weights: the cost does not depend
//! on them): seconds per method, each after a warm-up pass, with the adapter's name. The costly
//! methods run with fewer samples / steps / iterations / windows than their defaults (noted per
//! line) and the time of the default settings is extrapolated from the per-pass cost.
//!
//!   cargo bench --bench saliency [-- resnet18 ...]    # ResNet-50 unless archs are named
//!   cargo bench --bench saliency -- resnet50 --default-maps
//!
//!   cargo bench --bench saliency -- resnet18 resnet50 --perturbation
//!
//! `--default-maps` times only SmoothGrad-50 and IG-50 with their default settings, map and
//! all, as `gradlens saliency` runs them (`method_maps`): where the per-sample work outside
//! the network (noise, accumulation, channel reduction, transfers) shows. `--perturbation`
//! times only meaningful and extremal perturbation, 20 iterations each: where the masks'
//! own arithmetic per iteration shows.

use std::time::Instant;

use gradlens::autograd::{Tape, Var};
use gradlens::models::{ModelConfig, build};
use gradlens::nn::{Forward, Mode, ParamStore};
use gradlens::saliency::{
    self, Cam, Explained, ExtremalPerturbation, IntegratedGradients, Method, MethodSettings,
    Occlusion, Perturbation, Question, Score, ScoreCam, SmoothGrad, method_maps,
};
use gradlens::train::SyntheticLesions;
use gradlens::{Gpu, Tensor};

fn main() {
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let archs = match chosen.is_empty() {
        true => vec!["resnet50".to_string()],
        false => chosen,
    };
    let gpu = Gpu::new().expect("a GPU adapter");
    let flag = |name: &str| std::env::args().any(|a| a == name);
    for arch in &archs {
        // Random weights: the cost does not depend on them.
        let mut store = ParamStore::new(&gpu);
        let model = build(arch, &mut store, &ModelConfig::default()).expect("a known arch");
        let explained = Explained {
            model: model.as_ref(),
            store: &store,
        };
        let x = lesion_image(&gpu);
        let what = if flag("--default-maps") {
            "default maps"
        } else if flag("--perturbation") {
            "perturbation"
        } else {
            "saliency"
        };
        println!("{what} on {arch}, 1×3×224×224, on {}", gpu.describe());
        match what {
            "default maps" => bench_default_maps(explained, &x),
            // 20 iterations each: where the masks' own arithmetic per iteration shows.
            "perturbation" => bench_perturbation(explained, &x, 20),
            _ => bench_arch(explained, &x),
        }
    }
}

/// SmoothGrad-50 and IG-50 maps of one image at their defaults, each once after a warm-up.
fn bench_default_maps(explained: Explained<'_>, x: &Tensor) {
    for method in [Method::Smoothgrad, Method::IntegratedGradients] {
        let run = || {
            pollster::block_on(method_maps(
                explained,
                x,
                &[0],
                method,
                &MethodSettings::default(),
            ))
            .expect("maps")
        };
        run();
        let start = Instant::now();
        run();
        println!(
            "  {}: {:.2} s",
            method.name(),
            start.elapsed().as_secs_f64()
        );
    }
}

/// Both perturbation methods at `iterations` (each timed once after a warm-up), with the
/// time of their default 300 extrapolated per pass.
fn bench_perturbation(explained: Explained<'_>, x: &Tensor, iterations: usize) {
    let class = [0];
    let logit = Question::new(explained, x, &class, Score::Logit).expect("question");
    let probability = Question::new(explained, x, &class, Score::Probability).expect("question");
    let perturbation = Perturbation {
        iterations,
        ..Perturbation::default()
    };
    let seconds = time(
        &format!("meaningful perturbation, {iterations} iterations"),
        &|| {
            pollster::block_on(saliency::meaningful_perturbation(
                probability,
                &perturbation,
            ))
            .expect("perturbation");
        },
    );
    let passes = (iterations + 1) as f64;
    println!(
        "    → default 300 iterations ≈ {:.0} s",
        seconds * 301.0 / passes
    );
    let extremal = ExtremalPerturbation {
        iterations,
        ..ExtremalPerturbation::default()
    };
    let seconds = time(
        &format!("extremal perturbation, 3 areas, {iterations} iterations"),
        &|| {
            pollster::block_on(saliency::extremal_perturbation(logit, &extremal))
                .expect("extremal");
        },
    );
    println!(
        "    → default 300 iterations ≈ {:.0} s",
        seconds * 301.0 / passes
    );
}

/// Runs `run` once to warm up, then times one more run.
fn time(name: &str, run: &dyn Fn()) -> f64 {
    run();
    let start = Instant::now();
    run();
    let seconds = start.elapsed().as_secs_f64();
    println!("  {name}: {seconds:.2} s");
    seconds
}

/// One synthetic lesion image at 224, its gray plane repeated in three channels.
fn lesion_image(gpu: &Gpu) -> Tensor {
    let image = SyntheticLesions {
        size: 224,
        ..SyntheticLesions::default()
    }
    .generate(0, 1);
    let rgb: Vec<f32> = image
        .images
        .iter()
        .cycle()
        .take(3 * 224 * 224)
        .copied()
        .collect();
    Tensor::from_slice(gpu, [1, 3, 224, 224], &rgb).expect("upload")
}

fn bench_arch(explained: Explained<'_>, x: &Tensor) {
    let class = [0];
    let logit = Question::new(explained, x, &class, Score::Logit).expect("question");
    time("gradient", &|| {
        pollster::block_on(saliency::gradient(logit)).expect("gradient");
    });
    time("gradient × input", &|| {
        pollster::block_on(saliency::gradient_x_input(logit)).expect("gxi");
    });
    time("guided backprop", &|| {
        pollster::block_on(saliency::guided_backprop(logit)).expect("guided");
    });
    for (name, kind) in [
        ("grad-cam (last block)", Cam::GradCam),
        ("grad-cam++", Cam::GradCamPlusPlus),
        ("hirescam", Cam::HiResCam),
        ("layercam", Cam::LayerCam),
    ] {
        time(name, &|| {
            pollster::block_on(saliency::class_activation_map(logit, None, kind)).expect("cam");
        });
    }
    // Score-CAM costs one forward pass per channel of its layer, whichever layer: timed at
    // layer1 and extrapolated to the last block's channels.
    let tape = Tape::no_grad();
    let f = Forward::new(&tape, explained.store, Mode::Eval).capturing();
    explained
        .model
        .forward(&f, &Var::constant(x.clone()))
        .expect("forward");
    let channels = |layer: &str| f.marked(layer).expect("a marked layer").dims()[1];
    let last = explained.model.gradcam_layer();
    let (few, many) = (channels("layer1"), channels(&last));
    let seconds = time(
        &format!("score-cam at layer1 ({few} channels, 16 per pass)"),
        &|| {
            pollster::block_on(saliency::score_cam(
                logit,
                Some("layer1"),
                &ScoreCam::default(),
            ))
            .expect("score-cam");
        },
    );
    println!(
        "    → at {last} ({many} channels) ≈ {:.0} s",
        seconds * many as f64 / few as f64
    );
    time("guided grad-cam", &|| {
        pollster::block_on(saliency::guided_grad_cam(logit, None)).expect("guided gradcam");
    });
    let smooth = SmoothGrad {
        samples: 8,
        batch: 8,
        ..SmoothGrad::default()
    };
    let seconds = time("smoothgrad, 8 samples in one batch", &|| {
        pollster::block_on(saliency::smoothgrad(logit, &smooth)).expect("smoothgrad");
    });
    println!("    → default 50 samples ≈ {:.1} s", seconds * 50.0 / 8.0);
    let ig = IntegratedGradients {
        steps: 8,
        batch: 8,
        ..IntegratedGradients::default()
    };
    let seconds = time("integrated gradients, 8 steps in one batch", &|| {
        pollster::block_on(saliency::integrated_gradients(logit, &ig)).expect("ig");
    });
    println!("    → default 50 steps ≈ {:.1} s", seconds * 50.0 / 8.0);
    let coarse = Occlusion {
        patch: 32,
        stride: 32,
        ..Occlusion::default()
    };
    let seconds = time(
        "occlusion, 49 windows (32 every 32) in batches of 16",
        &|| {
            pollster::block_on(saliency::occlusion(logit, &coarse)).expect("occlusion");
        },
    );
    println!(
        "    → default 729 windows (16 every 8) ≈ {:.0} s",
        seconds * 729.0 / 49.0
    );
    bench_perturbation(explained, x, 5);
}
