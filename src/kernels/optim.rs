//! Launchers for shaders/optim.wgsl: in-place SGD and Adam / AdamW updates of one parameter.

use super::{Launch, as_u32, binding_pieces};
use crate::error::{Error, Result};
use crate::shaders::{Shader, WithVec4, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;

uniform_params! {
    #[derive(Default)]
    struct Params {
        count: u32,
        lr: f32,
        weight_decay: f32,
        momentum: f32,
        nesterov: u32,
        first_step: u32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        bias_correction1: f32,
        bias_correction2: f32,
        decoupled: u32,
    }
}

entries! {
    entries for Shader::Optim, Params;
    bindings { grad: read 1, param: read_write 2, state_a: read_write 3, state_b: read_write 4,
        grad4: read 5, param4: read_write 6, state_a4: read_write 7, state_b4: read_write 8 }
    SGD_STEP = "sgd_step", WorkgroupSize::Override(256), [grad, param, state_a];
    SGD_STEP_VEC4 = "sgd_step_vec4", WorkgroupSize::Override(256), [grad4, param4, state_a4];
    ADAM_STEP = "adam_step", WorkgroupSize::Override(256), [grad, param, state_a, state_b];
    ADAM_STEP_VEC4 = "adam_step_vec4", WorkgroupSize::Override(256),
        [grad4, param4, state_a4, state_b4];
}

/// An update's entries: one element per invocation, and four for counts that are multiples
/// of 4.
const SGD: WithVec4<Params> = WithVec4::new(&SGD_STEP, &SGD_STEP_VEC4);
const ADAM: WithVec4<Params> = WithVec4::new(&ADAM_STEP, &ADAM_STEP_VEC4);

/// One SGD step's hyper-parameters (torch.optim.SGD, dampening 0).
#[derive(Clone, Copy, Debug)]
pub struct SgdStep {
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    /// The momentum buffer starts as the first gradient.
    pub first_step: bool,
}

/// One Adam / AdamW step's hyper-parameters; `step` counts from 1.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// AdamW: weight decay applied to the parameter, not added to the gradient.
    pub decoupled: bool,
    pub step: u32,
}

/// param -= lr · (gradient with weight decay and momentum); `momentum_buffer` (same shape)
/// is needed when momentum ≠ 0 and updated in place.
pub fn sgd_step(
    param: &Tensor,
    grad: &Tensor,
    momentum_buffer: Option<&Tensor>,
    step: &SgdStep,
) -> Result<()> {
    const OP: &str = "sgd_step";
    param.expect_same_shape(grad, OP)?;
    let scratch;
    let state = match momentum_buffer {
        Some(buffer) => {
            param.expect_same_shape(buffer, OP)?;
            buffer
        }
        None if step.momentum == 0.0 => {
            // The shader reads the buffer only with momentum; bind a stand-in (of one vec4).
            scratch = Tensor::empty(param.gpu(), [4])?;
            &scratch
        }
        None => {
            return Err(Error::invalid(
                OP,
                format!("momentum {} needs a momentum buffer", step.momentum),
            ));
        }
    };
    let params = Params {
        count: as_u32(OP, "element count", param.numel())?,
        lr: step.lr,
        weight_decay: step.weight_decay,
        momentum: step.momentum,
        nesterov: u32::from(step.nesterov),
        first_step: u32::from(step.first_step),
        ..Params::default()
    };
    launch(&SGD, &params, grad, param, &[state])
}

/// Adam (or AdamW) in place on `param`, with its first and second moments `m` and `v`.
pub fn adam_step(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    step: &AdamStep,
) -> Result<()> {
    const OP: &str = "adam_step";
    for other in [grad, m, v] {
        param.expect_same_shape(other, OP)?;
    }
    if step.step == 0 {
        return Err(Error::invalid(OP, "steps count from 1"));
    }
    let params = Params {
        count: as_u32(OP, "element count", param.numel())?,
        lr: step.lr,
        weight_decay: step.weight_decay,
        beta1: step.beta1,
        beta2: step.beta2,
        eps: step.eps,
        bias_correction1: 1.0 - step.beta1.powi(step.step as i32),
        bias_correction2: 1.0 - step.beta2.powi(step.step as i32),
        decoupled: u32::from(step.decoupled),
        ..Params::default()
    };
    launch(&ADAM, &params, grad, param, &[m, v])
}

/// Records the update, in pieces when the parameter is larger than one storage binding (VGG's
/// classifier.0.weight): each piece binds flat views of the parameter, gradient and states.
fn launch(
    update: &WithVec4<Params>,
    params: &Params,
    grad: &Tensor,
    param: &Tensor,
    states: &[&Tensor],
) -> Result<()> {
    // In binding order: the gradient, the parameter, then the states.
    let operands: Vec<&Tensor> = [grad, param]
        .into_iter()
        .chain(states.iter().copied())
        .collect();
    // Each operand of the parameter's size in binding-sized pieces, piece i of each together;
    // SGD's one-element stand-in for a momentum buffer is bound whole with every piece.
    let count = param.numel();
    let pieces = operands
        .iter()
        .map(|t| match t.numel() == count {
            true => binding_pieces(t),
            false => Ok(Vec::new()),
        })
        .collect::<Result<Vec<_>>>()?;
    // pieces[1]: the parameter's.
    for (i, piece) in pieces[1].iter().enumerate() {
        let views: Vec<&Tensor> = operands
            .iter()
            .zip(&pieces)
            .map(|(&whole, pieces)| pieces.get(i).unwrap_or(whole))
            .collect();
        let piece_params = Params {
            count: as_u32(update.scalar.name, "element count", piece.numel())?,
            ..*params
        };
        launch_piece(update, piece_params, &views)?;
    }
    Ok(())
}

/// One dispatch over `operands` (gradient, parameter, states), all of `params.count` values.
fn launch_piece(update: &WithVec4<Params>, params: Params, operands: &[&Tensor]) -> Result<()> {
    // Four elements per invocation where the count allows (3× the scalar entry's speed on
    // lavapipe), through the vec4 bindings 5–8.
    let count = params.count as usize;
    let vec4 = count.is_multiple_of(4);
    let (first_slot, invocations) = match vec4 {
        true => (5, count / 4),
        false => (1, count),
    };
    let mut launch = Launch::new(operands[1].gpu(), update.pick(vec4), params);
    for (slot, operand) in (first_slot..).zip(operands) {
        launch = launch.bind(slot, operand);
    }
    launch.over(invocations as u64)
}
