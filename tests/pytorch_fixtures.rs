//! gradlens against PyTorch's own numbers (tests/fixtures, made by tools/make_fixtures.py):
//! convolution (strided, padded, non-square, dilated, grouped), pooling (ceil_mode,
//! count_include_pad, adaptive), batch norm (train and eval), cross-entropy.

mod common;

use std::collections::HashMap;

use common::{assert_close, gpu};
use gradlens::Tensor;
use gradlens::kernels::conv2d::{
    self, Conv2d,
    ConvAlgorithm::Auto,
    ConvGradient::{Input, Weight},
};
use gradlens::kernels::pool::{self, Pool2d};
use gradlens::kernels::{batchnorm, loss, softmax};
use safetensors::SafeTensors;
use serde_json::Value;

struct Fixture {
    bytes: Vec<u8>,
    settings: HashMap<String, String>,
}

impl Fixture {
    fn open(name: &str) -> Self {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
        let settings = metadata.metadata().clone().unwrap_or_default();
        Self { bytes, settings }
    }

    /// Case names (the metadata keys), sorted.
    fn cases(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .settings
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        names.sort();
        assert!(!names.is_empty(), "no fixture case starts with {prefix}");
        names
    }

    fn settings(&self, case: &str) -> Value {
        serde_json::from_str(&self.settings[case]).unwrap()
    }

