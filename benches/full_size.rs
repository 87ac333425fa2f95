//! Every family at its nominal input size (224; 299 for Inception v3), batch 1: forward, and
//! forward + backward to the input (the saliency workload), within the adapter's limits (VGG's
//! 411 MB classifier weight included). Prints seconds and the peak GPU bytes held.
//!
//!   cargo bench --bench full_size [-- vgg16 resnet50 ...]

use std::time::Instant;

use gradlens::autograd::Tape;
use gradlens::models::{ModelConfig, build};
use gradlens::nn::{Forward, Mode, ParamStore};
use gradlens::{Gpu, Tensor};

fn main() {
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let gpu = Gpu::new().expect("a GPU adapter");
    println!("full-size models, batch 1, on {}", gpu.describe());
    for arch in [
        "vgg16",
        "googlenet",
        "inception_v3",
        "resnet50",
        "densenet121",
    ] {
        if !chosen.is_empty() && !chosen.iter().any(|c| c == arch) {
            continue;
        }
        let size = if arch == "inception_v3" { 299 } else { 224 };
        let mut store = ParamStore::new(&gpu);
        let model = build(arch, &mut store, &ModelConfig::default()).expect("model");
        let pixels: Vec<f32> = (0..3 * size * size)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let x = Tensor::from_slice(&gpu, [1, 3, size, size], &pixels).expect("upload");
        gpu.synchronize().expect("synchronize");
        let weights = gpu.pool_stats().in_use_bytes;
        let forward = || {
            let tape = Tape::no_grad();
            let f = Forward::new(&tape, &store, Mode::Eval);
            model
                .forward(&f, &tape.input(x.clone()))
                .expect("forward")
                .tensor()
                .to_vec()
                .expect("read");
        };
        let backward = || {
            let tape = Tape::new();
            let f = Forward::new(&tape, &store, Mode::Eval);
            let input = tape.input(x.clone());
            let logits = model.forward(&f, &input).expect("forward");
            let mut seed = vec![0.0; 1000];
            seed[1] = 1.0;
            let seed = Tensor::from_slice(&gpu, [1, 1000], &seed).expect("seed");
            let grads = tape.backward(&logits, Some(seed)).expect("backward");
            grads
                .get(&input)
                .expect("input gradient")
                .to_vec()
                .expect("read");
        };
        forward(); // compile pipelines, fill the pool
        gpu.reset_peak_memory();
        let start = Instant::now();
        forward();
        let forward_s = start.elapsed().as_secs_f64();
        let forward_peak = gpu.pool_stats().peak_in_use_bytes;
        backward();
        gpu.reset_peak_memory();
        let start = Instant::now();
        backward();
        let backward_s = start.elapsed().as_secs_f64();
        let backward_peak = gpu.pool_stats().peak_in_use_bytes;
        let mb = |bytes: u64| bytes as f64 / 1e6;
        println!(
            "  {arch} at {size}: forward {forward_s:.2} s (peak {:.0} MB), forward + backward to the input {backward_s:.2} s (peak {:.0} MB); weights {:.0} MB",
            mb(forward_peak),
            mb(backward_peak),
            mb(weights)
        );
    }
}
