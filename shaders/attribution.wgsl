// attribution.wgsl — the work of the sampling saliency methods outside the network, kept on
// the GPU so that only final maps are read back:
//
//   noisy_copies:    SmoothGrad's inputs: out[k, i] = x[image, i] + sigma · z(seed, first_sample + k, i),
//                    z a standard normal from a counter-based generator (below)
//   interpolate:     integrated gradients' path: out[k, i] = baseline[i] + alphas[k] · (x[image, i] − baseline[i])
//   accumulate:      sum[image, i] += Σ_k weights[k] · g[k, i], or · |g[k, i]| where params.absolute = 1
//                    (SmoothGrad's mean of |gradient|, integrated gradients' quadrature)
//   reduce_channels: maps[n, p] = max_c |a[n, c, p]| (params.absolute = 1) or Σ_c a[n, c, p]
//
// The generator is common/counter_rng.wgsl's: a value depends only on its counters, not on
// the batch or the dispatch order.
//
// Layout: x [N, C, H, W] (size = C·H·W values per image); out and g [count, C, H, W]; sum
// [N, C, H, W]; baseline [C, H, W]; alphas, weights [≥ count]; a [N, C, plane], maps
// [N, plane]. All f32.
// Dispatch: one invocation per output element (per element of one image for accumulate, per
// map pixel for reduce_channels), WORKGROUP_SIZE per workgroup, folded into a 2-D grid past
// the per-dimension limit (common/grid.wgsl).
// Bindings: 0 params (uniform), 1 x (read), 2 out (read_write), 3 g (read), 4 weights (read),
// 5 sum (read_write), 6 baseline (read), 7 alphas (read).
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust.

struct Params {
    size: u32,
    image: u32,
    count: u32,
    first_sample: u32,
    seed_low: u32,
    seed_high: u32,
    sigma: f32,
    absolute: u32,
    channels: u32,
    plane: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read> weights: array<f32>;
@group(0) @binding(5) var<storage, read_write> sum: array<f32>;
@group(0) @binding(6) var<storage, read> baseline: array<f32>;
@group(0) @binding(7) var<storage, read> alphas: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn noisy_copies(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i >= params.count * params.size {
        return;
    }
    let k = i / params.size;
    let element = i % params.size;
    let seed = vec2(params.seed_low, params.seed_high);
    let noise = params.sigma * standard_normal(seed, params.first_sample + k, element);
    out[i] = x[params.image * params.size + element] + noise;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn interpolate(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i >= params.count * params.size {
        return;
    }
    let element = i % params.size;
    let b = baseline[element];
    out[i] = b + alphas[i / params.size] * (x[params.image * params.size + element] - b);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn accumulate(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let element = invocation_index(at, lid);
    if element >= params.size {
        return;
    }
    var total = 0.0;
    for (var k = 0u; k < params.count; k++) {
        let value = g[k * params.size + element];
        total += weights[k] * select(value, abs(value), params.absolute == 1u);
    }
    sum[params.image * params.size + element] += total;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_channels(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i >= params.count * params.plane {
        return;
    }
    let n = i / params.plane;
    let p = i % params.plane;
    var reduced = 0.0;
    for (var c = 0u; c < params.channels; c++) {
        let value = x[(n * params.channels + c) * params.plane + p];
        if params.absolute == 1u {
            reduced = max(reduced, abs(value));
        } else {
            reduced += value;
        }
    }
    out[i] = reduced;
}
