//! Launchers for shaders/loss.wgsl: negative log-likelihood (cross-entropy after log_softmax).

use super::{Launch, as_u32};
use crate::error::{Error, Result};
use crate::shaders::{Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;

uniform_params! {
    struct Params {
        batch: u32, classes: u32,
    }
}

entries! {
    entries for Shader::Loss, Params;
    bindings { log_probs: read 1, targets: read 2, class_weight: read 3, out: read_write 4,
        weight_sum: read_write 5, weight_sum_in: read 6, grad_loss: read 7 }
    /// One workgroup sums the whole batch.
    NLL_LOSS = "nll_loss", WorkgroupSize::Override(64),
        [log_probs, targets, class_weight, out, weight_sum];
    NLL_LOSS_BACKWARD = "nll_loss_backward", WorkgroupSize::Override(64),
        [targets, class_weight, out, weight_sum_in, grad_loss];
}

/// The loss and what its backward needs.
#[derive(Debug)]
pub struct NllLoss {
    /// The scalar loss (shape []).
    pub loss: Tensor,
    targets: Tensor,
    class_weight: Tensor,
    weight_sum: Tensor,
}

/// PyTorch's `nll_loss(log_probs, targets, weight, reduction='mean')`: the weighted mean of
/// -log_probs[b, targets[b]], divided by the summed weights of the targets.
pub fn nll_loss(
    log_probs: &Tensor,
    targets: &[usize],
    class_weight: Option<&Tensor>,
) -> Result<NllLoss> {
    const OP: &str = "nll_loss";
    let [batch, classes] = *log_probs.dims() else {
        return Err(Error::invalid(
            OP,
            format!(
                "needs log-probabilities of shape [batch, classes], got {:?}",
                log_probs.dims()
            ),
        ));
    };
    if batch == 0 || classes == 0 {
        return Err(Error::invalid(
            OP,
            format!("empty input of shape {:?}", log_probs.dims()),
        ));
    }
    if targets.len() != batch {
        return Err(Error::invalid(
            OP,
            format!("{} targets for a batch of {batch}", targets.len()),
        ));
    }
    if let Some((b, &t)) = targets.iter().enumerate().find(|&(_, &t)| t >= classes) {
        return Err(Error::invalid(
            OP,
            format!("target {t} of sample {b} is out of range for {classes} classes"),
        ));
    }
    if classes > 1 << 24 {
        return Err(Error::invalid(
            OP,
            format!("{classes} classes exceed f32-exact indices"),
        ));
    }
    let gpu = log_probs.gpu();
    let class_weight = match class_weight {
        Some(weight) if weight.dims() == [classes] => weight.clone(),
        Some(weight) => {
            return Err(Error::invalid(
                OP,
                format!(
                    "class weights must have shape [{classes}], got {:?}",
                    weight.dims()
                ),
            ));
        }
        None => Tensor::full(gpu, [classes], 1.0)?,
    };
    let target_values: Vec<f32> = targets.iter().map(|&t| t as f32).collect();
    let targets = Tensor::from_slice(gpu, [batch], &target_values)?;
    let loss = Tensor::empty(gpu, Vec::<usize>::new())?;
    let weight_sum = Tensor::empty(gpu, Vec::<usize>::new())?;
    let params = Params {
        batch: as_u32(OP, "batch", batch)?,
        classes: as_u32(OP, "classes", classes)?,
    };
    Launch::new(gpu, &NLL_LOSS, params)
        .bind(1, log_probs)
        .bind(2, &targets)
        .bind(3, &class_weight)
        .bind(4, &loss)
        .bind(5, &weight_sum)
        .on([1, 1, 1])?;
    Ok(NllLoss {
        loss,
        targets,
        class_weight,
        weight_sum,
    })
}

/// The gradient of `nll_loss` with respect to the log-probabilities, scaled by `grad_loss`
/// (a scalar tensor; 1 when the loss is the final objective).
pub fn nll_loss_backward(log_probs: &Tensor, loss: &NllLoss, grad_loss: &Tensor) -> Result<Tensor> {
    const OP: &str = "nll_loss_backward";
    let [batch, classes] = *log_probs.dims() else {
        return Err(Error::invalid(
            OP,
            format!("shape {:?} is not [batch, classes]", log_probs.dims()),
        ));
    };
    if batch != loss.targets.numel() || grad_loss.numel() != 1 {
        return Err(Error::invalid(
            OP,
            format!(
                "log_probs {:?} do not match the loss's batch of {}, or grad_loss {:?} is not a scalar",
                log_probs.dims(),
                loss.targets.numel(),
                grad_loss.dims()
            ),
        ));
    }
    let gpu = log_probs.gpu();
    let grad = Tensor::empty(gpu, [batch, classes])?;
    let params = Params {
        batch: as_u32(OP, "batch", batch)?,
        classes: as_u32(OP, "classes", classes)?,
    };
    Launch::new(gpu, &NLL_LOSS_BACKWARD, params)
        .bind(2, &loss.targets)
        .bind(3, &loss.class_weight)
        .bind(4, &grad)
        .bind(6, &loss.weight_sum)
        .bind(7, grad_loss)
        .over(grad.numel() as u64)?;
    Ok(grad)
}
