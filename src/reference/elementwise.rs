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

/// out[r, c] = a[r, c] + bias[c].
pub fn add_row_bias(a: &[f32], bias: &[f32]) -> Vec<f32> {
    a.iter()
        .enumerate()
        .map(|(i, x)| x + bias[i % bias.len()])
        .collect()
}

/// The shader's hash (PCG-style, Jarzynski & Olano 2020), bit for bit.
pub fn dropout_hash(value: u32) -> u32 {
    let state = value.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// Inverted dropout with the shader's mask: element i is kept when
/// hash(i ^ hash(seed)) >= drop_threshold.
pub fn dropout(a: &[f32], drop_threshold: u32, scale: f32, seed: u32) -> Vec<f32> {
    let seed_hash = dropout_hash(seed);
    a.iter()
        .enumerate()
        .map(|(i, &x)| {
            if dropout_hash(i as u32 ^ seed_hash) >= drop_threshold {
                x * scale
            } else {
                0.0
            }
        })
        .collect()
}
