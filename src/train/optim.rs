//! Optimisers over a [`ParamStore`]'s trainable parameters, with their state kept by parameter
//! name; the update rules are the WGSL kernels of shaders/optim.wgsl.

use std::collections::HashMap;

use crate::autograd::Gradients;
use crate::error::{Error, Result};
use crate::kernels::elementwise::{mul, scale};
use crate::kernels::fill::copy_into;
use crate::kernels::optim::{AdamStep, SgdStep, adam_step, sgd_step};
use crate::kernels::{binding_pieces, reduce};
use crate::nn::ParamStore;
use crate::tensor::Tensor;

/// Updates the parameters that have gradients, at learning rate `lr` (from a schedule).
pub trait Optimizer {
    fn step(&mut self, store: &ParamStore, grads: &Gradients, lr: f32) -> Result<()>;

    /// What a resumed run needs to continue exactly where this one stopped, as tensors named
    /// `{parameter}.{key}` with PyTorch's state keys (`momentum_buffer`; `exp_avg`,
    /// `exp_avg_sq`, `step`).
    fn state(&self) -> Result<Vec<(String, Tensor)>>;

    /// Restores what [`Optimizer::state`] returned; an unknown key is an error.
    fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()>;
}

/// (`parameter`, `key`) of a state tensor's name `{parameter}.{key}`.
fn split_state_name(name: &str) -> Result<(&str, &str)> {
    name.rsplit_once('.')
        .ok_or_else(|| Error::invalid("load_state", format!("{name:?} is not `parameter.key`")))
}

fn unknown_key(name: &str, known: &str) -> Error {
    Error::invalid(
        "load_state",
        format!("{name:?}: this optimiser's state has only {known}"),
    )
}

/// torch.optim.SGD (dampening 0).
pub struct Sgd {
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    momentum_buffers: HashMap<String, Tensor>,
}

impl Sgd {
    pub fn new(momentum: f32, nesterov: bool, weight_decay: f32) -> Self {
        Self {
            momentum,
            nesterov,
            weight_decay,
            momentum_buffers: HashMap::new(),
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, store: &ParamStore, grads: &Gradients, lr: f32) -> Result<()> {
        for (name, grad) in grads.parameters() {
            let param = store.parameter(name)?;
            let first_step = !self.momentum_buffers.contains_key(name);
            if self.momentum != 0.0 && first_step {
                let buffer = Tensor::zeros(store.gpu(), param.shape().clone())?;
                self.momentum_buffers.insert(name.to_string(), buffer);
            }
            let step = SgdStep {
                lr,
                momentum: self.momentum,
                nesterov: self.nesterov,
                weight_decay: self.weight_decay,
                first_step,
            };
            sgd_step(param, grad, self.momentum_buffers.get(name), &step)?;
        }
        Ok(())
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(self
            .momentum_buffers
            .iter()
            .map(|(name, buffer)| (format!("{name}.momentum_buffer"), buffer.clone()))
            .collect())
    }

    fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()> {
        for (name, tensor) in state {
            match split_state_name(&name)? {
                (parameter, "momentum_buffer") => {
                    self.momentum_buffers.insert(parameter.to_string(), tensor);
                }
                _ => return Err(unknown_key(&name, "momentum_buffer")),
            }
        }
        Ok(())
    }
}

/// torch.optim.Adam, or AdamW with `decoupled` weight decay.
pub struct Adam {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decoupled: bool,
    /// (m, v, steps taken) per parameter.
    moments: HashMap<String, (Tensor, Tensor, u32)>,
}

impl Adam {
    /// Adam with PyTorch's defaults (β = 0.9, 0.999; eps 1e-8).
    pub fn new(weight_decay: f32) -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            decoupled: false,
            moments: HashMap::new(),
        }
    }

    /// AdamW with PyTorch's defaults (weight decay 0.01 there; pass it explicitly).
    pub fn adamw(weight_decay: f32) -> Self {
        Self {
            decoupled: true,
            ..Self::new(weight_decay)
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, store: &ParamStore, grads: &Gradients, lr: f32) -> Result<()> {
        for (name, grad) in grads.parameters() {
            let param = store.parameter(name)?;
            if !self.moments.contains_key(name) {
                let zeros = || Tensor::zeros(store.gpu(), param.shape().clone());
                self.moments
                    .insert(name.to_string(), (zeros()?, zeros()?, 0));
            }
            let (m, v, steps) = self.moments.get_mut(name).expect("inserted above");
            *steps += 1;
            let step = AdamStep {
                lr,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay,
                decoupled: self.decoupled,
                step: *steps,
            };
            adam_step(param, grad, m, v, &step)?;
        }
        Ok(())
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut state = Vec::new();
        for (name, (m, v, steps)) in &self.moments {
            state.push((format!("{name}.exp_avg"), m.clone()));
            state.push((format!("{name}.exp_avg_sq"), v.clone()));
            // Exact in f32 up to 2²⁴ steps.
            let steps = Tensor::from_slice(m.gpu(), [1], &[*steps as f32])?;
            state.push((format!("{name}.step"), steps));
        }
        Ok(state)
    }

    fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()> {
        let mut parts: HashMap<String, [Option<Tensor>; 3]> = HashMap::new();
        for (name, tensor) in state {
            let (parameter, key) = split_state_name(&name)?;
            let slot = match key {
                "exp_avg" => 0,
                "exp_avg_sq" => 1,
                "step" => 2,
                _ => return Err(unknown_key(&name, "exp_avg, exp_avg_sq and step")),
            };
            parts.entry(parameter.to_string()).or_default()[slot] = Some(tensor);
        }
        for (parameter, [m, v, steps]) in parts {
            let (Some(m), Some(v), Some(steps)) = (m, v, steps) else {
                return Err(Error::invalid(
                    "load_state",
                    format!("{parameter}: exp_avg, exp_avg_sq and step must come together"),
                ));
            };
            let steps = steps.to_vec()?;
            let [steps] = steps.as_slice() else {
                return Err(Error::invalid(
                    "load_state",
                    format!("{parameter}.step must hold one number"),
                ));
            };
            if !(steps.is_finite() && *steps >= 0.0 && steps.fract() == 0.0) {
                return Err(Error::invalid(
                    "load_state",
                    format!("{parameter}.step = {steps} is not a step count"),
                ));
            }
            self.moments.insert(parameter, (m, v, *steps as u32));
        }
        Ok(())
    }
}

