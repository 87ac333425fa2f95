//! Plain-Rust SGD and Adam / AdamW steps, element by element as torch.optim writes them: the
//! oracle for shaders/optim.wgsl.

use crate::kernels::optim::{AdamStep, SgdStep};

/// One SGD step on `param` (and `momentum_buffer`, used when momentum ≠ 0).
pub fn sgd_step(param: &mut [f32], grad: &[f32], momentum_buffer: &mut [f32], step: &SgdStep) {
    for i in 0..param.len() {
        let mut g = grad[i] + step.weight_decay * param[i];
        if step.momentum != 0.0 {
            let buffer = if step.first_step {
                g
            } else {
                step.momentum * momentum_buffer[i] + g
            };
            momentum_buffer[i] = buffer;
            g = if step.nesterov {
                g + step.momentum * buffer
            } else {
                buffer
            };
        }
        param[i] -= step.lr * g;
    }
}

/// One Adam (or AdamW) step on `param` with moments `m` and `v`.
pub fn adam_step(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], step: &AdamStep) {
    let bias_correction1 = 1.0 - f64::from(step.beta1).powi(step.step as i32);
    let bias_correction2 = 1.0 - f64::from(step.beta2).powi(step.step as i32);
    for i in 0..param.len() {
        let mut p = f64::from(param[i]);
        let mut g = f64::from(grad[i]);
        let (lr, wd) = (f64::from(step.lr), f64::from(step.weight_decay));
        if step.decoupled {
            p *= 1.0 - lr * wd;
        } else {
            g += wd * p;
        }
        let m_new = f64::from(step.beta1) * f64::from(m[i]) + (1.0 - f64::from(step.beta1)) * g;
        let v_new = f64::from(step.beta2) * f64::from(v[i]) + (1.0 - f64::from(step.beta2)) * g * g;
        m[i] = m_new as f32;
        v[i] = v_new as f32;
        let denom = v_new.sqrt() / bias_correction2.sqrt() + f64::from(step.eps);
        param[i] = (p - lr / bias_correction1 * m_new / denom) as f32;
    }
}
