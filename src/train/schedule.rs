//! Learning-rate schedules, evaluated per optimiser step (PyTorch's StepLR, CosineAnnealingLR
//! and a linear warm-up in front of either).

/// The learning rate as a function of the step number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// × gamma every `step_size` steps.
    Step {
        step_size: usize,
        gamma: f32,
    },
    /// Cosine from the base rate down to `min_lr` over `total` steps, then `min_lr`.
    Cosine {
        total: usize,
        min_lr: f32,
    },
}

/// A schedule with an optional linear warm-up from base/warmup to base over `warmup` steps;
/// the schedule proper starts after the warm-up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LearningRate {
    pub base: f32,
    pub warmup: usize,
    pub schedule: Schedule,
}

impl LearningRate {
    pub fn constant(base: f32) -> Self {
        Self {
            base,
            warmup: 0,
            schedule: Schedule::Constant,
        }
    }

    /// `gradlens train`'s schedule (and the page's): a linear warm-up over the first 5% of
    /// the steps (at most 100), then cosine down to 1% of `base` at the last step.
    pub fn warmup_cosine(base: f32, total_steps: usize) -> Self {
        let total = total_steps.max(1);
        let warmup = (total / 20).min(100);
        Self {
            base,
            warmup,
            schedule: Schedule::Cosine {
                total: total - warmup,
                min_lr: base * 0.01,
            },
        }
    }

    /// The rate at step `step` (counting from 0).
    pub fn at(&self, step: usize) -> f32 {
        if step < self.warmup {
            return self.base * (step + 1) as f32 / self.warmup as f32;
        }
        let step = step - self.warmup;
        match self.schedule {
            Schedule::Constant => self.base,
            Schedule::Step { step_size, gamma } => {
                self.base * gamma.powi((step / step_size.max(1)) as i32)
            }
            Schedule::Cosine { total, min_lr } => {
                if step >= total {
                    return min_lr;
                }
                let progress = step as f32 / total.max(1) as f32;
                min_lr
                    + (self.base - min_lr) * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos())
            }
        }
    }
}
