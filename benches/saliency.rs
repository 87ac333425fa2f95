//! Saliency methods on a model at 224×224, batch 1 (random weights: the cost does not depend
//! on them): seconds per method, each after a warm-up pass, with the adapter's name. The costly
//! methods run with fewer samples / steps / iterations / windows than their defaults (noted per
//! line) and the time of the default settings is extrapolated from the per-pass cost.
//!
//!   cargo bench --bench saliency [-- resnet18 ...]    # ResNet-50 unless archs are named

use std::time::Instant;

use gradlens::models::{ModelConfig, build};
use gradlens::nn::ParamStore;
use gradlens::saliency::{
    self, Cam, Explained, IntegratedGradients, Occlusion, Perturbation, Question, Score, SmoothGrad,
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
    for arch in &archs {
        bench_arch(&gpu, arch);
    }
}

fn bench_arch(gpu: &Gpu, arch: &str) {
    let gpu = gpu.clone();
    let mut store = ParamStore::new(&gpu);
    let model = build(arch, &mut store, &ModelConfig::default()).expect("a known arch");
    let explained = Explained {
        model: model.as_ref(),
        store: &store,
    };
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
    let x = Tensor::from_slice(&gpu, [1, 3, 224, 224], &rgb).expect("upload");
    let class = [0];
    println!("saliency on {arch}, 1×3×224×224, on {}", gpu.describe());
    let logit = Question::new(explained, &x, &class, Score::Logit).expect("question");
    let probability = Question::new(explained, &x, &class, Score::Probability).expect("question");
    let time = |name: &str, run: &dyn Fn()| {
        run();
        let start = Instant::now();
        run();
        let seconds = start.elapsed().as_secs_f64();
        println!("  {name}: {seconds:.2} s");
        seconds
    };
    let pass = time("gradient", &|| {
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
    let perturbation = Perturbation {
        iterations: 5,
        ..Perturbation::default()
    };
    let seconds = time("meaningful perturbation, 5 iterations", &|| {
        pollster::block_on(saliency::meaningful_perturbation(
            probability,
            &perturbation,
        ))
        .expect("perturbation");
    });
    println!(
        "    → default 300 iterations ≈ {:.0} s ({:.2} s per plain gradient pass)",
        seconds * 301.0 / 6.0,
        pass
    );
}
