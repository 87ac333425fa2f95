// cam.wgsl — class activation maps from a layer's activations A and the score's gradient G,
// on the GPU so that only the maps are read back:
//
//   cam_channel_weights: w[n, k] from channel (n, k)'s plane —
//                        kind 0 (Grad-CAM): the mean of G;
//                        kind 1 (Grad-CAM++): Σ_p ReLU(G) · G² / (2 G² + (Σ_q A) G³ + 1e-6),
//                        0 where G = 0 (pytorch-grad-cam's ε)
//   cam_combine:         cam[n, p] = ReLU(Σ_k c), c = w[n, k] · A (kind 0, weighted),
//                        G · A (kind 2, HiResCAM) or ReLU(G) · A (kind 3, LayerCAM)
//   upsample_maps:       maps [N, h, w] → [N, H, W], bilinear at pixel centres
//                        (align_corners = false, as torch's F.interpolate;
//                        common/bilinear.wgsl)
//   scale_by_nearest:    out[n, c, y, x] = attribution[n, c, y, x] · cam[n, ⌊y·h/H⌋, ⌊x·w/W⌋]
//                        (guided Grad-CAM: guided backprop times the map upsampled as
//                        torch's F.interpolate(mode="nearest"), Captum's GuidedGradCam)
//
// Layout: a, g [N, K, h, w]; weights [N, K]; cam [N, h, w]; out [N, H, W] (upsample_maps) or
// [N, C, H, W] like attribution (scale_by_nearest, C in params.channels). All f32.
// Dispatch: one invocation per (n, k) for cam_channel_weights, per (n, p) for cam_combine,
// per output element for upsample_maps and scale_by_nearest; WORKGROUP_SIZE per workgroup,
// folded into a 2-D grid
// past the per-dimension limit (common/grid.wgsl).
// Bindings: 0 params (uniform), 1 a (read), 2 g (read), 3 weights_out (read_write), 4 weights
// (read), 5 cam_out (read_write), 6 cam (read), 7 out (read_write), 8 attribution (read).
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust.

struct Params {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    out_height: u32,
    out_width: u32,
    kind: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> weights_out: array<f32>;
@group(0) @binding(4) var<storage, read> weights: array<f32>;
@group(0) @binding(5) var<storage, read_write> cam_out: array<f32>;
@group(0) @binding(6) var<storage, read> cam: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read> attribution: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn cam_channel_weights(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i >= params.batch * params.channels {
        return;
    }
    let plane = params.height * params.width;
    let base = i * plane;
    var weight = 0.0;
    if params.kind == 0u {
        for (var p = 0u; p < plane; p++) {
            weight += g[base + p];
        }
        weight /= f32(plane);
    } else {
        var activation_sum = 0.0;
        for (var p = 0u; p < plane; p++) {
            activation_sum += a[base + p];
        }
        for (var p = 0u; p < plane; p++) {
            let d = g[base + p];
            if d != 0.0 {
                let d2 = d * d;
                weight += max(d, 0.0) * d2 / (2.0 * d2 + activation_sum * d2 * d + 1e-6);
            }
        }
    }
    weights_out[i] = weight;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn cam_combine(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let plane = params.height * params.width;
    if i >= params.batch * plane {
        return;
    }
    let n = i / plane;
    let p = i % plane;
    var total = 0.0;
    for (var k = 0u; k < params.channels; k++) {
        let at_k = (n * params.channels + k) * plane + p;
        switch params.kind {
            case 0u: { total += weights[n * params.channels + k] * a[at_k]; }
            case 2u: { total += g[at_k] * a[at_k]; }
            case 3u: { total += max(g[at_k], 0.0) * a[at_k]; }
            default: {}
        }
    }
    cam_out[i] = max(total, 0.0);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn upsample_maps(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let out_plane = params.out_height * params.out_width;
    if i >= params.batch * out_plane {
        return;
    }
    let n = i / out_plane;
    let y = (i % out_plane) / params.out_width;
    let x = i % params.out_width;
    let sy = bilinear_source(y, params.height, params.out_height);
    let sx = bilinear_source(x, params.width, params.out_width);
    let base = n * params.height * params.width;
    let top = (1.0 - sx.weight) * cam[base + sy.low * params.width + sx.low]
        + sx.weight * cam[base + sy.low * params.width + sx.high];
    let bottom = (1.0 - sx.weight) * cam[base + sy.high * params.width + sx.low]
        + sx.weight * cam[base + sy.high * params.width + sx.high];
    out[i] = (1.0 - sy.weight) * top + sy.weight * bottom;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn scale_by_nearest(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let out_plane = params.out_height * params.out_width;
    if i >= params.batch * params.channels * out_plane {
        return;
    }
    let n = i / (params.channels * out_plane);
    let y = (i % out_plane) / params.out_width;
    let x = i % params.out_width;
    let row = min(y * params.height / params.out_height, params.height - 1u);
    let column = min(x * params.width / params.out_width, params.width - 1u);
    out[i] = attribution[i] * cam[(n * params.height + row) * params.width + column];
}
