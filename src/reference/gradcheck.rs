//! Central finite differences in f64: the check that a reference backward is the derivative of
//! its forward.

/// Checks `backward(x, g)` against the directional derivative of `sum(g · forward(x))`, one
/// input element at a time, with step `eps`. Returns the largest relative error found, or an
/// error naming the first element off by more than `tolerance` (relative to max(1, |want|)).
pub fn check(
    x: &[f64],
    grad_out: &[f64],
    forward: impl Fn(&[f64]) -> Vec<f64>,
    backward: impl Fn(&[f64], &[f64]) -> Vec<f64>,
    eps: f64,
    tolerance: f64,
) -> Result<f64, String> {
    let analytic = backward(x, grad_out);
    if analytic.len() != x.len() {
        return Err(format!(
            "backward returned {} values for {} inputs",
            analytic.len(),
            x.len()
        ));
    }
    let objective =
        |x: &[f64]| -> f64 { forward(x).iter().zip(grad_out).map(|(y, g)| y * g).sum() };
    let mut probe = x.to_vec();
    let mut worst: f64 = 0.0;
    for i in 0..x.len() {
        probe[i] = x[i] + eps;
        let up = objective(&probe);
        probe[i] = x[i] - eps;
        let down = objective(&probe);
        probe[i] = x[i];
        let numeric = (up - down) / (2.0 * eps);
        let error = (numeric - analytic[i]).abs() / numeric.abs().max(1.0);
        if error > tolerance {
            return Err(format!(
                "element {i}: backward gives {}, finite differences {numeric} (error {error})",
                analytic[i]
            ));
        }
        worst = worst.max(error);
    }
    Ok(worst)
}
