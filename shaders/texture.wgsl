// texture.wgsl — a row-major f32 matrix copied into an rgba32float texture, one texel per 4
// consecutive values of a row:
//
//   matrix_to_texture: texel (c, r) = source[r, 4c .. 4c + 4]
//
// Why: on lavapipe a storage-buffer load whose address differs across the SIMD lanes is a loop
// over the lanes with a bounds check per component, while a texel fetch computes all lanes'
// addresses at once; the subgroup matmul reads its B operand 1.2–2× faster from a texture
// (BENCHMARKS.md), which repays this one pass over B.
//
// Layout: source [rows, 4 · columns4]; destination at least columns4 × rows texels.
// Dispatch: 8×8 invocations per workgroup, one per texel: workgroups (ceil(columns4 / 8),
// ceil(rows / 8), 1). Square, so that the narrow matrices (13 texels for a 7×7 plane padded to
// 52 values) leave few invocations idle.
// Bindings: 0 params (uniform), 1 source (read, vec4), 2 destination (write-only storage texture).

struct Params {
    columns4: u32,
    rows: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> source: array<vec4<f32>>;
@group(0) @binding(2) var destination: texture_storage_2d<rgba32float, write>;

@compute @workgroup_size(8, 8)
fn matrix_to_texture(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let column = wid.x * 8u + lid.x;
    let row = wid.y * 8u + lid.y;
    if column < params.columns4 && row < params.rows {
        textureStore(destination, vec2<u32>(column, row), source[row * params.columns4 + column]);
    }
}
