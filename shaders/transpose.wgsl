// transpose.wgsl — axis swaps that hand matmul kernels their operands untransposed:
//   transpose:         out[b, c, r] = x[b, r, c]   for x [batch, rows, cols] → [batch, cols, rows]
//   swap_leading_axes: out[r, b, c] = x[b, r, c]   for x [batch, rows, cols] → [rows, batch, cols]
//                      (contiguous runs of `cols`: the weight gradient's [N, C, P] → [C, N, P])
//   resize_last_axis:  out[b, c] = x[b, c] for c < rows, else 0, for x [batch, rows] and out
//                      [batch, cols]: pads rows with zeros (cols > rows) or crops them
//
// Dispatch: transpose one invocation per element of out, WORKGROUP_SIZE per workgroup, folded
// into a 2-D grid (linear id = wid.y · nx + wid.x); consecutive invocations write consecutive
// elements. swap_leading_axes and resize_last_axis row by row, as their comments say.
// Bindings: 0 params (uniform), 1 x (read), 2 out (read_write); 3 and 4 their vec4 views, for
// swap_leading_axes_vec4.
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust.

struct Params {
    batch: u32,
    rows: u32,
    cols: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>;


@compute @workgroup_size(WORKGROUP_SIZE)
fn transpose(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let matrix = params.rows * params.cols;
    if i >= params.batch * matrix {
        return;
    }
    let b = i / matrix;
    let c = (i % matrix) / params.rows;
    let r = i % params.rows;
    out[i] = x[b * matrix + r * params.cols + c];
}

// resize_last_axis's own dispatch: workgroups (ceil(cols / WORKGROUP_SIZE), row groups), each
// invocation one column of the rows from wid.y in steps of num_workgroups.y — no division
// finds a coordinate (lavapipe runs a vector division by a variable as eight scalar ones).
@compute @workgroup_size(WORKGROUP_SIZE)
fn resize_last_axis(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let c = at.wid.x * WORKGROUP_SIZE + lid;
    if c >= params.cols {
        return;
    }
    for (var row = at.wid.y; row < params.batch; row += at.groups.y) {
        var value = 0.0;
        if c < params.rows {
            value = x[row * params.rows + c];
        }
        out[row * params.cols + c] = value;
    }
}

// swap_leading_axes moves whole runs of `cols` values: out row R = r·batch + b takes x row
// b·rows + r. Dispatched like resize_last_axis: workgroups (ceil(cols / WORKGROUP_SIZE), row
// groups), one invocation per value of a run (per vec4 in the _vec4 entry, for cols a
// multiple of 4), rows from wid.y in steps of num_workgroups.y; a row's source is found by
// workgroup-uniform arithmetic, not by a division per value.
fn swapped_source_row(out_row: u32) -> u32 {
    let r = out_row / params.batch;
    return (out_row - r * params.batch) * params.rows + r;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn swap_leading_axes(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let c = at.wid.x * WORKGROUP_SIZE + lid;
    if c >= params.cols {
        return;
    }
    for (var row = at.wid.y; row < params.batch * params.rows; row += at.groups.y) {
        out[row * params.cols + c] = x[swapped_source_row(row) * params.cols + c];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn swap_leading_axes_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let c4 = at.wid.x * WORKGROUP_SIZE + lid;
    let cols4 = params.cols / 4u;
    if c4 >= cols4 {
        return;
    }
    for (var row = at.wid.y; row < params.batch * params.rows; row += at.groups.y) {
        out4[row * cols4 + c4] = x4[swapped_source_row(row) * cols4 + c4];
    }
}
