//! References for shaders/elementwise.wgsl, generic over [`Real`] so that their backwards can
//! be checked against finite differences in f64.

use super::Real;

pub fn add<R: Real>(a: &[R], b: &[R]) -> Vec<R> {
    a.iter().zip(b).map(|(&x, &y)| x + y).collect()
}

pub fn sub<R: Real>(a: &[R], b: &[R]) -> Vec<R> {
    a.iter().zip(b).map(|(&x, &y)| x - y).collect()
}

pub fn mul<R: Real>(a: &[R], b: &[R]) -> Vec<R> {
    a.iter().zip(b).map(|(&x, &y)| x * y).collect()
}

pub fn scale<R: Real>(a: &[R], alpha: R) -> Vec<R> {
    a.iter().map(|&x| alpha * x).collect()
}

/// max(x, 0); NaN stays NaN (torch.relu).
pub fn relu<R: Real>(a: &[R]) -> Vec<R> {
    a.iter()
        .map(|&x| if x <= R::zero() { R::zero() } else { x })
        .collect()
}

/// `grad` where the forward input was positive, else 0.
pub fn relu_backward<R: Real>(input: &[R], grad: &[R]) -> Vec<R> {
    input
        .iter()
        .zip(grad)
        .map(|(&x, &g)| if x > R::zero() { g } else { R::zero() })
        .collect()
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// 1 / (1 + e^(-x)), computed in f64.
pub fn sigmoid<R: Real>(a: &[R]) -> Vec<R> {
    a.iter()
        .map(|&x| R::from_f64(logistic(x.to_f64())))
        .collect()
}

/// grad · y · (1 - y), from the forward output y.
pub fn sigmoid_backward<R: Real>(output: &[R], grad: &[R]) -> Vec<R> {
    output
        .iter()
        .zip(grad)
        .map(|(&y, &g)| {
            let y = y.to_f64();
            R::from_f64(g.to_f64() * y * (1.0 - y))
        })
        .collect()
}

/// SiLU: x · sigmoid(x).
pub fn silu<R: Real>(a: &[R]) -> Vec<R> {
    a.iter()
        .map(|&x| {
            let x = x.to_f64();
            R::from_f64(x * logistic(x))
        })
        .collect()
}

/// grad · s · (1 + x · (1 - s)), s = sigmoid(x), from the forward input x.
pub fn silu_backward<R: Real>(input: &[R], grad: &[R]) -> Vec<R> {
    input
        .iter()
        .zip(grad)
        .map(|(&x, &g)| {
            let x = x.to_f64();
            let s = logistic(x);
            R::from_f64(g.to_f64() * s * (1.0 + x * (1.0 - s)))
        })
        .collect()
}

/// out[r, c] = a[r, c] + bias[c].
pub fn add_row_bias<R: Real>(a: &[R], bias: &[R]) -> Vec<R> {
    a.iter()
        .enumerate()
        .map(|(i, &x)| x + bias[i % bias.len()])
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
pub fn dropout<R: Real>(a: &[R], drop_threshold: u32, scale: R, seed: u32) -> Vec<R> {
    let seed_hash = dropout_hash(seed);
    a.iter()
        .enumerate()
        .map(|(i, &x)| {
            if dropout_hash(i as u32 ^ seed_hash) >= drop_threshold {
                x * scale
            } else {
                R::zero()
            }
        })
        .collect()
}
