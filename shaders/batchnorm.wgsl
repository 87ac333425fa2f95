// batchnorm.wgsl — BatchNorm2d over NCHW: statistics, running-statistics update, normalisation,
// and the backward passes of training mode (batch statistics) and eval mode (running ones).
//
// With M = N·H·W values per channel c, xhat = (x - mean[c]) · inverseSqrt(variance[c] + eps):
//   batch_norm_statistics:      mean[c] and the biased variance[c] of the batch (two passes)
//   batch_norm_update_running:  running = (1 - momentum)·running + momentum·batch, the variance
//                               made unbiased (·M/(M-1)) first, as PyTorch does
//   batch_norm_fold:            the eval-mode normalisation as per-channel constants, out_a =
//                               [scale[0..C], shift[0..C]], for a convolution's output pass
//                               to apply in place of batch_norm_forward (`affine` below); with
//                               conv_bias, the normalisation of the convolution plus its bias
//   batch_norm_forward:         out = xhat · weight[c] + bias[c], then optionally (the eval-mode
//                               epilogue fusion) + residual and ReLU: one pass where BN, the
//                               residual add and ReLU took three
//   batch_norm_backward_reduce: grad_weight[c] = Σ grad_out·xhat, grad_bias[c] = Σ grad_out
//   batch_norm_backward_coefficients: the training input gradient's per-channel constants
//                               (mean, scale, slope, shift) = (mean, weight·invstd,
//                               -scale·invstd·grad_weight/M, -scale·grad_bias/M)
//   batch_norm_backward_input:  training: scale·grad_out + slope·(x - mean) + shift, which is
//                               weight·invstd·(grad_out - grad_bias/M - xhat·grad_weight/M)
//                               The reduction and the input gradient optionally take grad_out
//                               through the forward's ReLU first (no pass of its own for the
//                               ReLU), and the input pass can write that gradient too (the
//                               residual's).
//   batch_norm_backward_input_eval: weight·invstd·grad_out (the statistics are constants),
//                               the gradient optionally taken through the forward's ReLU first
//                               and optionally grad_out + grad_out_also (a value used twice)
//
// Layout: x, out, grad_out [N, C, H, W]; per-channel vectors [C]. x may be a wider tensor whose
// first channels are read in place (x_channels below).
// Dispatch: per-channel entry points (statistics, backward_reduce) run one workgroup per channel
// (WORKGROUP_SIZE invocations stride over each sample's plane in turn, then a tree reduction),
// folded into 2-D grids (linear id = wid.y · nx + wid.x); update_running, fold and
// backward_coefficients one invocation per channel; the elementwise ones as their section
// below says.
// Bindings: 0 params; 1 x, 2 mean, 3 variance, 4 weight, 5 bias, 6 grad_out, 9 grad_weight,
// 10 grad_bias, 11 residual, 12 relu_output (read); 7 and 8 the outputs (read_write):
// statistics → mean, variance; update_running → running_mean, running_var; forward → out;
// backward_reduce → grad_weight, grad_bias; backward_coefficients → out_a4 (a vec4 per
// channel); backward_input and backward_input_eval → grad_in and the gradient after the ReLU;
// fold → out_a; backward_input_eval also reads 19 grad_out_also, fold 21 conv_bias,
// backward_input 22 coefficients, both input gradients 23 so_far (24 its vec4 view). No
// entry binds more than 8 storage buffers (WebGPU's default limit per stage).
// 13–18 and 20: vec4 views of x, residual, grad_out, relu_output, the two outputs and
// grad_out_also, for the _vec4 entry points.
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust (a power of two for the
// tree);
// PLANE_VEC4 — the statistics read H·W (a multiple of 4) through the vec4 view.

struct Params {
    batch: u32,
    channels: u32,
    plane: u32,
    eps: f32,
    momentum: f32,
    // batch_norm_forward's epilogue: add residual (binding 11), then ReLU. In the backward
    // passes: relu takes the gradient through that ReLU first (relu_output, binding 12;
    // guided: also dropping negative gradients); in the input gradients, add_residual also
    // writes it to out_b.
    add_residual: u32,
    relu: u32,
    guided: u32,
    // The eval-mode input gradient's incoming gradient is grad_out + grad_out_also (binding
    // 19): the two gradients of a value used twice, summed in this pass rather than in one of
    // their own.
    add_second_gradient: u32,
    // batch_norm_fold: the convolution has a bias (binding 21), which the shift takes in.
    conv_bias: u32,
    // The input gradients' incoming gradients and ReLU output are channels source_first ..
    // source_first + channels of tensors of source_channels channels (a concatenation's
    // part); the per-channel tensors are indexed by that source channel. The outputs have
    // `channels` channels. The reductions have source_first = 0.
    source_channels: u32,
    source_first: u32,
    // x has x_channels channels, of which the source channels are read in place (a DenseNet
    // block buffer, whose first channels are the norm's input); otherwise the source's.
    x_channels: u32,
    // The input gradients add what their input's gradient holds so far (binding 23, 24 as
    // vec4s): a DenseNet feature's, summed in the pass that writes its next term.
    accumulate: u32,
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

// The statistics: H·W is a multiple of 4, so planes are read through x4.
override PLANE_VEC4: u32 = 0u;

var<workgroup> partial_a: array<f32, WORKGROUP_SIZE>;
var<workgroup> partial_b: array<f32, WORKGROUP_SIZE>;

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

// The per-channel reductions visit channel c's planes one sample after another, each plane's
// values strided over the workgroup: no division finds a value's sample and position (lavapipe
// runs a vector division as eight scalar ones), and with PLANE_VEC4 (H·W a multiple of 4) they
// are read four at a time through the vec4 bindings.

// This invocation's share of Σ (x - center) over channel c, or of Σ (x - center)² with
// `squared`, as four partial sums.
fn channel_sum(c: u32, lid: u32, center: f32, squared: bool) -> vec4<f32> {
    var sum = vec4<f32>(0.0);
    for (var n = 0u; n < params.batch; n++) {
        let base = x_plane(n, c);
        if PLANE_VEC4 != 0u {
            for (var q = lid; q < params.plane / 4u; q += WORKGROUP_SIZE) {
                let d = x4[base / 4u + q] - center;
                sum += select(d, d * d, squared);
            }
        } else {
            for (var q = lid; q < params.plane; q += WORKGROUP_SIZE) {
                let d = x[base + q] - center;
                sum.x += select(d, d * d, squared);
            }
        }
    }
    return sum;
}

// Where x's plane of sample n, channel c starts.
fn x_plane(n: u32, c: u32) -> u32 {
    return (n * params.x_channels + c) * params.plane;
}

fn total(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_statistics(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let c = workgroup_index(at);
    if c >= params.channels {
        return;
    }
    let count = params.batch * params.plane;
    partial_a[lid] = total(channel_sum(c, lid, 0.0, false));
    partial_b[lid] = 0.0;
    reduce_pair(lid);
    let channel_mean = partial_a[0] / f32(count);
    workgroupBarrier();
    // Second pass around the mean: no cancellation, unlike E[x²] - E[x]².
    partial_a[lid] = 0.0;
    partial_b[lid] = total(channel_sum(c, lid, channel_mean, true));
    reduce_pair(lid);
    if lid == 0u {
        out_a[c] = channel_mean;
        out_b[c] = partial_b[0] / f32(count);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_update_running(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let c = workgroup_index(at) * WORKGROUP_SIZE + lid;
    if c >= params.channels {
        return;
    }
    let count = f32(params.batch * params.plane);
    let unbiased = variance[c] * count / (count - 1.0);
    out_a[c] = (1.0 - params.momentum) * out_a[c] + params.momentum * mean[c];
    out_b[c] = (1.0 - params.momentum) * out_b[c] + params.momentum * unbiased;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_fold(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let c = workgroup_index(at) * WORKGROUP_SIZE + lid;
    if c >= params.channels {
        return;
    }
    let k = affine(c);
    out_a[c] = k.scale;
    // BN of (conv + b) is conv · scale + bias − (mean − b) · scale: mean − b is the mean of
    // what the convolution's pass computes before the bias.
    var shift = k.shift;
    if params.conv_bias != 0u {
        shift = bias[c] - (mean[c] - conv_bias[c]) * k.scale;
    }
    out_a[params.channels + c] = shift;
}

// ---- The elementwise passes: forward and input gradient ----
// One invocation per 4 consecutive values of one plane (one sample's channel); workgroups
// (ceil(H·W / (4·WORKGROUP_SIZE)), C, N). The channel is the workgroup's own, so no integer
// division finds it (lavapipe runs a vector division as eight scalar ones) and its parameters
// are read once per 4 values. The _vec4 entry points need H·W a multiple of 4 and read and
// write the planes through the vec4 bindings 13–18; the others loop over the 4 values.

// Where this workgroup's plane starts, and the first of this invocation's 4 values in it.
fn plane_base(wid: vec3<u32>) -> u32 {
    return (wid.z * params.channels + wid.y) * params.plane;
}

// Where this workgroup's plane starts in the sources and in x, and the source's channel.
fn source_base(wid: vec3<u32>) -> u32 {
    return (wid.z * params.source_channels + source_channel(wid)) * params.plane;
}

fn x_base(wid: vec3<u32>) -> u32 {
    return x_plane(wid.z, source_channel(wid));
}

fn source_channel(wid: vec3<u32>) -> u32 {
    return params.source_first + wid.y;
}

fn first_value(wid: vec3<u32>, lid: u32) -> u32 {
    return (wid.x * WORKGROUP_SIZE + lid) * 4u;
}

// The per-channel constants of the normalisation, y = x · scale + shift, computed as PyTorch's
// CPU kernel computes them (so that values near 0 fall on the same side of a following ReLU).
struct Affine {
    scale: f32,
    shift: f32,
}

fn affine(c: u32) -> Affine {
    let scale = inverseSqrt(variance[c] + params.eps) * weight[c];
    return Affine(scale, bias[c] - mean[c] * scale);
}

// The backward's gradient after the ReLU the forward applied (relu_output > 0; guided
// backprop also drops negative gradients); the incoming gradient without one.
fn through_relu(grad: vec4<f32>, relu_output: vec4<f32>) -> vec4<f32> {
    if params.relu == 0u {
        return grad;
    }
    var keep = relu_output > vec4<f32>(0.0);
    if params.guided != 0u {
        keep = keep & (grad > vec4<f32>(0.0));
    }
    return select(vec4<f32>(0.0), grad, keep);
}

// batch_norm_forward's values: x normalised, then the epilogue (+ residual, ReLU).
fn normalised(v: vec4<f32>, residual_values: vec4<f32>, k: Affine) -> vec4<f32> {
    var y = v * k.scale + k.shift;
    if params.add_residual != 0u {
        y += residual_values;
    }
    if params.relu != 0u {
        y = max(y, vec4<f32>(0.0));
    }
    return y;
}

// The training-mode input gradient (the statistics are functions of x) with channel c's
// coefficients k = (mean, scale, slope, shift) from batch_norm_backward_coefficients.
fn training_input_gradient(grad: vec4<f32>, v: vec4<f32>, k: vec4<f32>) -> vec4<f32> {
    return k.y * grad + k.z * (v - k.x) + k.w;
}

fn eval_scale(c: u32) -> f32 {
    return weight[c] * inverseSqrt(variance[c] + params.eps);
}

@group(0) @binding(12) var<storage, read> relu_output: array<f32>;
@group(0) @binding(13) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read> residual4: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read> grad_out4: array<vec4<f32>>;
@group(0) @binding(16) var<storage, read> relu_output4: array<vec4<f32>>;
@group(0) @binding(17) var<storage, read_write> out_a4: array<vec4<f32>>;
@group(0) @binding(18) var<storage, read_write> out_b4: array<vec4<f32>>;
@group(0) @binding(19) var<storage, read> grad_out_also: array<f32>;
@group(0) @binding(20) var<storage, read> grad_out_also4: array<vec4<f32>>;
@group(0) @binding(21) var<storage, read> conv_bias: array<f32>;
@group(0) @binding(22) var<storage, read> coefficients: array<vec4<f32>>;
@group(0) @binding(23) var<storage, read> so_far: array<f32>;
@group(0) @binding(24) var<storage, read> so_far4: array<vec4<f32>>;

// The backward reduction's and the training input gradient's incoming gradient at i (a vec4
// index in the _vec4 entries), taken through the forward's ReLU with relu; relu_output is
// read only then.
fn gradient_after_relu(i: u32) -> f32 {
    if params.relu == 0u {
        return grad_out[i];
    }
    return through_relu(vec4<f32>(grad_out[i]), vec4<f32>(relu_output[i])).x;
}

fn gradient_after_relu4(i: u32) -> vec4<f32> {
    if params.relu == 0u {
        return grad_out4[i];
    }
    return through_relu(grad_out4[i], relu_output4[i]);
}

// An input gradient's `value` at i (a vec4 index in the _vec4 entries) plus what the input's
// gradient holds so far there, with accumulate; so_far is read only then.
fn plus_so_far(value: f32, i: u32) -> f32 {
    if params.accumulate == 0u {
        return value;
    }
    return value + so_far[i];
}

fn plus_so_far4(value: vec4<f32>, i: u32) -> vec4<f32> {
    if params.accumulate == 0u {
        return value;
    }
    return value + so_far4[i];
}

// The eval-mode input gradient's incoming gradient at i (vec4 index in the _vec4 entry).
fn incoming_gradient(i: u32) -> f32 {
    if params.add_second_gradient != 0u {
        return grad_out[i] + grad_out_also[i];
    }
    return grad_out[i];
}

fn incoming_gradient4(i: u32) -> vec4<f32> {
    if params.add_second_gradient != 0u {
        return grad_out4[i] + grad_out_also4[i];
    }
    return grad_out4[i];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_forward(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let base = plane_base(at.wid);
    let source = x_base(at.wid);
    let first = first_value(at.wid, lid);
    let k = affine(source_channel(at.wid));
    for (var q = first; q < min(first + 4u, params.plane); q++) {
        let residual_value = vec4<f32>(residual[base + q]);
        out_a[base + q] = normalised(vec4<f32>(x[source + q]), residual_value, k).x;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_forward_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let first = first_value(at.wid, lid);
    if first < params.plane {
        let i = (plane_base(at.wid) + first) / 4u;
        let k = affine(source_channel(at.wid));
        out_a4[i] = normalised(x4[(x_base(at.wid) + first) / 4u], residual4[i], k);
    }
}

// The per-channel reductions of the backward, one workgroup per channel as the statistics'
// (the scalar entry reads the planes one value at a time, the vec4 one, for H·W a multiple of
// 4, four): Σ dy and Σ dy·(x - mean) with dy the gradient after the ReLU, then
// store_parameter_gradients.
@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_backward_reduce(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let c = workgroup_index(at);
    if c >= params.channels {
        return;
    }
    let channel_mean = mean[c];
    var sum_dy = 0.0;
    var sum_dy_centred = 0.0;
    for (var n = 0u; n < params.batch; n++) {
        let base = (n * params.channels + c) * params.plane;
        let x_start = x_plane(n, c);
        for (var q = lid; q < params.plane; q += WORKGROUP_SIZE) {
            let dy = gradient_after_relu(base + q);
            sum_dy += dy;
            sum_dy_centred += dy * (x[x_start + q] - channel_mean);
        }
    }
    store_parameter_gradients(c, lid, sum_dy, sum_dy_centred);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_backward_reduce_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let c = workgroup_index(at);
    if c >= params.channels {
        return;
    }
    let channel_mean = mean[c];
    var sum_dy = vec4<f32>(0.0);
    var sum_dy_centred = vec4<f32>(0.0);
    for (var n = 0u; n < params.batch; n++) {
        let base = (n * params.channels + c) * params.plane / 4u;
        let x_start = x_plane(n, c) / 4u;
        for (var q = lid; q < params.plane / 4u; q += WORKGROUP_SIZE) {
            let dy = gradient_after_relu4(base + q);
            sum_dy += dy;
            sum_dy_centred += dy * (x4[x_start + q] - channel_mean);
        }
    }
    store_parameter_gradients(c, lid, total(sum_dy), total(sum_dy_centred));
}

// Sums the invocations' shares over the workgroup: grad_weight[c] = invstd · Σ dy·(x - mean)
// (= Σ dy·xhat) to out_a, grad_bias[c] = Σ dy to out_b.
fn store_parameter_gradients(c: u32, lid: u32, sum_dy: f32, sum_dy_centred: f32) {
    partial_a[lid] = sum_dy_centred * inverseSqrt(variance[c] + params.eps);
    partial_b[lid] = sum_dy;
    reduce_pair(lid);
    if lid == 0u {
        out_a[c] = partial_a[0];
        out_b[c] = partial_b[0];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_backward_coefficients(at: Workgroup,
                                    @builtin(local_invocation_index) lid: u32) {
    let c = workgroup_index(at) * WORKGROUP_SIZE + lid;
    if c >= params.channels {
        return;
    }
    let count = f32(params.batch * params.plane);
    let inverse_std = inverseSqrt(variance[c] + params.eps);
    let scale = weight[c] * inverse_std;
    let slope = -scale * inverse_std * grad_weight[c] / count;
    out_a4[c] = vec4<f32>(mean[c], scale, slope, -scale * grad_bias[c] / count);
}

// Training mode: the gradient taken through the forward's ReLU (with relu) goes to out_b too
// with add_residual.
@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_backward_input(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let base = plane_base(at.wid);
    let source = source_base(at.wid);
    let x_source = x_base(at.wid);
    let first = first_value(at.wid, lid);
    let k = coefficients[source_channel(at.wid)];
    for (var q = first; q < min(first + 4u, params.plane); q++) {
        let i = base + q;
        let s = source + q;
        let grad = gradient_after_relu(s);
        let value = training_input_gradient(vec4<f32>(grad), vec4<f32>(x[x_source + q]), k).x;
        out_a[i] = plus_so_far(value, i);
        if params.add_residual != 0u {
            out_b[i] = grad;
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_backward_input_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let first = first_value(at.wid, lid);
    if first < params.plane {
        let i = (plane_base(at.wid) + first) / 4u;
        let s = (source_base(at.wid) + first) / 4u;
        let grad = gradient_after_relu4(s);
        let k = coefficients[source_channel(at.wid)];
        let value = training_input_gradient(grad, x4[(x_base(at.wid) + first) / 4u], k);
        out_a4[i] = plus_so_far4(value, i);
        if params.add_residual != 0u {
            out_b4[i] = grad;
        }
    }
}

// Eval mode (constant statistics): weight·invstd·grad, the gradient (optionally the sum of two)
// first taken through the forward's ReLU; with add_residual the masked gradient (the
// residual's) goes to out_b too.
@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_backward_input_eval(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let base = plane_base(at.wid);
    let source = source_base(at.wid);
    let first = first_value(at.wid, lid);
    let scale = eval_scale(source_channel(at.wid));
    for (var q = first; q < min(first + 4u, params.plane); q++) {
        let i = base + q;
        let s = source + q;
        let grad = through_relu(vec4<f32>(incoming_gradient(s)), vec4<f32>(relu_output[s])).x;
        out_a[i] = plus_so_far(scale * grad, i);
        if params.add_residual != 0u {
            out_b[i] = grad;
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn batch_norm_backward_input_eval_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let first = first_value(at.wid, lid);
    if first < params.plane {
        let i = (plane_base(at.wid) + first) / 4u;
        let s = (source_base(at.wid) + first) / 4u;
        let grad = through_relu(incoming_gradient4(s), relu_output4[s]);
        out_a4[i] = plus_so_far4(eval_scale(source_channel(at.wid)) * grad, i);
        if params.add_residual != 0u {
            out_b4[i] = grad;
        }
    }
}
