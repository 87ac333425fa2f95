//! References for shaders/elementwise.wgsl.

pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

pub fn sub(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

pub fn mul(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x * y).collect()
}

pub fn scale(a: &[f32], alpha: f32) -> Vec<f32> {
    a.iter().map(|x| alpha * x).collect()
}

/// max(x, 0); NaN stays NaN (torch.relu).
pub fn relu(a: &[f32]) -> Vec<f32> {
    a.iter().map(|&x| if x <= 0.0 { 0.0 } else { x }).collect()
}

/// `grad` where the forward input was positive, else 0.
pub fn relu_backward(input: &[f32], grad: &[f32]) -> Vec<f32> {
    input
        .iter()
        .zip(grad)
        .map(|(&x, &g)| if x > 0.0 { g } else { 0.0 })
        .collect()
}
