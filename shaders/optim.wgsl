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
// Layout: all tensors flat, `count` elements. Dispatch: one invocation per element (per four
// in the _vec4 entry points, for counts that are multiples of 4), WORKGROUP_SIZE per
// workgroup, folded into a 2-D grid (linear id = wid.y · nx + wid.x).
// Bindings: 0 params (uniform); 1 grad (read); 2 param, 3 first state (SGD's momentum buffer,
// Adam's m), 4 second state (Adam's v) (read_write); 5–8 the same as vec4s, for _vec4.
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust.

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
@group(0) @binding(5) var<storage, read> grad4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> param4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> state_a4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> state_b4: array<vec4<f32>>;


// The updates on four elements at once: the scalar entry points use lane x only.
struct SgdUpdate {
    param: vec4<f32>,
    buffer: vec4<f32>,
}

// `buffer` is the momentum buffer before the step (read only with momentum, after the first).
fn sgd_update(param: vec4<f32>, grad: vec4<f32>, buffer: vec4<f32>) -> SgdUpdate {
    var g = grad + params.weight_decay * param;
    var buf = g;
    if params.momentum != 0.0 {
        if params.first_step == 0u {
            buf = params.momentum * buffer + g;
        }
        g = select(buf, g + params.momentum * buf, params.nesterov != 0u);
    }
    return SgdUpdate(param - params.lr * g, buf);
}

struct AdamUpdate {
    param: vec4<f32>,
    m: vec4<f32>,
    v: vec4<f32>,
}

fn adam_update(param: vec4<f32>, grad: vec4<f32>, m_before: vec4<f32>, v_before: vec4<f32>)
    -> AdamUpdate {
    var p = param;
    var g = grad;
    if params.decoupled != 0u {
        p *= 1.0 - params.lr * params.weight_decay;
    } else {
        g += params.weight_decay * p;
    }
    let m = params.beta1 * m_before + (1.0 - params.beta1) * g;
    let v = params.beta2 * v_before + (1.0 - params.beta2) * g * g;
    let denom = sqrt(v) / sqrt(params.bias_correction2) + params.eps;
    return AdamUpdate(p - (params.lr / params.bias_correction1) * m / denom, m, v);
}

// Whether the step reads the momentum buffer (without momentum a stand-in is bound there).
fn reads_momentum_buffer() -> bool {
    return params.momentum != 0.0 && params.first_step == 0u;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sgd_step(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i >= params.count {
        return;
    }
    var before = vec4<f32>(0.0);
    if reads_momentum_buffer() {
        before = vec4<f32>(state_a[i]);
    }
    let update = sgd_update(vec4<f32>(param[i]), vec4<f32>(grad[i]), before);
    if params.momentum != 0.0 {
        state_a[i] = update.buffer.x;
    }
    param[i] = update.param.x;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sgd_step_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i >= params.count / 4u {
        return;
    }
    var before = vec4<f32>(0.0);
    if reads_momentum_buffer() {
        before = state_a4[i];
    }
    let update = sgd_update(param4[i], grad4[i], before);
    if params.momentum != 0.0 {
        state_a4[i] = update.buffer;
    }
    param4[i] = update.param;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn adam_step(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i >= params.count {
        return;
    }
    let update = adam_update(vec4<f32>(param[i]), vec4<f32>(grad[i]), vec4<f32>(state_a[i]),
                             vec4<f32>(state_b[i]));
    state_a[i] = update.m.x;
    state_b[i] = update.v.x;
    param[i] = update.param.x;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn adam_step_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i >= params.count / 4u {
        return;
    }
    let update = adam_update(param4[i], grad4[i], state_a4[i], state_b4[i]);
    state_a4[i] = update.m;
    state_b4[i] = update.v;
    param4[i] = update.param;
}
