// loss.wgsl — negative log-likelihood over log-probabilities (after log_softmax: cross-entropy).
//
//   nll_loss:          loss = -sum_b w[t_b] · logp[b, t_b] / sum_b w[t_b]   (PyTorch's 'mean'
//                      reduction with class weights; without weights it is the batch mean)
//   nll_loss_backward: grad[b, c] = c == t_b ? -w[t_b] · grad_loss / sum_b w[t_b] : 0
//
// Layout: log_probs and grad [B, C]; targets [B] as f32 class indices (exact below 2²⁴; the
// host validated them); class_weight [C]; loss, weight_sum, grad_loss: one value each.
// Dispatch: nll_loss one workgroup (WORKGROUP_SIZE invocations stride over the batch, then a
// tree reduction); nll_loss_backward one invocation per element of grad, 2-D grid fold.
// Bindings: 0 params; 1 log_probs, 2 targets, 3 class_weight (read); forward: 4 loss,
// 5 weight_sum (read_write); backward: 6 weight_sum_in, 7 grad_loss (read), 4 grad (read_write).
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust (a power of two for the
// tree).

struct Params {
    batch: u32,
    classes: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> log_probs: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read> class_weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> weight_sum: array<f32>;
@group(0) @binding(6) var<storage, read> weight_sum_in: array<f32>;
@group(0) @binding(7) var<storage, read> grad_loss: array<f32>;


var<workgroup> numerators: array<f32, WORKGROUP_SIZE>;
var<workgroup> denominators: array<f32, WORKGROUP_SIZE>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn nll_loss(@builtin(local_invocation_index) lid: u32) {
    var numerator = 0.0;
    var denominator = 0.0;
    for (var b = lid; b < params.batch; b += WORKGROUP_SIZE) {
        let t = u32(targets[b]);
        let w = class_weight[t];
        numerator -= w * log_probs[b * params.classes + t];
        denominator += w;
    }
    numerators[lid] = numerator;
    denominators[lid] = denominator;
    workgroupBarrier();
    for (var width = WORKGROUP_SIZE / 2u; width > 0u; width /= 2u) {
        if lid < width {
            numerators[lid] += numerators[lid + width];
            denominators[lid] += denominators[lid + width];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        out[0] = numerators[0] / denominators[0];
        weight_sum[0] = denominators[0];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn nll_loss_backward(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i >= params.batch * params.classes {
        return;
    }
    let b = i / params.classes;
    let c = i % params.classes;
    let t = u32(targets[b]);
    out[i] = select(0.0, -class_weight[t] * grad_loss[0] / weight_sum_in[0], c == t);
}
