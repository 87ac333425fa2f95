// elementwise.wgsl — element-by-element arithmetic on same-shape tensors.
//
//   add:           out = a + b
//   sub:           out = a - b
//   mul:           out = a * b
//   scale:         out = alpha * a
//   relu:          out = a > 0 ? a : 0          (NaN propagates, as torch.relu)
//   relu_backward: out = a > 0 ? b : 0          (a: the forward input, b: the output gradient)
//   sigmoid:       out = 1 / (1 + exp(-a))
//   sigmoid_backward: out = b · a · (1 - a)     (a: the forward output, as PyTorch keeps it)
//   silu:          out = a · sigmoid(a)         (SiLU, or swish)
//   silu_backward: out = b · s · (1 + a · (1 - s)), s = sigmoid(a)   (a: the forward input)
//   add_row_bias:  out = a + b[i % columns]     (a bias per column: Linear's, over [rows, columns])
//   add_channel_bias: out = a + b[(i / columns) % channels]   (Conv2d's bias over NCHW, with
//                  columns = H·W)
//   dropout:       out = keep(seed, i) ? a · alpha : 0, keep with probability 1 - drop_threshold/2³²
//                  (inverted dropout, alpha = 1/(1-p)); the mask is a hash of (seed, i), so the
//                  backward is the same kernel applied to the gradient with the same seed
//
// Layout: flat f32 arrays of params.len elements.
// Dispatch: one invocation per element, WORKGROUP_SIZE per workgroup, workgroups folded into a
// 2-D grid when there are more than the per-dimension limit (linear id = wid.y * nx + wid.x).
// The _vec4 twins of add, sub, mul, scale, relu, sigmoid, silu and their backwards take four
// elements per invocation (params.len a multiple of 4): on lavapipe every storage access is a
// loop over the SIMD lanes, and one vec4 access costs little more than one scalar.
// Bindings: 0 params (uniform), 1 a (read), 2 b (read; binary ops and add_row_bias),
//   3 out (read_write); the _vec4 entry points' 4 a, 5 b, 6 out are the same as vec4 arrays.
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust.

struct Params {
    len: u32,
    alpha: f32,
    seed: u32,
    drop_threshold: u32,
    columns: u32,
    channels: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;


// NaN test on the bits: comparisons with NaN are not reliable under every backend's float
// optimisations (OpenGL drivers turn `x <= 0` true for NaN).
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn add(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        out[i] = a[i] + b[i];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sub(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        out[i] = a[i] - b[i];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn mul(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        out[i] = a[i] * b[i];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn scale(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        out[i] = params.alpha * a[i];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn relu(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        let x = a[i];
        // NaN passes through, as in PyTorch.
        out[i] = select(select(x, 0.0, x <= 0.0), x, is_nan(x));
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn relu_backward(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        out[i] = select(0.0, b[i], a[i] > 0.0);
    }
}

// exp(-x) overflows to inf below x ≈ -88, where 1 / (1 + inf) is the right 0; NaN propagates.
fn sigmoid_of(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sigmoid(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        out[i] = sigmoid_of(a[i]);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sigmoid_backward(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        let y = a[i];
        out[i] = b[i] * y * (1.0 - y);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn silu(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        let x = a[i];
        out[i] = x * sigmoid_of(x);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn silu_backward(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        let x = a[i];
        let s = sigmoid_of(x);
        out[i] = b[i] * s * (1.0 + x * (1.0 - s));
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn add_row_bias(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        out[i] = a[i] + b[i % params.columns];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn add_channel_bias(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        out[i] = a[i] + b[(i / params.columns) % params.channels];
    }
}

@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> out4: array<vec4<f32>>;

fn is_nan4(x: vec4<f32>) -> vec4<bool> {
    return (bitcast<vec4<u32>>(x) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn add_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len / 4u {
        out4[i] = a4[i] + b4[i];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sub_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len / 4u {
        out4[i] = a4[i] - b4[i];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn mul_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len / 4u {
        out4[i] = a4[i] * b4[i];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn scale_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len / 4u {
        out4[i] = params.alpha * a4[i];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn relu_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len / 4u {
        let x = a4[i];
        out4[i] = select(select(x, vec4<f32>(0.0), x <= vec4<f32>(0.0)), x, is_nan4(x));
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn relu_backward_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len / 4u {
        out4[i] = select(vec4<f32>(0.0), b4[i], a4[i] > vec4<f32>(0.0));
    }
}

fn sigmoid_of4(x: vec4<f32>) -> vec4<f32> {
    return 1.0 / (1.0 + exp(-x));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sigmoid_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len / 4u {
        out4[i] = sigmoid_of4(a4[i]);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sigmoid_backward_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len / 4u {
        let y = a4[i];
        out4[i] = b4[i] * y * (1.0 - y);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn silu_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len / 4u {
        let x = a4[i];
        out4[i] = x * sigmoid_of4(x);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn silu_backward_vec4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len / 4u {
        let x = a4[i];
        let s = sigmoid_of4(x);
        out4[i] = b4[i] * s * (1.0 + x * (1.0 - s));
    }
}

// PCG-style integer hash (Jarzynski & Olano, "Hash Functions for GPU Rendering", 2020): cheap,
// stateless and well mixed, so every element draws its own bit from (seed, index) alone.
fn hash(value: u32) -> u32 {
    let state = value * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn dropout(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i < params.len {
        let keep = hash(i ^ hash(params.seed)) >= params.drop_threshold;
        out[i] = select(0.0, a[i] * params.alpha, keep);
    }
}
