// batchnorm.wgsl — BatchNorm2d over NCHW: statistics, running-statistics update, normalisation,
// and the backward passes of training mode (batch statistics) and eval mode (running ones).
//
// With M = N·H·W values per channel c, xhat = (x - mean[c]) · inverseSqrt(variance[c] + eps):
//   batch_norm_statistics:      mean[c] and the biased variance[c] of the batch (two passes)
//   batch_norm_update_running:  running = (1 - momentum)·running + momentum·batch, the variance
//                               made unbiased (·M/(M-1)) first, as PyTorch does
//   batch_norm_forward:         out = xhat · weight[c] + bias[c], then optionally (the eval-mode
//                               epilogue fusion) + residual and ReLU: one pass where BN, the
//                               residual add and ReLU took three
//   batch_norm_backward_reduce: grad_weight[c] = Σ grad_out·xhat, grad_bias[c] = Σ grad_out
//   batch_norm_backward_input:  training: weight·invstd·(grad_out - grad_bias/M - xhat·grad_weight/M)
//                               eval:     weight·invstd·grad_out  (the statistics are constants)
//
// Layout: x, out, grad_out [N, C, H, W]; per-channel vectors [C].
// Dispatch: per-channel entry points (statistics, backward_reduce) run one workgroup per channel
// (WORKGROUP_SIZE invocations stride over the channel's M values, then a tree reduction);
// update_running one invocation per channel; elementwise ones one invocation per element;
// all folded into 2-D grids (linear id = wid.y · nx + wid.x).
// Bindings: 0 params; 1 x, 2 mean, 3 variance, 4 weight, 5 bias, 6 grad_out, 9 grad_weight,
// 10 grad_bias, 11 residual (read); 7 and 8 the outputs (read_write): statistics → mean, variance;
// update_running → running_mean, running_var; forward → out; backward_reduce → grad_weight,
// grad_bias; backward_input → grad_in.
// Overrides: WORKGROUP_SIZE — invocations per workgroup (a power of two for the tree).

struct Params {
    batch: u32,
    channels: u32,
    plane: u32,
    eps: f32,
    momentum: f32,
    training: u32,
    // batch_norm_forward's epilogue: add residual (binding 11), then ReLU.
    add_residual: u32,
    relu: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> variance: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read> grad_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> out_a: array<f32>;
@group(0) @binding(8) var<storage, read_write> out_b: array<f32>;
@group(0) @binding(9) var<storage, read> grad_weight: array<f32>;
@group(0) @binding(10) var<storage, read> grad_bias: array<f32>;
@group(0) @binding(11) var<storage, read> residual: array<f32>;

override WORKGROUP_SIZE: u32 = 256u;

var<workgroup> partial_a: array<f32, WORKGROUP_SIZE>;
var<workgroup> partial_b: array<f32, WORKGROUP_SIZE>;

fn linear_id(wid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wid.y * groups.x + wid.x;
}

// Index of the r-th value of channel c (r over N·H·W, batch-major).
fn channel_index(c: u32, r: u32) -> u32 {
    let n = r / params.plane;
    return (n * params.channels + c) * params.plane + r % params.plane;
}

// Sums partial_a and partial_b over the workgroup; the totals end in slot 0.
fn reduce_pair(lid: u32) {
    workgroupBarrier();
    for (var width = WORKGROUP_SIZE / 2u; width > 0u; width /= 2u) {
        if lid < width {
            partial_a[lid] += partial_a[lid + width];
            partial_b[lid] += partial_b[lid + width];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_statistics(@builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(num_workgroups) groups: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let c = linear_id(wid, groups);
    if c >= params.channels {
        return;
    }
    let count = params.batch * params.plane;
    var sum = 0.0;
    for (var r = lid; r < count; r += WORKGROUP_SIZE) {
        sum += x[channel_index(c, r)];
    }
    partial_a[lid] = sum;
    partial_b[lid] = 0.0;
    reduce_pair(lid);
    let channel_mean = partial_a[0] / f32(count);
    workgroupBarrier();
    // Second pass around the mean: no cancellation, unlike E[x²] - E[x]².
    var squares = 0.0;
    for (var r = lid; r < count; r += WORKGROUP_SIZE) {
        let d = x[channel_index(c, r)] - channel_mean;
        squares += d * d;
    }
    partial_a[lid] = 0.0;
    partial_b[lid] = squares;
    reduce_pair(lid);
    if lid == 0u {
        out_a[c] = channel_mean;
        out_b[c] = partial_b[0] / f32(count);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_update_running(@builtin(workgroup_id) wid: vec3<u32>,
                             @builtin(num_workgroups) groups: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
    let c = linear_id(wid, groups) * WORKGROUP_SIZE + lid;
    if c >= params.channels {
        return;
    }
    let count = f32(params.batch * params.plane);
    let unbiased = variance[c] * count / (count - 1.0);
    out_a[c] = (1.0 - params.momentum) * out_a[c] + params.momentum * mean[c];
    out_b[c] = (1.0 - params.momentum) * out_b[c] + params.momentum * unbiased;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_forward(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) groups: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, groups) * WORKGROUP_SIZE + lid;
    if i >= params.batch * params.channels * params.plane {
        return;
    }
    let c = (i / params.plane) % params.channels;
    let inverse_std = inverseSqrt(variance[c] + params.eps);
    var y = (x[i] - mean[c]) * inverse_std * weight[c] + bias[c];
    if params.add_residual != 0u {
        y += residual[i];
    }
    if params.relu != 0u {
        y = max(y, 0.0);
    }
    out_a[i] = y;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_backward_reduce(@builtin(workgroup_id) wid: vec3<u32>,
                              @builtin(num_workgroups) groups: vec3<u32>,
                              @builtin(local_invocation_index) lid: u32) {
    let c = linear_id(wid, groups);
    if c >= params.channels {
        return;
    }
    let count = params.batch * params.plane;
    let inverse_std = inverseSqrt(variance[c] + params.eps);
    var sum_dy = 0.0;
    var sum_dy_xhat = 0.0;
    for (var r = lid; r < count; r += WORKGROUP_SIZE) {
        let i = channel_index(c, r);
        let dy = grad_out[i];
        sum_dy += dy;
        sum_dy_xhat += dy * (x[i] - mean[c]) * inverse_std;
    }
    partial_a[lid] = sum_dy_xhat;
    partial_b[lid] = sum_dy;
    reduce_pair(lid);
    if lid == 0u {
        out_a[c] = partial_a[0];
        out_b[c] = partial_b[0];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_backward_input(@builtin(workgroup_id) wid: vec3<u32>,
                             @builtin(num_workgroups) groups: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, groups) * WORKGROUP_SIZE + lid;
    if i >= params.batch * params.channels * params.plane {
        return;
    }
    let c = (i / params.plane) % params.channels;
    let inverse_std = inverseSqrt(variance[c] + params.eps);
    let scale = weight[c] * inverse_std;
    if params.training == 0u {
        out_a[i] = scale * grad_out[i];
        return;
    }
    let count = f32(params.batch * params.plane);
    let xhat = (x[i] - mean[c]) * inverse_std;
    out_a[i] = scale * (grad_out[i] - grad_bias[c] / count - xhat * grad_weight[c] / count);
}
