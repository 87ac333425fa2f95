// roofline.wgsl — microkernels that measure what the adapter can do at best: its arithmetic
// rate (fma_chain) and its memory bandwidth (stream_copy). `gradlens bench --roofline` times
// them and places each kernel of a model's step against the two (src/roofline.rs).
//
// fma_chain: every invocation runs 8 independent vec4 chains of
//   v ← v · params.scale + params.offset
// for params.iterations steps (a vec4 FMA: 8 FLOPs per chain and step), with no memory
// traffic but its one store of the chains' sum. The chains are independent so that the
// pipeline stays full; the iteration count is a uniform so that no compiler folds the loop.
// Eight chains measured best on lavapipe (AVX2, 8 invocations per SIMD register): 61 GFLOP/s
// against 52 with 4 (too few in flight) and 37-44 with 16 (registers spilled); named
// variables, not an array, which llvmpipe kept in memory (50 GFLOP/s).
// With |scale| < 1 each chain converges to offset / (1 − scale), so the values stay finite
// however long it runs. FLOPs: invocations · iterations · 8 chains · 4 lanes · 2.
// stream_copy: dst[i] = src[i] over vec4s, the STREAM benchmark's copy: bytes moved are twice
// the buffer.
//
// Layout: flat f32 arrays (vec4 for the copy; its length is params.len vec4s).
// Dispatch: one invocation per chain set (fma_chain: params.len invocations) or per vec4
// (stream_copy), WORKGROUP_SIZE invocations per workgroup, folded into a 2-D grid past the
// per-dimension limit (common/grid.wgsl).
// Bindings: 0 params (uniform); fma_chain: 1 out (one value per invocation); stream_copy:
// 2 src (read), 3 dst (read_write).
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust.

struct Params {
    len: u32,
    iterations: u32,
    scale: f32,
    offset: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn fma_chain(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i >= params.len {
        return;
    }
    // Distinct starting values per chain and invocation: (i + lane + 4·chain) mod 7.
    let s = vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u);
    var c0 = start(s, 0u);
    var c1 = start(s, 1u);
    var c2 = start(s, 2u);
    var c3 = start(s, 3u);
    var c4 = start(s, 4u);
    var c5 = start(s, 5u);
    var c6 = start(s, 6u);
    var c7 = start(s, 7u);
    let scale = vec4<f32>(params.scale);
    let offset = vec4<f32>(params.offset);
    for (var k = 0u; k < params.iterations; k++) {
        c0 = fma(c0, scale, offset);
        c1 = fma(c1, scale, offset);
        c2 = fma(c2, scale, offset);
        c3 = fma(c3, scale, offset);
        c4 = fma(c4, scale, offset);
        c5 = fma(c5, scale, offset);
        c6 = fma(c6, scale, offset);
        c7 = fma(c7, scale, offset);
    }
    let sum = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7));
    out[i] = sum.x + sum.y + sum.z + sum.w;
}

// Chain `chain`'s starting values for lanes starting at `s`: (s + 4·chain) mod 7.
fn start(s: vec4<u32>, chain: u32) -> vec4<f32> {
    return vec4<f32>((s + vec4<u32>(4u * chain)) % vec4<u32>(7u));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn stream_copy(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        dst[i] = src[i];
    }
}
