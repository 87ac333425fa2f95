// reduce.wgsl — sum over chosen axes, times a scale (1 for sum, 1/count for mean).
//
// The host coalesces the input's axes into at most four kept and four reduced groups; each
// group has a size and an element stride into the input (innermost group last, unused groups
// size 1). Output element o (row-major over the kept groups) is
//     out[o] = scale * sum over r of input[offset(o, kept) + offset(r, reduced)].
//
// Entry points:
//   reduce_per_invocation — one invocation per output element, a serial loop over the reduced
//       elements. For short reductions (a few hundred elements or fewer).
//   reduce_per_workgroup — one workgroup per output element: WORKGROUP_SIZE invocations take
//       strided partial sums, then a tree reduction in workgroup memory. For long reductions
//       (batch-norm statistics: N·H·W elements per channel).
// Dispatch: workgroups folded into a 2-D grid (linear id = wid.y * nx + wid.x).
// Bindings: 0 params (uniform), 1 input (read), 2 out (read_write).
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust (a power of two for the
// tree).

struct Params {
    kept_sizes: vec4<u32>,
    kept_strides: vec4<u32>,
    reduced_sizes: vec4<u32>,
    reduced_strides: vec4<u32>,
    num_outputs: u32,
    reduced_count: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;


var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

// Input offset of the index-th element of a group set (row-major over the four groups).
fn group_offset(index: u32, sizes: vec4<u32>, strides: vec4<u32>) -> u32 {
    var rest = index;
    var offset = 0u;
    for (var d = 3i; d >= 0i; d--) {
        offset += (rest % sizes[d]) * strides[d];
        rest /= sizes[d];
    }
    return offset;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_per_invocation(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let o = invocation_index(at, lid);
    if o >= params.num_outputs {
        return;
    }
    let base = group_offset(o, params.kept_sizes, params.kept_strides);
    var sum = 0.0;
    for (var r = 0u; r < params.reduced_count; r++) {
        sum += input[base + group_offset(r, params.reduced_sizes, params.reduced_strides)];
    }
    out[o] = params.scale * sum;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_per_workgroup(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    // Uniform across the workgroup, so the early exit keeps the barriers below uniform.
    let o = workgroup_index(at);
    if o >= params.num_outputs {
        return;
    }
    let base = group_offset(o, params.kept_sizes, params.kept_strides);
    var sum = 0.0;
    for (var r = lid; r < params.reduced_count; r += WORKGROUP_SIZE) {
        sum += input[base + group_offset(r, params.reduced_sizes, params.reduced_strides)];
    }
    partial[lid] = sum;
    workgroupBarrier();
    for (var width = WORKGROUP_SIZE / 2u; width > 0u; width /= 2u) {
        if lid < width {
            partial[lid] += partial[lid + width];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        out[o] = params.scale * partial[0];
    }
}
