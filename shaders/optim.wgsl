// optim.wgsl — optimiser updates, in place, one invocation per parameter element. The update
// rules are PyTorch's (torch.optim.SGD, Adam, AdamW with their default flags).
//
//   sgd_step:  g = grad + weight_decay · param
//              with momentum: buf = g on the first step, else momentum · buf + g;
//                             g = g + momentum · buf (Nesterov) or buf
//              param -= lr · g
//   adam_step: AdamW (decoupled = 1): param ·= 1 − lr · weight_decay; g = grad
//              Adam (decoupled = 0):  g = grad + weight_decay · param
//              m = β1 · m + (1 − β1) · g;   v = β2 · v + (1 − β2) · g²
//              param −= (lr / bias_correction1) · m / (√v / √bias_correction2 + eps)
//              where bias_correction_i = 1 − β_i^step, computed by the launcher.
//
// Layout: all tensors flat, `count` elements. Dispatch: one invocation per element,
// WORKGROUP_SIZE per workgroup, folded into a 2-D grid (linear id = wid.y · nx + wid.x).
// Bindings: 0 params (uniform); 1 grad (read); 2 param, 3 first state (SGD's momentum buffer,
// Adam's m), 4 second state (Adam's v) (read_write).
// Overrides: WORKGROUP_SIZE — invocations per workgroup.

struct Params {
    count: u32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    nesterov: u32,
    first_step: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    decoupled: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> state_a: array<f32>;
@group(0) @binding(4) var<storage, read_write> state_b: array<f32>;

override WORKGROUP_SIZE: u32 = 256u;

fn linear_id(wid: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * groups.x + wid.x) * WORKGROUP_SIZE + lid;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sgd_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, groups, lid);
    if i >= params.count {
        return;
    }
    var g = grad[i] + params.weight_decay * param[i];
    if params.momentum != 0.0 {
        var buf = g;
        if params.first_step == 0u {
            buf = params.momentum * state_a[i] + g;
        }
        state_a[i] = buf;
        g = select(buf, g + params.momentum * buf, params.nesterov != 0u);
    }
    param[i] -= params.lr * g;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn adam_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, groups, lid);
    if i >= params.count {
        return;
    }
    var p = param[i];
    var g = grad[i];
    if params.decoupled != 0u {
        p *= 1.0 - params.lr * params.weight_decay;
    } else {
        g += params.weight_decay * p;
    }
    let m = params.beta1 * state_a[i] + (1.0 - params.beta1) * g;
    let v = params.beta2 * state_b[i] + (1.0 - params.beta2) * g * g;
    state_a[i] = m;
    state_b[i] = v;
    let denom = sqrt(v) / sqrt(params.bias_correction2) + params.eps;
    param[i] = p - (params.lr / params.bias_correction1) * m / denom;
}