/// torch.nn.utils.clip_grad_norm_: scales all parameter gradients by max_norm / total norm
/// when the total (L2 over all of them) exceeds `max_norm`; returns the total norm before
/// clipping. The gradients' squares are summed in short rows (`square_sums`), the sums gathered
/// into one tensor and read back at once, and added in f64 in the order of the parameters'
/// names.
pub fn clip_grad_norm(grads: &mut Gradients, max_norm: f32) -> Result<f32> {
    let mut names: Vec<String> = grads
        .parameters()
        .map(|(name, _)| name.to_string())
        .collect();
    names.sort();
    let Some(first) = names.first() else {
        return Ok(0.0);
    };
    let gpu = grads.named(first).expect("listed above").gpu().clone();
    let mut sums = Vec::new();
    for name in &names {
        sums.extend(square_sums(grads.named(name).expect("listed above"))?);
    }
    let gathered = Tensor::empty(&gpu, [sums.iter().map(Tensor::numel).sum::<usize>()])?;
    let mut offset = 0;
    for sum in &sums {
        copy_into(sum, 0, &gathered, offset, sum.numel())?;
        offset += sum.numel();
    }
    let total: f64 = gathered.to_vec()?.iter().map(|&v| f64::from(v)).sum();
    let norm = total.sqrt() as f32;
    // PyTorch's clip coefficient, with its 1e-6 guard against a zero norm.
    let coefficient = max_norm / (norm + 1e-6);
    if coefficient < 1.0 {
        for name in names {
            let scaled = scale(grads.named(&name).expect("listed above"), coefficient)?;
            grads.set_named(&name, scaled);
        }
    }
    Ok(norm)
}

/// Values per partial sum of squares in `square_sums`.
const SQUARE_SUM_ROW: usize = 1024;

/// The squares of `grad`'s values summed in rows of `SQUARE_SUM_ROW` values (and one of the
/// rest), piece by piece where the gradient is larger than one storage binding (VGG's
/// classifier.0.weight): short f32 sums for the host to add in f64. One f32 sum over a 33M-value
/// piece drifted by 1e-4 of the norm.
fn square_sums(grad: &Tensor) -> Result<Vec<Tensor>> {
    let mut sums = Vec::new();
    for piece in binding_pieces(grad)? {
        let squares = mul(&piece, &piece)?;
        let count = squares.numel();
        let rows = count / SQUARE_SUM_ROW;
        if rows > 0 {
            let whole_rows = squares.rows(0, rows * SQUARE_SUM_ROW)?;
            let whole_rows = whole_rows.reshape([rows, SQUARE_SUM_ROW])?;
            sums.push(reduce::sum(&whole_rows, &[1], false)?);
        }
        let rest = count % SQUARE_SUM_ROW;
        if rest > 0 {
            let rest = squares.rows(rows * SQUARE_SUM_ROW, rest)?;
            sums.push(reduce::sum(&rest, &[0], false)?.reshape([1])?);
        }
    }
    Ok(sums)
}
