//! `gradlens demo`: the main job on an embedded default. It generates the synthetic lesion set,
//! trains a small ResNet on it, reports held-out accuracy and the pointing game, and writes
//! saliency overlays (gradient and meaningful perturbation), the checkpoint and a timing table
//! into a folder.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use gradlens::autograd::{Tape, Var};
use gradlens::checkpoint::ModelInfo;
use gradlens::gpu::Phase;
use gradlens::imaging::{Colormap, Planes, Preprocess, Sizing, overlay, write_png};
use gradlens::models::{ModelConfig, ResNet};
use gradlens::nn::{Forward, Mode, ParamStore};
use gradlens::profiling::{format_table, kernel_rows, layer_rows};
use gradlens::saliency::{
    self, Explained, Perturbation, Question, Reduce, Replacement, Score, pointing_game_hit, to_maps,
};
use gradlens::train::{Adam, LearningRate, Optimizer, Schedule, SyntheticLesions, augment};
use gradlens::{Error, Gpu, Result, Tensor, weights};

const SIZE: usize = 48;
const TRAIN: usize = 1024;
const HELD_OUT: usize = 256;
const BATCH: usize = 32;
const EPOCHS: usize = 4;
const WIDTH: usize = 8;

pub fn run(out: &Path) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(out).map_err(|e| Error::Output {
        path: out.display().to_string(),
        message: format!("cannot create the output folder: {e}"),
    })?;
    let gpu = Gpu::new()?;
    println!("gradlens demo on {}", gpu.describe());
    let data = SyntheticLesions {
        size: SIZE,
        seed: 11,
        ..SyntheticLesions::default()
    };
    let t = Instant::now();
    let train_set = data.generate(0, TRAIN);
    let held_out = data.generate(1_000_000, HELD_OUT);
    let generation_s = t.elapsed().as_secs_f64();
    // Normalisation from the training set, as `train` does.
    let mean =
        train_set.images.iter().map(|&v| f64::from(v)).sum::<f64>() / train_set.images.len() as f64;
    let variance = train_set
        .images
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / train_set.images.len() as f64;
    let (mean, std) = (mean as f32, variance.sqrt() as f32);
    let normalise =
        |images: &[f32]| -> Vec<f32> { images.iter().map(|v| (v - mean) / std).collect() };
    println!(
        "{TRAIN} training and {HELD_OUT} held-out {SIZE}×{SIZE} grayscale images ({generation_s:.1} s)"
    );

    let mut store = ParamStore::new(&gpu);
    let model = ResNet::with_width(&mut store, "resnet18", 1, 2, WIDTH, 2)?;
    let mut optimizer = Adam::new(1e-4);
    let steps_per_epoch = TRAIN / BATCH;
    let total = EPOCHS * steps_per_epoch;
    let lr = LearningRate {
        base: 0.01,
        warmup: 5,
        schedule: Schedule::Cosine {
            total: total - 5,
            min_lr: 5e-4,
        },
    };
    let t = Instant::now();
    let plane = SIZE * SIZE;
    // One step: forward, backward and Adam on batch `step` of the epoch; returns the loss.
    let mut train_step = |epoch: usize, step: usize| -> Result<f32> {
        let range = step * BATCH * plane..(step + 1) * BATCH * plane;
        let dims = [BATCH, 1, SIZE, SIZE];
        let images = augment::flip_for_epoch(&normalise(&train_set.images[range]), dims, epoch);
        let labels = &train_set.labels[step * BATCH..(step + 1) * BATCH];
        let tape = Tape::new();
        let f = Forward::new(&tape, &store, Mode::Train);
        let logits = model.forward(&f, &Var::constant(Tensor::from_slice(&gpu, dims, &images)?))?;
        let loss = tape.cross_entropy(&logits, labels, None)?;
        let grads = tape.backward(&loss, None)?;
        let _phase = gpu.phase(Phase::Update);
        optimizer.step(&store, &grads, lr.at(epoch * steps_per_epoch + step))?;
        Ok(loss.tensor().to_vec()?[0])
    };
    for epoch in 0..EPOCHS {
        let mut loss_sum = 0.0;
        for step in 0..steps_per_epoch {
            loss_sum += train_step(epoch, step)?;
        }
        let seen = (epoch + 1) * TRAIN;
        println!(
            "epoch {}/{EPOCHS}: loss {:.3}, {:.0} images/s",
            epoch + 1,
            loss_sum / steps_per_epoch as f32,
            seen as f64 / t.elapsed().as_secs_f64()
        );
    }
    let training_s = t.elapsed().as_secs_f64();

    let explained = Explained {
        model: &model,
        store: &store,
    };
    let x = Tensor::from_slice(&gpu, held_out.image_dims(), &normalise(&held_out.images))?;
    let predicted = pollster::block_on(saliency::top_classes(explained, &x))?;
    let correct = predicted
        .iter()
        .zip(&held_out.labels)
        .filter(|(p, l)| p == l)
        .count();
    println!(
        "held-out accuracy: {:.1}% ({correct} of {HELD_OUT})",
        100.0 * correct as f64 / HELD_OUT as f64
    );

    let positives: Vec<usize> = (0..HELD_OUT)
        .filter(|&i| held_out.labels[i] == 1 && predicted[i] == 1)
        .collect();
    if positives.is_empty() {
        return Err(Error::InvalidArgument {
            op: "demo",
            message: "the model recognised no held-out lesion: nothing to explain".to_string(),
        });
    }
    let pick = |indices: &[usize]| -> Result<Tensor> {
        let images: Vec<f32> = indices
            .iter()
            .flat_map(|&i| normalise(&held_out.images[i * plane..(i + 1) * plane]))
            .collect();
        Tensor::from_slice(&gpu, [indices.len(), 1, SIZE, SIZE], &images)
    };
    let t = Instant::now();
    let (images, lesion) = (pick(&positives)?, vec![1; positives.len()]);
    let question = Question::new(explained, &images, &lesion, Score::Logit)?;
    let gradient = to_maps(
        &pollster::block_on(saliency::gradient(question))?,
        Reduce::AbsMax,
    )?;
    let gradient_s = t.elapsed().as_secs_f64() / positives.len() as f64;
    let hits = positives
        .iter()
        .enumerate()
        .filter(|&(k, &i)| {
            pointing_game_hit(
                &gradient.data[k * plane..(k + 1) * plane],
                &held_out.masks[i * plane..(i + 1) * plane],
                SIZE,
                3.0,
            )
        })
        .count();
    println!(
        "gradient saliency points at a lesion in {hits} of {} correctly classified positives",
        positives.len()
    );

    let shown: Vec<usize> = positives.iter().copied().take(4).collect();
    let t = Instant::now();
    let settings = Perturbation {
        mask_size: Some([SIZE / 4, SIZE / 4]),
        replacement: Replacement::Blur { sigma: 3.0 },
        jitter: 1,
        ..Perturbation::default()
    };
    let (images, lesion) = (pick(&shown)?, vec![1; shown.len()]);
    let question = Question::new(explained, &images, &lesion, Score::Probability)?;
    let perturbation = pollster::block_on(saliency::meaningful_perturbation(question, &settings))?;
    let perturbation_s = t.elapsed().as_secs_f64() / shown.len() as f64;
    for (k, &i) in shown.iter().enumerate() {
        let image = Planes {
            channels: 1,
            height: SIZE,
            width: SIZE,
            data: held_out.images[i * plane..(i + 1) * plane].to_vec(),
        };
        let gray: Vec<u8> = image
            .data
            .iter()
            .flat_map(|&v| [(v.clamp(0.0, 1.0) * 255.0).round() as u8; 3])
            .collect();
        write_png(&out.join(format!("lesion_{k}.png")), SIZE, SIZE, &gray)?;
        let lesion = held_out.masks[i * plane..(i + 1) * plane].to_vec();
        write_png(
            &out.join(format!("lesion_{k}_mask.png")),
            SIZE,
            SIZE,
            &overlay(&image, &lesion, Colormap::Inferno, 0.6),
        )?;
        let position = positives
            .iter()
            .position(|&p| p == i)
            .expect("shown ⊂ positives");
        let map = &gradient.data[position * plane..(position + 1) * plane];
        write_png(
            &out.join(format!("lesion_{k}_gradient.png")),
            SIZE,
            SIZE,
            &overlay(&image, map, Colormap::Inferno, 0.6),
        )?;
        let map = &perturbation.saliency.data[k * plane..(k + 1) * plane];
        write_png(
            &out.join(format!("lesion_{k}_perturbation.png")),
            SIZE,
            SIZE,
            &overlay(&image, map, Colormap::Inferno, 0.6),
        )?;
    }

    let info = ModelInfo {
        arch: "resnet18".to_string(),
        config: ModelConfig {
            in_channels: 1,
            classes: 2,
            transform_input: false,
            seed: 2,
            dropout: None,
            width: WIDTH,
        },
        class_names: vec!["no lesion".to_string(), "lesion".to_string()],
        preprocess: Preprocess {
            channels: 1,
            sizing: Sizing::Whole { size: SIZE },
            mean: vec![mean],
            std: vec![std],
        },
    };
    weights::save(&store, &out.join("demo.safetensors"), &info.metadata())?;

    // Where a training step's time goes, kernel by kernel (one more step, after the checkpoint
    // is saved: it changes nothing written above).
    gpu.start_profiling()?;
    train_step(EPOCHS, 0)?;
    let profile = pollster::block_on(gpu.finish_profiling())?;
    let kernel_table = format_table(&profile, &kernel_rows(&profile));
    let layer_table = format_table(&profile, &layer_rows(&profile));
    write_text(
        &out.join("kernels.txt"),
        &format!(
            "One training step of the demo's ResNet-18 (width {WIDTH}, batch {BATCH}, \
             {SIZE}×{SIZE}) on {}\n\nBy kernel:\n{kernel_table}\nBy layer:\n{layer_table}",
            gpu.describe()
        ),
    )?;
    println!("\nOne training step, by kernel:\n{kernel_table}");

    let mut table = String::new();
    let rows = [
        ("generate the data set", generation_s),
        ("train (all epochs)", training_s),
        ("one training step", training_s / total as f64),
        ("gradient saliency, per image", gradient_s),
        (
            "meaningful perturbation (300 iterations), per image",
            perturbation_s,
        ),
        ("whole demo", started.elapsed().as_secs_f64()),
    ];
    writeln!(table, "{:<55} {:>10}", "phase", "seconds").expect("a String");
    for (phase, seconds) in rows {
        writeln!(table, "{phase:<55} {seconds:>10.3}").expect("a String");
    }
    write_text(&out.join("timings.txt"), &table)?;
    print!("{table}");
    println!(
        "wrote {} (overlays lesion_*_gradient.png and lesion_*_perturbation.png, demo.safetensors, \
         timings.txt, kernels.txt)",
        out.display()
    );
    Ok(())
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    weights::write_atomically(path, text.as_bytes()).map_err(|e| Error::Output {
        path: path.display().to_string(),
        message: format!("cannot write: {e}"),
    })
}
