//! The sampling saliency methods' kernels on the host (shaders/attribution.wgsl).

use crate::kernels::attribution::ChannelReduction;

fn lowbias32(value: u32) -> u32 {
    let mut h = value;
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// The shader's uniform in (0, 1) for these counters, bit for bit.
fn uniform(seed: u64, sample: u32, element: u32, stream: u32) -> f32 {
    let mut h = lowbias32((seed >> 32) as u32 ^ stream.wrapping_mul(0x9e37_79b9));
    h = lowbias32(seed as u32 ^ h);
    h = lowbias32(sample ^ h);
    h = lowbias32(element ^ h);
    ((h >> 8) as f32 + 0.5) / 16_777_216.0
}

/// The shader's standard normal (Box–Muller in f32; the GPU's log and cos may differ in the
/// last bits).
pub fn standard_normal(seed: u64, sample: u32, element: u32) -> f32 {
    let radius = (-2.0 * uniform(seed, sample, element, 0).ln()).sqrt();
    radius * (std::f32::consts::TAU * uniform(seed, sample, element, 1)).cos()
}

/// What `kernels::attribution::noisy_copies` computes from `x` [N, size].
pub fn noisy_copies(
    x: &[f32],
    size: usize,
    image: usize,
    count: usize,
    first_sample: u32,
    seed: u64,
    sigma: f32,
) -> Vec<f32> {
    let original = &x[image * size..(image + 1) * size];
    (0..count)
        .flat_map(|k| {
            original.iter().enumerate().map(move |(i, &v)| {
                v + sigma * standard_normal(seed, first_sample + k as u32, i as u32)
            })
        })
        .collect()
}

/// What `kernels::attribution::interpolate` computes.
pub fn interpolate(
    x: &[f32],
    size: usize,
    image: usize,
    baseline: &[f32],
    alphas: &[f32],
) -> Vec<f32> {
    let original = &x[image * size..(image + 1) * size];
    alphas
        .iter()
        .flat_map(|&alpha| {
            original
                .iter()
                .zip(baseline)
                .map(move |(&v, &b)| b + alpha * (v - b))
        })
        .collect()
}

/// What `kernels::attribution::accumulate` does to `sum` [N, size].
pub fn accumulate(
    sum: &mut [f32],
    size: usize,
    image: usize,
    g: &[f32],
    weights: &[f32],
    absolute: bool,
) {
    let count = g.len() / size;
    for i in 0..size {
        let mut total = 0.0;
        for k in 0..count {
            let value = g[k * size + i];
            total += weights[k] * if absolute { value.abs() } else { value };
        }
        sum[image * size + i] += total;
    }
}

/// What `kernels::attribution::reduce_channels` computes from `a` [N, C, plane].
pub fn reduce_channels(
    a: &[f32],
    channels: usize,
    plane: usize,
    reduction: ChannelReduction,
) -> Vec<f32> {
    let n = a.len() / (channels * plane);
    let mut maps = vec![0.0f32; n * plane];
    for b in 0..n {
        for p in 0..plane {
            let values = (0..channels).map(|c| a[(b * channels + c) * plane + p]);
            maps[b * plane + p] = match reduction {
                ChannelReduction::AbsMax => values.fold(0.0, |m, v| m.max(v.abs())),
                ChannelReduction::Sum => values.sum(),
            };
        }
    }
    maps
}
