// softmax.wgsl — softmax and log-softmax over the last axis.
//
// The input is viewed as params.rows rows of params.cols contiguous values.
//   softmax:     out[r, c] = exp(x[r, c] - max_r) / sum_c' exp(x[r, c'] - max_r)
//   log_softmax: out[r, c] = x[r, c] - max_r - log(sum_c' exp(x[r, c'] - max_r))
// Subtracting the row maximum keeps exp() from overflowing, as PyTorch does.
// Backward, from the forward output y and the output gradient g:
//   softmax_backward:     grad[r, c] = y[r, c] · (g[r, c] - sum_c' g[r, c'] · y[r, c'])
//   log_softmax_backward: grad[r, c] = g[r, c] - exp(y[r, c]) · sum_c' g[r, c']
//
// Dispatch: one workgroup per row (2-D grid fold: row = wid.y * nx + wid.x); its WORKGROUP_SIZE
// invocations stride over the columns and combine maxima and sums in workgroup memory.
// Bindings: 0 params (uniform), 1 x (read; the forward output y for backward), 2 out
//   (read_write), 3 grad_out (read; backward only).
// Overrides: WORKGROUP_SIZE — invocations per row (a power of two for the tree).

struct Params {
    rows: u32,
    cols: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> grad_out: array<f32>;


var<workgroup> scratch: array<f32, WORKGROUP_SIZE>;

// Tree reduction of scratch[] (max when take_max, else sum); every invocation gets the result.
fn combine(lid: u32, take_max: bool) -> f32 {
    workgroupBarrier();
    for (var width = WORKGROUP_SIZE / 2u; width > 0u; width /= 2u) {
        if lid < width {
            let other = scratch[lid + width];
            scratch[lid] = select(scratch[lid] + other, max(scratch[lid], other), take_max);
        }
        workgroupBarrier();
    }
    let result = scratch[0];
    // Nobody may overwrite scratch[0] for the next reduction before everyone has read it.
    workgroupBarrier();
    return result;
}

// Returns (row maximum, sum of exp(x - maximum)) for the row starting at `base`.
fn row_statistics(base: u32, lid: u32) -> vec2<f32> {
    var local_max = -3.402823e38;
    for (var c = lid; c < params.cols; c += WORKGROUP_SIZE) {
        local_max = max(local_max, x[base + c]);
    }
    scratch[lid] = local_max;
    let row_max = combine(lid, true);
    var local_sum = 0.0;
    for (var c = lid; c < params.cols; c += WORKGROUP_SIZE) {
        local_sum += exp(x[base + c] - row_max);
    }
    scratch[lid] = local_sum;
    return vec2<f32>(row_max, combine(lid, false));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn softmax(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(at);
    if row >= params.rows {
        return;
    }
    let base = row * params.cols;
    let stats = row_statistics(base, lid);
    let inverse_sum = 1.0 / stats.y;
    for (var c = lid; c < params.cols; c += WORKGROUP_SIZE) {
        out[base + c] = exp(x[base + c] - stats.x) * inverse_sum;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn log_softmax(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(at);
    if row >= params.rows {
        return;
    }
    let base = row * params.cols;
    let stats = row_statistics(base, lid);
    let log_sum = log(stats.y);
    for (var c = lid; c < params.cols; c += WORKGROUP_SIZE) {
        out[base + c] = x[base + c] - stats.x - log_sum;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn softmax_backward(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(at);
    if row >= params.rows {
        return;
    }
    let base = row * params.cols;
    var local_sum = 0.0;
    for (var c = lid; c < params.cols; c += WORKGROUP_SIZE) {
        local_sum += grad_out[base + c] * x[base + c];
    }
    scratch[lid] = local_sum;
    let dot = combine(lid, false);
    for (var c = lid; c < params.cols; c += WORKGROUP_SIZE) {
        out[base + c] = x[base + c] * (grad_out[base + c] - dot);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn log_softmax_backward(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(at);
    if row >= params.rows {
        return;
    }
    let base = row * params.cols;
    var local_sum = 0.0;
    for (var c = lid; c < params.cols; c += WORKGROUP_SIZE) {
        local_sum += grad_out[base + c];
    }
    scratch[lid] = local_sum;
    let total = combine(lid, false);
    for (var c = lid; c < params.cols; c += WORKGROUP_SIZE) {
        out[base + c] = grad_out[base + c] - exp(x[base + c]) * total;
    }
}
