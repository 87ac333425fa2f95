//! References for shaders/softmax.wgsl (over the last axis, rows of `cols` values), generic
//! so that the gradient checks run them in f64. Arithmetic is done in f64 either way.

use super::Real;

pub fn softmax<T: Real>(x: &[T], cols: usize) -> Vec<T> {
    x.chunks(cols)
        .flat_map(|row| {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.to_f64()));
            let sum: f64 = row.iter().map(|v| (v.to_f64() - max).exp()).sum();
            row.iter()
                .map(move |v| T::from_f64((v.to_f64() - max).exp() / sum))
        })
        .collect()
}

pub fn log_softmax<T: Real>(x: &[T], cols: usize) -> Vec<T> {
    x.chunks(cols)
        .flat_map(|row| {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.to_f64()));
            let log_sum = row
                .iter()
                .map(|v| (v.to_f64() - max).exp())
                .sum::<f64>()
                .ln();
            row.iter()
                .map(move |v| T::from_f64(v.to_f64() - max - log_sum))
        })
        .collect()
}

/// The gradient of softmax from its output `y` and the output gradient `g`.
pub fn softmax_backward<T: Real>(y: &[T], g: &[T], cols: usize) -> Vec<T> {
    y.chunks(cols)
        .zip(g.chunks(cols))
        .flat_map(|(y, g)| {
            let dot: f64 = y.iter().zip(g).map(|(a, b)| a.to_f64() * b.to_f64()).sum();
            y.iter()
                .zip(g)
                .map(move |(a, b)| T::from_f64(a.to_f64() * (b.to_f64() - dot)))
        })
        .collect()
}

/// The gradient of log_softmax from its output `y` and the output gradient `g`.
pub fn log_softmax_backward<T: Real>(y: &[T], g: &[T], cols: usize) -> Vec<T> {
    y.chunks(cols)
        .zip(g.chunks(cols))
        .flat_map(|(y, g)| {
            let total: f64 = g.iter().map(|b| b.to_f64()).sum();
            y.iter()
                .zip(g)
                .map(move |(a, b)| T::from_f64(b.to_f64() - a.to_f64().exp() * total))
        })
        .collect()
}
