//! Saliency against Captum on a small model (LesionNet [4, 6, 8], formula weights, two 20×20
//! images): tests/fixtures/saliency.safetensors, made by tools/make_saliency_fixtures.py.

mod common;

use common::formula::fill_with_formula;
use common::{assert_close, gpu};
use gradlens::Tensor;
use gradlens::models::LesionNet;
use gradlens::nn::ParamStore;
use gradlens::saliency::{
    self, Cam, Explained, IntegratedGradients, Occlusion, Path, Question, Score, ScoreCam,
    SmoothGrad,
};
use gradlens::weights::WeightsFile;

#[test]
fn saliency_methods_match_captum() {
    let fixtures =
        WeightsFile::open(std::path::Path::new("tests/fixtures/saliency.safetensors")).unwrap();
    let get = |name: &str| {
        fixtures
            .get(name)
            .unwrap_or_else(|| panic!("fixture {name}"))
            .clone()
    };
    let mut store = ParamStore::new(gpu());
    let model = LesionNet::new(&mut store, 1, 3, [4, 6, 8], 0).unwrap();
    fill_with_formula(&mut store);
    let explained = Explained {
        model: &model,
        store: &store,
    };
    let input = get("input");
    let x = Tensor::from_slice(gpu(), input.dims.clone(), &input.data).unwrap();
    let targets = [0, 2];

    let logits = pollster::block_on(saliency::logits(explained, &x)).unwrap();
    assert_close("logits", &logits.data, &get("logits").data, 1e-5, 1e-5);

    let logit = Question::new(explained, &x, &targets, Score::Logit).unwrap();
    let gradient = pollster::block_on(saliency::gradient(logit)).unwrap();
    assert_close_to_scale(
        "Saliency (abs=False)",
        &gradient.data,
        &get("saliency").data,
    );

    let guided = pollster::block_on(saliency::guided_backprop(logit)).unwrap();
    assert_close_to_scale("GuidedBackprop", &guided.data, &get("guided_backprop").data);

    let (cam, _) = pollster::block_on(saliency::grad_cam(logit, Some("features"))).unwrap();
    assert_close_to_scale(
        "LayerGradCam (ReLU'd)",
        &cam.data,
        &get("gradcam_relu").data,
    );

    let settings = IntegratedGradients {
        steps: 32,
        path: Path::GaussLegendre,
        ..Default::default()
    };
    let ig = pollster::block_on(saliency::integrated_gradients(logit, &settings)).unwrap();
    assert_close_to_scale(
        "IntegratedGradients (gausslegendre)",
        &ig.attribution.data,
        &get("integrated_gradients").data,
    );
    assert_close(
        "IG delta",
        &ig.completeness_error,
        &get("integrated_gradients_delta").data,
        1e-2,
        2e-3,
    );

    // Captum's riemann_trapezoid step sizes sum to (n − 1)/n, ours to 1: compare scaled.
    let settings = IntegratedGradients {
        path: Path::RiemannTrapezoid,
        ..settings
    };
    let ig = pollster::block_on(saliency::integrated_gradients(logit, &settings)).unwrap();
    let scaled: Vec<f32> = ig
        .attribution
        .data
        .iter()
        .map(|v| v * 31.0 / 32.0)
        .collect();
    assert_close_to_scale(
        "IntegratedGradients (riemann_trapezoid)",
        &scaled,
        &get("integrated_gradients_riemann_trapezoid").data,
    );

    let guided_cam =
        pollster::block_on(saliency::guided_grad_cam(logit, Some("features"))).unwrap();
    assert_eq!(guided_cam.dims, [2, 1, 20, 20]);
    assert_close_to_scale(
        "GuidedGradCam",
        &guided_cam.data,
        &get("guided_gradcam").data,
    );

    // The CAM family against pytorch-grad-cam (its low-resolution maps, ReLU'd, before its
    // min-max scaling); its GradCAM agrees with Captum's LayerGradCam to 5e-9.
    for (name, kind) in [
        ("cam_gradcam", Cam::GradCam),
        ("cam_gradcam_plus_plus", Cam::GradCamPlusPlus),
        ("cam_hirescam", Cam::HiResCam),
        ("cam_layercam", Cam::LayerCam),
    ] {
        let (low, _) = pollster::block_on(saliency::class_activation_map(
            logit,
            Some("features"),
            kind,
        ))
        .unwrap();
        assert_close_to_scale(name, &low.data, &get(name).data);
    }
    // Score-CAM in batches of 3, so that a batch ends part-way through the 8 channels.
    let (low, high) = pollster::block_on(saliency::score_cam(
        logit,
        Some("features"),
        &ScoreCam { batch: 3 },
    ))
    .unwrap();
    assert_eq!(high.dims, [2, 20, 20]);
    assert_close_to_scale("cam_scorecam", &low.data, &get("cam_scorecam").data);

    // NoiseTunnel(Saliency) against SmoothGrad: each draws its own noise, so the two means of
    // 8192 samples agree within their sampling error. Each pixel's difference over its standard
    // error (√2 × Captum's, both means being of as many samples) stays under 6; with half the
    // noise, the same check fails, so it can tell a wrong σ.
    let noise_tunnel = get("smoothgrad_noise_tunnel").data;
    let stderr = get("smoothgrad_noise_tunnel_stderr").data;
    let worst_z = |noise_level: f32| {
        let settings = SmoothGrad {
            noise_level,
            samples: 8192,
            batch: 1024,
            seed: 7,
        };
        let ours = pollster::block_on(saliency::smoothgrad(logit, &settings)).unwrap();
        ours.data
            .iter()
            .zip(&noise_tunnel)
            .zip(&stderr)
            .map(|((o, c), e)| (o - c).abs() / (std::f32::consts::SQRT_2 * e + 1e-7))
            .fold(0.0f32, f32::max)
    };
    let (right, half) = (worst_z(0.15), worst_z(0.075));
    eprintln!(
        "SmoothGrad vs NoiseTunnel: the worst pixel {right:.2} standard errors apart; with half \
         the noise {half:.1}"
    );
    assert!(
        right < 6.0,
        "SmoothGrad vs NoiseTunnel: a pixel {right} standard errors apart"
    );
    assert!(
        half > 6.0,
        "half the noise is {half} standard errors from NoiseTunnel at most"
    );

    // Occlusion: windows in batches of 7 (so a batch ends part-way through the windows), the
    // second case's last windows cut off at the edges. Captum's map has one channel here, as
    // the input has; gradlens's is that map.
    for (name, patch, stride, baseline) in [
        ("occlusion_5_3", 5, 3, 0.0),
        ("occlusion_6_4_half", 6, 4, 0.5),
    ] {
        let settings = Occlusion {
            patch,
            stride,
            baseline,
            batch: 7,
        };
        let map = pollster::block_on(saliency::occlusion(logit, &settings)).unwrap();
        assert_eq!(map.dims, [2, 20, 20]);
        assert_close_to_scale(name, &map.data, &get(name).data);
    }
}

/// Every value within 1e-4 of the largest |value| of Captum's map: a bound relative to the
/// map's own scale (an absolute 1e-3 was 3% of these maps' mean). lavapipe is within 2e-7.
#[track_caller]
fn assert_close_to_scale(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{what}: Captum's map is all zeros");
    let (index, worst) = got
        .iter()
        .zip(want)
        .map(|(g, w)| {
            if g.is_nan() {
                f32::INFINITY
            } else {
                (g - w).abs()
            }
        })
        .enumerate()
        .fold(
            (0, 0f32),
            |best, (i, d)| if d > best.1 { (i, d) } else { best },
        );
    assert!(
        worst <= 1e-4 * scale,
        "{what}: |diff| {worst:e} at {index} (got {}, reference {}) exceeds 1e-4 of the map's \
         largest value {scale:e}",
        got[index],
        want[index]
    );
}
