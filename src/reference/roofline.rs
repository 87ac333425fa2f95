//! The roofline microkernels' results on the host (shaders/roofline.wgsl).

use crate::kernels::roofline::FMA_CHAINS;

/// What `kernels::roofline::fma_chain` computes: per invocation i, chain c and lane l a value
/// starting at (i + 4c + l) mod 7, taken `iterations` times through v · scale + offset, all
/// summed (in f64: the GPU sums 32 values in f32, so compare with a tolerance).
pub fn fma_chain(invocations: usize, iterations: u32, scale: f32, offset: f32) -> Vec<f32> {
    (0..invocations)
        .map(|i| {
            let mut sum = 0.0f64;
            for chain in 0..FMA_CHAINS {
                for lane in 0..4 {
                    let mut value = ((i + 4 * chain + lane) % 7) as f32;
                    for _ in 0..iterations {
                        value = value.mul_add(scale, offset);
                    }
                    sum += f64::from(value);
                }
            }
            sum as f32
        })
        .collect()
}
