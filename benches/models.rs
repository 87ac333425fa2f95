//! Whole-model benchmarks (criterion), in milliseconds with the adapter's name: one training
//! step (forward, backward, optimiser) of LesionNet and ResNet-18, and for one model of each
//! of the five families the forward pass and forward + backward to the input (saliency's
//! workload) at a small input size. Full sizes, profiles and the comparison with PyTorch:
//! `gradlens bench` and BENCHMARKS.md.
//!
//!   cargo bench --bench models

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gradlens::autograd::{Tape, Var};
use gradlens::models::{LesionNet, ModelConfig, ResNet, build};
use gradlens::nn::{Forward, Mode, ParamStore};
use gradlens::train::{Adam, Optimizer, SyntheticLesions};
use gradlens::{Gpu, Tensor};

/// LesionNet [8, 16, 32] on 32×32 and 128×128 synthetic lesion images, batch 32 and 16, and
/// ResNet-18 (3 input channels, 1000 classes) on 64×64, batch 16; Adam.
fn training_steps(c: &mut Criterion) {
    let gpu = Gpu::new().expect("a GPU adapter");
    let mut group = c.benchmark_group("training_step");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for (arch, size, batch) in [
        ("lesion_net", 32, 32),
        ("lesion_net", 128, 16),
        ("resnet18", 64, 16),
    ] {
        let data = SyntheticLesions {
            size,
            ..SyntheticLesions::default()
        };
        let samples = data.generate(0, batch);
        let mut store = ParamStore::new(&gpu);
        let (model, channels): (Box<dyn Model>, usize) = match arch {
            "lesion_net" => (
                Box::new(LesionNet::new(&mut store, 1, 2, [8, 16, 32], 1).expect("model")),
                1,
            ),
            _ => (
                Box::new(ResNet::new(&mut store, arch, 3, 1000, 1).expect("model")),
                3,
            ),
        };
        let images: Vec<f32> = samples
            .images
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, channels))
            .collect();
        let x = Tensor::from_slice(&gpu, [batch, channels, size, size], &images).expect("upload");
        let mut optimizer = Adam::new(0.0);
        let mut step = || {
            let tape = Tape::new();
            let f = Forward::new(&tape, &store, Mode::Train);
            let logits = model.run(&f, &tape.input(x.clone())).expect("forward");
            let loss = tape
                .cross_entropy(&logits, &samples.labels, None)
                .expect("loss");
            let grads = tape.backward(&loss, None).expect("backward");
            optimizer.step(&store, &grads, 1e-3).expect("step");
            gpu.synchronize().expect("synchronize");
        };
        step(); // compile the pipelines and warm the pool
        let name = format!("{arch}/{size}x{size}/batch{batch}");
        let mut total = (Duration::ZERO, 0u32);
        group.bench_function(&name, |bench| {
            bench.iter_custom(|iters| {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    step();
                }
                let elapsed = start.elapsed();
                total = (total.0 + elapsed, total.1 + iters as u32);
                elapsed
            })
        });
        if total.1 > 0 {
            println!(
                "  {name}: {:.1} ms per training step on {}",
                total.0.as_secs_f64() * 1e3 / f64::from(total.1),
                gpu.describe()
            );
        }
    }
    group.finish();
}

/// The models benched, behind one call.
trait Model {
    fn run(&self, f: &Forward, x: &Var) -> gradlens::Result<Var>;
}

impl Model for LesionNet {
    fn run(&self, f: &Forward, x: &Var) -> gradlens::Result<Var> {
        self.forward(f, x)
    }
}

impl Model for ResNet {
    fn run(&self, f: &Forward, x: &Var) -> gradlens::Result<Var> {
        self.forward(f, x)
    }
}

/// Forward (eval, no tape) and forward + backward to the input of vgg16, googlenet,
/// inception_v3, resnet50 and densenet121 (random weights, 1000 classes), batch 1, at 64×64
/// (Inception v3 at 96×96, above its 75-pixel minimum).
fn five_families(c: &mut Criterion) {
    let gpu = Gpu::new().expect("a GPU adapter");
    let mut group = c.benchmark_group("inference");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for (arch, size) in [
        ("vgg16", 64),
        ("googlenet", 64),
        ("inception_v3", 96),
        ("resnet50", 64),
        ("densenet121", 64),
    ] {
        let mut store = ParamStore::new(&gpu);
        let model = build(arch, &mut store, &ModelConfig::default()).expect("model");
        let data: Vec<f32> = (0..3 * size * size)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let x = Tensor::from_slice(&gpu, [1, 3, size, size], &data).expect("upload");
        for backward in [false, true] {
            let run = || {
                let tape = match backward {
                    false => Tape::no_grad(),
                    true => Tape::new().input_gradients_only(),
                };
                let f = Forward::new(&tape, &store, Mode::Eval);
                let input = tape.input(x.clone());
                let logits = model.forward(&f, &input).expect("forward");
                let result = match backward {
                    false => logits.into_tensor(),
                    true => {
                        let seed = Tensor::full(&gpu, [1, 1000], 1e-3).expect("seed");
                        let grads = tape.backward(&logits, Some(seed)).expect("backward");
                        grads.get(&input).expect("input gradient").clone()
                    }
                };
                result.to_vec().expect("readback");
            };
            run(); // compile the pipelines and warm the pool
            let pass = if backward {
                "forward_backward"
            } else {
                "forward"
            };
            group.bench_function(format!("{arch}/{size}x{size}/{pass}"), |bench| {
                bench.iter(&run)
            });
        }
    }
    group.finish();
}

criterion_group!(benches, training_steps, five_families);
criterion_main!(benches);
