//! References for shaders/loss.wgsl.

use super::Real;

/// PyTorch's weighted-mean NLL loss over `log_probs` [batch, classes].
pub fn nll_loss<T: Real>(log_probs: &[T], targets: &[usize], class_weight: &[T]) -> T {
    let classes = class_weight.len();
    let mut numerator = 0.0;
    let mut denominator = 0.0;
    for (b, &t) in targets.iter().enumerate() {
        let w = class_weight[t].to_f64();
        numerator -= w * log_probs[b * classes + t].to_f64();
        denominator += w;
    }
    T::from_f64(numerator / denominator)
}

/// d(loss)/d(log_probs), times `grad_loss`.
pub fn nll_loss_backward<T: Real>(targets: &[usize], class_weight: &[T], grad_loss: T) -> Vec<T> {
    let classes = class_weight.len();
    let denominator: f64 = targets.iter().map(|&t| class_weight[t].to_f64()).sum();
    let mut grad = vec![T::zero(); targets.len() * classes];
    for (b, &t) in targets.iter().enumerate() {
        grad[b * classes + t] =
            T::from_f64(-class_weight[t].to_f64() * grad_loss.to_f64() / denominator);
    }
    grad
}
