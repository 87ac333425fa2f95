//! A training run, one optimiser step at a time: each epoch's shuffled order, each step's batch
//! (normalised, then augmented), the forward pass in training mode, the cross-entropy, the
//! backward pass and the optimiser's update. `gradlens train` and the browser page (web/) run
//! the same steps; every random choice derives from (seed, epoch, step), which is what lets an
//! interrupted run resume bit for bit. Each step awaits its one readback (the loss), so the
//! page can run it on WebGPU.

use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::imaging::Preprocess;
use crate::nn::{Forward, Mode, SplitMix64};
use crate::saliency::Explained;
use crate::tensor::Tensor;

use super::augment::Augmentation;
use super::data::{LabelledImages, augmented_batch};
use super::{LearningRate, Optimizer};

/// What a run does: how long, in batches of what size, with which augmentations, at which
/// learning rate (`LearningRate::warmup_cosine` over the whole run in `gradlens train`).
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub epochs: usize,
    pub batch: usize,
    pub seed: u64,
    pub augmentations: Vec<Augmentation>,
    pub learning_rate: LearningRate,
}

/// A step of a run: `step` counts from 0 within `epoch`, which counts from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub epoch: usize,
    pub step: usize,
}

/// What one step did.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    pub position: Position,
    /// The batch's mean cross-entropy before the update.
    pub loss: f32,
    pub images: usize,
    pub learning_rate: f32,
}

/// The optimiser, its schedule and where the run stands. The model, its weights and the data
/// are passed to each step, so that whoever drives the run keeps owning them.
pub struct TrainingRun {
    settings: RunSettings,
    training_images: usize,
    optimizer: Box<dyn Optimizer>,
    class_weight: Option<Tensor>,
    next: Position,
    /// The shuffled order of the epoch in progress.
    order: Option<(usize, Vec<usize>)>,
}

impl TrainingRun {
    /// A run over `training_images` images starting at `start` (`Position { epoch: 0, step: 0 }`
    /// for a new run; a resumed run's position may be one past its epoch's last step).
    pub fn new(
        settings: RunSettings,
        training_images: usize,
        optimizer: Box<dyn Optimizer>,
        class_weight: Option<Tensor>,
        start: Position,
    ) -> Result<Self> {
        if settings.batch == 0 || training_images == 0 {
            return Err(Error::invalid(
                "train",
                format!(
                    "a run needs a batch of at least 1 and training images ({} images, batch {})",
                    training_images, settings.batch
                ),
            ));
        }
        Ok(Self {
            settings,
            training_images,
            optimizer,
            class_weight,
            next: start,
            order: None,
        })
    }

    pub fn settings(&self) -> &RunSettings {
        &self.settings
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.training_images.div_ceil(self.settings.batch)
    }

    pub fn total_steps(&self) -> usize {
        self.settings.epochs * self.steps_per_epoch()
    }

    /// Steps run so far, counting those before a resume.
    pub fn steps_done(&self) -> usize {
        self.next.epoch * self.steps_per_epoch() + self.next.step
    }

    /// The step [`TrainingRun::step`] runs next; `None` once the last epoch is done.
    pub fn next(&self) -> Option<Position> {
        let per_epoch = self.steps_per_epoch();
        let position = match self.next.step >= per_epoch {
            true => Position {
                epoch: self.next.epoch + 1,
                step: 0,
            },
            false => self.next,
        };
        (position.epoch < self.settings.epochs).then_some(position)
    }

    /// Where the run stands, as a checkpoint records it: the next step of the epoch in
    /// progress, which equals its step count when only that epoch's validation is left.
    pub fn position(&self) -> Position {
        self.next
    }

    pub fn optimizer(&self) -> &dyn Optimizer {
        self.optimizer.as_ref()
    }

    /// The image indices of `epoch`'s steps, shuffled by (seed, epoch).
    fn epoch_order(&mut self, epoch: usize) -> &[usize] {
        if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut shuffle = stream(self.settings.seed, epoch, None);
            let mut order: Vec<usize> = (0..self.training_images).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, shuffle.below(i + 1));
            }
            self.order = Some((epoch, order));
        }
        &self.order.as_ref().expect("just set").1
    }

    /// Runs the next step on `data` (the training images the run was made for, sized by
    /// `preprocess`). A loss that is not finite stops the step before the weights change.
    /// With `check_finite`, a NaN or Inf in any layer's output or gradient is named instead.
    pub async fn step(
        &mut self,
        model: Explained<'_>,
        data: &LabelledImages,
        preprocess: &Preprocess,
        check_finite: bool,
    ) -> Result<StepReport> {
        if data.len() != self.training_images {
            return Err(Error::invalid(
                "train",
                format!(
                    "the run was made for {} training images, not {}",
                    self.training_images,
                    data.len()
                ),
            ));
        }
        let position = self
            .next()
            .ok_or_else(|| Error::invalid("train", "the run has finished"))?;
        let Position { epoch, step } = position;
        let batch = self.settings.batch;
        let global_step = epoch * self.steps_per_epoch() + step;
        let order = self.epoch_order(epoch);
        let indices = order[step * batch..((step + 1) * batch).min(order.len())].to_vec();
        let settings = &self.settings;
        let mut rng = stream(settings.seed, epoch, Some(step));
        let (images, dims) = augmented_batch(
            data,
            &indices,
            preprocess,
            &settings.augmentations,
            &mut rng,
        );
        let labels: Vec<usize> = indices.iter().map(|&i| data.labels[i]).collect();

        let gpu = model.store.gpu();
        if check_finite {
            gpu.start_finite_checks();
        }
        let tape = Tape::new();
        let f = Forward::new(&tape, model.store, Mode::Train).with_dropout_seed(global_step as u32);
        let x = Var::constant(Tensor::from_slice(gpu, dims, &images)?);
        let loss = model
            .model
            .forward(&f, &x)
            .and_then(|logits| tape.cross_entropy(&logits, &labels, self.class_weight.as_ref()))
            .and_then(|loss| Ok((tape.backward(&loss, None)?, loss)));
        if check_finite {
            if let Some(bad) = gpu.finish_finite_checks().await? {
                return Err(Error::NonFinite(bad));
            }
        }
        let (grads, loss) = loss?;
        let loss = loss.tensor().read().await?[0];
        if !loss.is_finite() {
            return Err(Error::LossNotFinite {
                loss,
                epoch: epoch + 1,
                step: step + 1,
            });
        }
        let learning_rate = self.settings.learning_rate.at(global_step);
        self.optimizer.step(model.store, &grads, learning_rate)?;
        self.next = Position {
            epoch,
            step: step + 1,
        };
        Ok(StepReport {
            position,
            loss,
            images: indices.len(),
            learning_rate,
        })
    }
}

