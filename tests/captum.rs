//! Saliency against Captum on a small model (LesionNet [4, 6, 8], formula weights, two 20×20
//! images): tests/fixtures/saliency.safetensors, made by tools/make_saliency_fixtures.py.

mod common;

use common::formula::fill_with_formula;
use common::{assert_close, gpu};
use gradlens::Tensor;
use gradlens::models::LesionNet;
use gradlens::nn::ParamStore;
use gradlens::saliency::{self, Explained, IntegratedGradients, Path, Score};
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

    let gradient =
        pollster::block_on(saliency::gradient(explained, &x, &targets, Score::Logit)).unwrap();
    assert_close(
        "Saliency (abs=False)",
        &gradient.data,
        &get("saliency").data,
        1e-4,
        1e-5,
    );

    let guided = pollster::block_on(saliency::guided_backprop(
        explained,
        &x,
        &targets,
        Score::Logit,
    ))
    .unwrap();
    assert_close(
        "GuidedBackprop",
        &guided.data,
        &get("guided_backprop").data,
        1e-4,
        1e-5,
    );

    let (cam, _) = pollster::block_on(saliency::grad_cam(
        explained,
        &x,
        &targets,
        Score::Logit,
        Some("features"),
    ))
    .unwrap();
    assert_close(
        "LayerGradCam (ReLU'd)",
        &cam.data,
        &get("gradcam_relu").data,
        1e-4,
        1e-5,
    );

    // Near-ties in max-pool windows along the path can route a gradient differently from
    // PyTorch: an absolute tolerance of 1e-3 (the fixture tool measured the margins).
    let settings = IntegratedGradients {
        steps: 32,
        path: Path::GaussLegendre,
        ..Default::default()
    };
    let ig = pollster::block_on(saliency::integrated_gradients(
        explained,
        &x,
        &targets,
        Score::Logit,
        &settings,
    ))
    .unwrap();
    assert_close(
        "IntegratedGradients (gausslegendre)",
        &ig.attribution.data,
        &get("integrated_gradients").data,
        1e-3,
        1e-3,
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
    let ig = pollster::block_on(saliency::integrated_gradients(
        explained,
        &x,
        &targets,
        Score::Logit,
        &settings,
    ))
    .unwrap();
    let scaled: Vec<f32> = ig
        .attribution
        .data
        .iter()
        .map(|v| v * 31.0 / 32.0)
        .collect();
    assert_close(
        "IntegratedGradients (riemann_trapezoid)",
        &scaled,
        &get("integrated_gradients_riemann_trapezoid").data,
        1e-3,
        1e-3,
    );
}
