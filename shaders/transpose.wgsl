// transpose.wgsl — axis swaps that hand matmul kernels their operands untransposed:
//   transpose:         out[b, c, r] = x[b, r, c]   for x [batch, rows, cols] → [batch, cols, rows]
//   swap_leading_axes: out[r, b, c] = x[b, r, c]   for x [batch, rows, cols] → [rows, batch, cols]
//                      (contiguous runs of `cols`: the weight gradient's [N, C, P] → [C, N, P])
//   resize_last_axis:  out[b, c] = x[b, c] for c < rows, else 0, for x [batch, rows] and out
//                      [batch, cols]: pads rows with zeros (cols > rows) or crops them
//
// Dispatch: one invocation per element of out, WORKGROUP_SIZE per workgroup, folded into a 2-D
// grid (linear id = wid.y · nx + wid.x); consecutive invocations write consecutive elements.
// resize_last_axis as its comment says.
// Bindings: 0 params (uniform), 1 x (read), 2 out (read_write).
// Overrides: WORKGROUP_SIZE — invocations per workgroup.

struct Params {
    batch: u32,
    rows: u32,
    cols: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

override WORKGROUP_SIZE: u32 = 256u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn transpose(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * groups.x + wid.x) * WORKGROUP_SIZE + lid;
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
fn resize_last_axis(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) groups: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let c = wid.x * WORKGROUP_SIZE + lid;
    if c >= params.cols {
        return;
    }
    for (var row = wid.y; row < params.batch; row += groups.y) {
        var value = 0.0;
        if c < params.rows {
            value = x[row * params.rows + c];
        }
        out[row * params.cols + c] = value;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn swap_leading_axes(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) groups: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * groups.x + wid.x) * WORKGROUP_SIZE + lid;
    if i >= params.batch * params.rows * params.cols {
        return;
    }
    let c = i % params.cols;
    let b = (i / params.cols) % params.batch;
    let r = i / (params.cols * params.batch);
    out[i] = x[(b * params.rows + r) * params.cols + c];
}
