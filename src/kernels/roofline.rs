//! Launchers for shaders/roofline.wgsl: the microkernels that measure the adapter's best
//! arithmetic rate (`fma_chain`) and memory bandwidth (`stream_copy`) for the roofline
//! (`src/roofline.rs`).

use super::{Launch, as_u32};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::shaders::{Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;

uniform_params! {
    struct Params { len: u32, iterations: u32, scale: f32, offset: f32 }
}

entries! {
    entries for Shader::Roofline, Params;
    bindings { out: read_write 1, src: read 2, dst: read_write 3 }
    FMA_CHAIN = "fma_chain", WorkgroupSize::Override(256), [out];
    STREAM_COPY = "stream_copy", WorkgroupSize::Override(256), [src, dst];
}

/// Independent vec4 chains per invocation of `fma_chain` (the shader's c0 … c7; a mismatch
/// fails `tests/roofline.rs`, whose reference runs this many).
pub const FMA_CHAINS: usize = 8;

/// The floating-point operations of `fma_chain` over `invocations` and `iterations`: one vec4
/// FMA (8 FLOPs) per chain and step.
pub fn fma_chain_flops(invocations: usize, iterations: u32) -> u64 {
    invocations as u64 * u64::from(iterations) * FMA_CHAINS as u64 * 8
}

/// `invocations` values, each the sum of its `FMA_CHAINS` · 4 lanes after `iterations` steps of
/// v ← v · scale + offset (the reference is `reference::roofline::fma_chain`).
pub fn fma_chain(
    gpu: &Gpu,
    invocations: usize,
    iterations: u32,
    scale: f32,
    offset: f32,
) -> Result<Tensor> {
    let params = Params {
        len: as_u32("fma_chain", "invocations", invocations)?,
        iterations,
        scale,
        offset,
    };
    let out = Tensor::empty(gpu, [invocations])?;
    Launch::new(gpu, &FMA_CHAIN, params)
        .bind(1, &out)
        .flops(fma_chain_flops(invocations, iterations))
        .over(invocations as u64)?;
    Ok(out)
}

/// dst = src, a vec4 at a time: both of the same element count, a multiple of 4.
pub fn stream_copy(src: &Tensor, dst: &Tensor) -> Result<()> {
    if src.numel() != dst.numel() || !src.numel().is_multiple_of(4) {
        return Err(Error::invalid(
            "stream_copy",
            format!(
                "needs two tensors of one element count, a multiple of 4; got {:?} and {:?}",
                src.dims(),
                dst.dims()
            ),
        ));
    }
    let vectors = src.numel() / 4;
    let params = Params {
        len: as_u32("stream_copy", "vec4 count", vectors)?,
        iterations: 0,
        scale: 0.0,
        offset: 0.0,
    };
    Launch::new(src.gpu(), &STREAM_COPY, params)
        .bind(2, src)
        .bind(3, dst)
        .over(vectors as u64)
}