/// A random stream for (seed, epoch, step): the shuffle of an epoch, the augmentations of a
/// step.
fn stream(seed: u64, epoch: usize, step: Option<usize>) -> SplitMix64 {
    let step = step.map_or(0, |s| s as u64 + 1);
    SplitMix64::new(
        seed ^ (epoch as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
            ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

/// How a batch size was settled by [`fit_batch`].
#[derive(Clone, Debug)]
pub struct BatchFit {
    pub batch: usize,
    /// The GPU memory the step of that batch held at its peak: weights, activations and
    /// gradients, without the kept copies (`gpu::kept_copies`), a cache of weight transforms
    /// under its own budget.
    pub peak_bytes: u64,
    /// The larger batches tried first, each with why it did not fit.
    pub refused: Vec<(usize, String)>,
}

/// The largest batch, from `wanted` down by halves, whose training step fits: no tensor beyond
/// the adapter's binding or buffer limits, no allocation failure, and at most `budget_bytes` of
/// GPU memory at the step's peak (kept copies aside: a larger batch may choose kernels that
/// keep copies of the weights, and those outlive its try). Each try runs one forward and backward pass on the first
/// images of `data` and discards it; the BatchNorm running statistics it moved are put back, so
/// the weights are as they were. The peak read is the whole context's: run this while nothing
/// else works on the same [`crate::Gpu`].
pub async fn fit_batch(
    model: Explained<'_>,
    data: &LabelledImages,
    preprocess: &Preprocess,
    wanted: usize,
    budget_bytes: u64,
) -> Result<BatchFit> {
    let store = model.store;
    let gpu = store.gpu();
    let mut running = Vec::new();
    for (name, tensor) in store.buffers() {
        running.push((name.to_string(), tensor.read().await?));
    }
    // Each training step writes the weights that train, which drops the copies kept of them
    // (Winograd-domain filters, textures): every step computes them afresh. Each try writes
    // them too (with their own values), so that it measures what a step holds.
    let mut trained = Vec::new();
    for (name, tensor) in store
        .parameters()
        .filter(|(name, _)| store.is_trainable(name))
    {
        trained.push((name.to_string(), tensor.read().await?));
    }
    let mut refused = Vec::new();
    let mut batch = wanted.clamp(1, data.len().max(1));
    loop {
        for (name, values) in &trained {
            store.parameter(name)?.write(values)?;
        }
        gpu.reset_peak_memory();
        let indices: Vec<usize> = (0..batch).collect();
        let tried = probe_step(model, data, preprocess, &indices).await;
        let peak_bytes = gpu.pool_stats().peak_working_bytes;
        for (name, values) in &running {
            store.buffer(name)?.write(values)?;
        }
        let why = match tried {
            Ok(()) if peak_bytes <= budget_bytes => {
                return Ok(BatchFit {
                    batch,
                    peak_bytes,
                    refused,
                });
            }
            Ok(()) => format!(
                "needs {} MiB of GPU memory, over the limit of {} MiB",
                peak_bytes.div_ceil(1 << 20),
                budget_bytes >> 20
            ),
            Err(error @ (Error::BindingTooLarge { .. } | Error::OutOfMemory { .. })) => {
                error.to_string()
            }
            Err(error) => return Err(error),
        };
        if batch == 1 {
            return Err(Error::invalid(
                "train",
                format!("not even one image fits a training step: it {why}"),
            ));
        }
        refused.push((batch, why));
        batch /= 2;
    }
}

/// One forward and backward pass in training mode, its loss read back (so that every kernel
/// ran), the gradients dropped.
async fn probe_step(
    model: Explained<'_>,
    data: &LabelledImages,
    preprocess: &Preprocess,
    indices: &[usize],
) -> Result<()> {
    let (images, dims) = data.stacked(indices, preprocess);
    let labels: Vec<usize> = indices.iter().map(|&i| data.labels[i]).collect();
    let tape = Tape::new();
    let f = Forward::new(&tape, model.store, Mode::Train);
    let x = Var::constant(Tensor::from_slice(model.store.gpu(), dims, &images)?);
    let logits = model.model.forward(&f, &x)?;
    let loss = tape.cross_entropy(&logits, &labels, None)?;
    let grads = tape.backward(&loss, None)?;
    loss.tensor().read().await?;
    drop(grads);
    Ok(())
}
