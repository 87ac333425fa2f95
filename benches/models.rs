//! Whole-model benchmarks (criterion): one training step — forward, backward, optimiser —
//! in milliseconds, with the adapter's name.
//!
//!   cargo bench --bench models

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gradlens::autograd::{Tape, Var};
use gradlens::models::{LesionNet, ResNet};
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

criterion_group!(benches, training_steps);
criterion_main!(benches);