    fn values(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let tensors = SafeTensors::deserialize(&self.bytes).unwrap();
        let view = tensors
            .tensor(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        (
            view.shape().to_vec(),
            bytemuck::pod_collect_to_vec(view.data()),
        )
    }

    fn tensor(&self, name: &str) -> Tensor {
        let (shape, data) = self.values(name);
        Tensor::from_slice(gpu(), shape, &data).unwrap()
    }
}

/// A JSON number or [h, w] pair as a per-axis pair.
fn pair(value: &Value) -> [usize; 2] {
    match value {
        Value::Array(items) => [
            items[0].as_u64().unwrap() as usize,
            items[1].as_u64().unwrap() as usize,
        ],
        number => [number.as_u64().unwrap() as usize; 2],
    }
}

fn pool_of(settings: &Value) -> Pool2d {
    Pool2d {
        kernel: pair(&settings["kernel"]),
        stride: pair(&settings["stride"]),
        padding: pair(&settings["padding"]),
        ceil_mode: settings["ceil_mode"].as_bool().unwrap(),
    }
}

#[test]
fn pooling_matches_pytorch() {
    let fixture = Fixture::open("pool.safetensors");
    for case in fixture.cases("max.") {
        let config = pool_of(&fixture.settings(&case));
        let x = fixture.tensor(&format!("{case}.x"));
        let y = pool::max_pool2d(&x, &config).unwrap();
        assert_eq!(
            y.dims(),
            fixture.values(&format!("{case}.y")).0.as_slice(),
            "{case}"
        );
        assert_close(
            &case,
            &y.to_vec().unwrap(),
            &fixture.values(&format!("{case}.y")).1,
            0.0,
            0.0,
        );
        let grad =
            pool::max_pool2d_backward(&x, &fixture.tensor(&format!("{case}.grad_out")), &config)
                .unwrap();
        assert_close(
            &format!("{case} grad"),
            &grad.to_vec().unwrap(),
            &fixture.values(&format!("{case}.grad_x")).1,
            1e-6,
            1e-6,
        );
    }
    for case in fixture.cases("avg.") {
        let settings = fixture.settings(&case);
        let config = pool_of(&settings);
        let include_pad = settings["count_include_pad"].as_bool().unwrap();
        let x = fixture.tensor(&format!("{case}.x"));
        let y = pool::avg_pool2d(&x, &config, include_pad).unwrap();
        assert_eq!(
            y.dims(),
            fixture.values(&format!("{case}.y")).0.as_slice(),
            "{case}"
        );
        assert_close(
            &case,
            &y.to_vec().unwrap(),
            &fixture.values(&format!("{case}.y")).1,
            1e-5,
            1e-6,
        );
        let grad_out = fixture.tensor(&format!("{case}.grad_out"));
        let grad = pool::avg_pool2d_backward(&x, &grad_out, &config, include_pad).unwrap();
        assert_close(
            &format!("{case} grad"),
            &grad.to_vec().unwrap(),
            &fixture.values(&format!("{case}.grad_x")).1,
            1e-5,
            1e-6,
        );
    }
    for case in fixture.cases("adaptive.") {
        let output = pair(&fixture.settings(&case)["output"]);
        let x = fixture.tensor(&format!("{case}.x"));
        let y = pool::adaptive_avg_pool2d(&x, output).unwrap();
        assert_close(
            &case,
            &y.to_vec().unwrap(),
            &fixture.values(&format!("{case}.y")).1,
            1e-5,
            1e-6,
        );
        let grad =
            pool::adaptive_avg_pool2d_backward(&x, &fixture.tensor(&format!("{case}.grad_out")))
                .unwrap();
        assert_close(
            &format!("{case} grad"),
            &grad.to_vec().unwrap(),
            &fixture.values(&format!("{case}.grad_x")).1,
            1e-5,
            1e-6,
        );
    }
}

#[test]
fn batch_norm_matches_pytorch() {
    let fixture = Fixture::open("batchnorm.safetensors");
    for case in fixture.cases("train.") {
        let settings = fixture.settings(&case);
        let eps = settings["eps"].as_f64().unwrap() as f32;
        let momentum = settings["momentum"].as_f64().unwrap() as f32;
        let t = |suffix: &str| fixture.tensor(&format!("{case}.{suffix}"));
        let want = |suffix: &str| fixture.values(&format!("{case}.{suffix}")).1;
        let (x, weight, bias) = (t("x"), t("param0"), t("param1"));
        let stats = batchnorm::batch_norm_statistics(&x).unwrap();
        let y = batchnorm::batch_norm_forward(
            &x,
            &stats.mean,
            &stats.variance,
            &weight,
            &bias,
            eps,
            Default::default(),
        )
        .unwrap();
        assert_close(
            &format!("{case} y"),
            &y.to_vec().unwrap(),
            &want("y"),
            1e-4,
            1e-5,
        );
        let grads = batchnorm::batch_norm_backward(
            &x,
            &t("grad_out"),
            &stats.mean,
            &stats.variance,
            &weight,
            eps,
            true,
        )
        .unwrap();
        assert_close(
            &format!("{case} grad_x"),
            &grads.grad_input.to_vec().unwrap(),
            &want("grad_x"),
            1e-3,
            1e-4,
        );
        assert_close(
            &format!("{case} grad_weight"),
            &grads.grad_weight.to_vec().unwrap(),
            &want("grad_param0"),
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{case} grad_bias"),
            &grads.grad_bias.to_vec().unwrap(),
            &want("grad_param1"),
            1e-4,
            1e-4,
        );
        let (running_mean, running_var) = (t("running_mean_before"), t("running_var_before"));
        batchnorm::batch_norm_update_running(&x, &stats, &running_mean, &running_var, momentum)
            .unwrap();
        assert_close(
            &format!("{case} running_mean"),
            &running_mean.to_vec().unwrap(),
            &want("running_mean_after"),
            1e-5,
            1e-6,
        );
        assert_close(
            &format!("{case} running_var"),
            &running_var.to_vec().unwrap(),
            &want("running_var_after"),
            1e-5,
            1e-6,
        );
    }
    for case in fixture.cases("eval.") {
        let eps = fixture.settings(&case)["eps"].as_f64().unwrap() as f32;
        let t = |suffix: &str| fixture.tensor(&format!("{case}.{suffix}"));
        let want = |suffix: &str| fixture.values(&format!("{case}.{suffix}")).1;
        let (x, weight, bias, mean, var) = (
            t("x"),
            t("param0"),
            t("param1"),
            t("running_mean"),
            t("running_var"),
        );
        let y =
            batchnorm::batch_norm_forward(&x, &mean, &var, &weight, &bias, eps, Default::default())
                .unwrap();
        assert_close(
            &format!("{case} y"),
            &y.to_vec().unwrap(),
            &want("y"),
            1e-5,
            1e-5,
        );
        let grads =
            batchnorm::batch_norm_backward(&x, &t("grad_out"), &mean, &var, &weight, eps, false)
                .unwrap();
        assert_close(
            &format!("{case} grad_x"),
            &grads.grad_input.to_vec().unwrap(),
            &want("grad_x"),
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("{case} grad_weight"),
            &grads.grad_weight.to_vec().unwrap(),
            &want("grad_param0"),
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{case} grad_bias"),
            &grads.grad_bias.to_vec().unwrap(),
            &want("grad_param1"),
            1e-4,
            1e-4,
        );
    }
}

#[test]
fn cross_entropy_matches_pytorch() {
    let fixture = Fixture::open("loss.safetensors");
    for case in fixture.cases("cross_entropy.") {
        let targets: Vec<usize> = fixture.settings(&case)["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as usize)
            .collect();
        let weight = case
            .ends_with("weighted")
            .then(|| fixture.tensor(&format!("{case}.class_weight")));
        let logits = fixture.tensor(&format!("{case}.x"));
        let log_probs = softmax::log_softmax(&logits).unwrap();
        let result = loss::nll_loss(&log_probs, &targets, weight.as_ref()).unwrap();
        assert_close(
            &case,
            &result.loss.to_vec().unwrap(),
            &fixture.values(&format!("{case}.y")).1,
            1e-5,
            1e-6,
        );
        let grad_lp = loss::nll_loss_backward(
            &log_probs,
            &result,
            &fixture.tensor(&format!("{case}.grad_out")),
        )
        .unwrap();
        let grad = softmax::log_softmax_backward(&log_probs, &grad_lp).unwrap();
        assert_close(
            &format!("{case} grad"),
            &grad.to_vec().unwrap(),
            &fixture.values(&format!("{case}.grad_x")).1,
            1e-5,
            1e-6,
        );
    }
}

#[test]
fn convolution_matches_pytorch() {
    let fixture = Fixture::open("conv2d.safetensors");
    for case in fixture.cases("conv.") {
        let settings = fixture.settings(&case);
        let conv = Conv2d {
            stride: pair(&settings["stride"]),
            padding: pair(&settings["padding"]),
            dilation: pair(&settings["dilation"]),
            groups: settings["groups"].as_u64().unwrap() as usize,
        };
        let t = |suffix: &str| fixture.tensor(&format!("{case}.{suffix}"));
        let want = |suffix: &str| fixture.values(&format!("{case}.{suffix}")).1;
        let (x, weight, bias, grad_out) = (t("x"), t("param0"), t("param1"), t("grad_out"));
        let y = conv2d::conv2d(&x, &weight, Some(&bias), &conv).unwrap();
        assert_eq!(
            y.dims(),
            fixture.values(&format!("{case}.y")).0.as_slice(),
            "{case}"
        );
        assert_close(
            &format!("{case} y"),
            &y.to_vec().unwrap(),
            &want("y"),
            1e-4,
            1e-4,
        );
        let grad_x = conv2d::conv2d_backward(Input, &x, &weight, &grad_out, &conv, Auto).unwrap();
        assert_close(
            &format!("{case} grad_x"),
            &grad_x.to_vec().unwrap(),
            &want("grad_x"),
            1e-4,
            1e-4,
        );
        let grad_w = conv2d::conv2d_backward(Weight, &x, &weight, &grad_out, &conv, Auto).unwrap();
        assert_close(
            &format!("{case} grad_w"),
            &grad_w.to_vec().unwrap(),
            &want("grad_param0"),
            1e-4,
            1e-4,
        );
        let grad_b = conv2d::conv2d_backward_bias(&grad_out).unwrap();
        assert_close(
            &format!("{case} grad_b"),
            &grad_b.to_vec().unwrap(),
            &want("grad_param1"),
            1e-4,
            1e-4,
        );
    }
}
