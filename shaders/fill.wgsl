// fill.wgsl — fill a range of a buffer with one value; copy a range between buffers.
//
// Layout: flat f32 arrays; ranges are given in elements (offset, len).
// Dispatch: one invocation per element, WORKGROUP_SIZE invocations per workgroup; a long range
// folds its workgroups into a 2-D grid (x up to the per-dimension limit, y rows of x), so the
// linear workgroup index is wid.y * num_workgroups.x + wid.x.
// Bindings: 0 params (uniform); fill: 1 out; copy: 1 src (read), 2 dst (read_write).
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust.

struct Params {
    len: u32,
    // The fill value as bits, so that NaN (the poison value) survives any float handling.
    value_bits: u32,
    src_offset: u32,
    dst_offset: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;


@compute @workgroup_size(WORKGROUP_SIZE)
fn fill(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        out[params.dst_offset + i] = bitcast<f32>(params.value_bits);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn copy(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        dst[params.dst_offset + i] = src[params.src_offset + i];
    }
}
