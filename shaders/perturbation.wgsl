// perturbation.wgsl — the mask arithmetic of the two perturbation methods
// (src/saliency/perturbation.rs, src/saliency/extremal.rs), on the GPU so that an optimisation
// reads back only the class scores per iteration and the masks at its end.
//
// Meaningful perturbation (Fong & Vedaldi 2017); masks [N, h, w] of low resolution, 1 keeps:
//   blend_with_mask:       out[n, c, y, x] = x · m + r · (1 − m), m the mask upsampled to H × W
//                          (bilinear at pixel centres, common/bilinear.wgsl) and read at
//                          (clamp(y − shift_y), clamp(x − shift_x)): the jittered mask
//   replacement_noise:     out[i] = noise_std · z(seed, sample, i) (common/counter_rng.wgsl)
//   mask_pixel_gradient:   grad_out[n, v, u] = Σ_c Σ g · (x − r) over the pixels (y, x) whose
//                          clamped shifted source is (v, u): ∂score/∂(upsampled mask)
//   mask_gradient:         grad_out[n, j, i] = Σ_{v,u} pixel_grad[n, v, u] · (the bilinear
//                          weight of cell (j, i) at (v, u)) − l1 where m < 1 + tv · β ·
//                          |Δm|^(β−1) · sign(Δm) summed over the cell's differences on both
//                          axes: the gradient of score + λ₁‖1 − m‖₁ + λ₂ Σ|Δm|^β
// Extremal perturbation (Fong, Patro & Vedaldi 2019); grids [K, gh, gw] of values one every
// `step` pixels, K = N · areas copies, copy k explaining image k / areas at area k % areas:
//   smooth_masks:          out[k, p] = max_g bump(p − g) · grid[k, g] over the grid points g
//                          within `reach` of p on both axes, bump(d) = bump[|dy|] · bump[|dx|];
//                          a tie goes to the larger bump, then to the first in row order;
//                          winner_out[k, p] = that g
//   blend_pyramid:         out[k, c, p] = the blur pyramid at level (1 − m) · (levels − 1),
//                          linear between its two neighbouring levels
//   area_threshold:        threshold_out[k] = (T, first): T the kept[k % areas]-th largest
//                          value of mask k and `first` the index from which the pixels equal
//                          to T rank among the kept (ties ranked by index, as a stable
//                          ascending sort ranks them); radix selects over the values' bits
//                          and then the ties' indices, one workgroup per copy
//   extremal_mask_gradient: grad_out[k, p] = 2 λ (m − target) / |Ω| + Σ_c g · (levels − 1) ·
//                          (b − a), target 1 above T or at T from index `first` on, else 0;
//                          a, b the pyramid's levels around m:
//                          ∂(λ‖sort(m) − r_a‖²/|Ω| − score)/∂m
//   smooth_masks_adjoint:  grad_out[k, g] = Σ pixel_grad[k, p] · bump(p − g) over the pixels
//                          p within reach of g that g won (a gather: no atomics)
// Both:
//   blur_axis:             one pass of a separable blur: out[out_offset + i] = Σ_t taps[t] ·
//                          images at position + t − radius along the axis (0: x, 1: y),
//                          borders replicated (the offset places a level in the pyramid)
//   clamp_to_unit:         values[i] = clamp(values[i], 0, 1) for i < batch, after each Adam
//                          step
//
// Layout: images, replacement, g [N or K, C, H, W]; mask [N, h, w] (meaningful) or [K, H, W]
// (extremal); pixel_grad [N or K, H, W]; grid [K, gh, gw]; winner [K, H, W] (u32); pyramid
// [levels, N, C, H, W]; bump [reach + 1]; threshold [K, 2] (T, and an index held as f32);
// kept [areas] (u32); taps [2 radius + 1]. All f32 where not said.
// Dispatch: one invocation per output element, WORKGROUP_SIZE per workgroup, folded into a
// 2-D grid past the per-dimension limit (common/grid.wgsl); area_threshold: one workgroup per
// copy.
// Bindings: 0 params (uniform), 1 images (read), 2 out (read_write), 3 mask (read),
// 4 replacement (read), 5 g (read), 6 pixel_grad (read), 7 grad_out (read_write), 8 grid
// (read), 9 winner_out (read_write), 10 winner (read), 11 bump (read), 12 pyramid (read),
// 13 threshold_out (read_write), 14 threshold (read), 15 kept (read), 16 values (read_write),
// 17 taps (read).
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust.

struct Params {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    mask_height: u32,
    mask_width: u32,
    shift_y: i32,
    shift_x: i32,
    areas: u32,
    levels: u32,
    step: u32,
    reach: u32,
    l1: f32,
    tv: f32,
    tv_beta: f32,
    area_weight: f32,
    noise_std: f32,
    seed_low: u32,
    seed_high: u32,
    sample: u32,
    axis: u32,
    radius: u32,
    out_offset: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> images: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read> replacement: array<f32>;
@group(0) @binding(5) var<storage, read> g: array<f32>;
@group(0) @binding(6) var<storage, read> pixel_grad: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad_out: array<f32>;
@group(0) @binding(8) var<storage, read> grid: array<f32>;
@group(0) @binding(9) var<storage, read_write> winner_out: array<u32>;
@group(0) @binding(10) var<storage, read> winner: array<u32>;
@group(0) @binding(11) var<storage, read> bump: array<f32>;
@group(0) @binding(12) var<storage, read> pyramid: array<f32>;
@group(0) @binding(13) var<storage, read_write> threshold_out: array<f32>;
@group(0) @binding(14) var<storage, read> threshold: array<f32>;
@group(0) @binding(15) var<storage, read> kept: array<u32>;
@group(0) @binding(16) var<storage, read_write> values: array<f32>;
@group(0) @binding(17) var<storage, read> taps: array<f32>;

// ---- meaningful perturbation ----

// The low-resolution mask of image n upsampled to the image and read at pixel (y, x).
fn upsampled_mask(n: u32, y: u32, x: u32) -> f32 {
    let sy = bilinear_source(y, params.mask_height, params.height);
    let sx = bilinear_source(x, params.mask_width, params.width);
    let base = n * params.mask_height * params.mask_width;
    let w = params.mask_width;
    let top = (1.0 - sx.weight) * mask[base + sy.low * w + sx.low]
        + sx.weight * mask[base + sy.low * w + sx.high];
    let bottom = (1.0 - sx.weight) * mask[base + sy.high * w + sx.low]
        + sx.weight * mask[base + sy.high * w + sx.high];
    return (1.0 - sy.weight) * top + sy.weight * bottom;
}

// clamp(o − shift) on an axis of `size`: where the jittered mask reads the upsampled one.
fn shifted_source(o: u32, shift: i32, size: u32) -> u32 {
    return u32(clamp(i32(o) - shift, 0, i32(size) - 1));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn blend_with_mask(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let plane = params.height * params.width;
    if i >= params.batch * params.channels * plane {
        return;
    }
    let n = i / (params.channels * plane);
    let y = (i % plane) / params.width;
    let x = i % params.width;
    let sy = shifted_source(y, params.shift_y, params.height);
    let sx = shifted_source(x, params.shift_x, params.width);
    let m = upsampled_mask(n, sy, sx);
    out[i] = images[i] * m + replacement[i] * (1.0 - m);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn replacement_noise(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i >= params.batch * params.channels * params.height * params.width {
        return;
    }
    let seed = vec2(params.seed_low, params.seed_high);
    out[i] = params.noise_std * standard_normal(seed, params.sample, i);
}

// The output positions o whose clamped shifted source is v, on an axis of `size`: v + shift,
// widened to the whole clamped run at either edge; empty (first > last) when none.
fn shift_preimage(v: u32, shift: i32, size: u32) -> vec2<i32> {
    let last_index = i32(size) - 1;
    var first = i32(v) + shift;
    var last = i32(v) + shift;
    if v == 0u {
        first = 0;
    }
    if i32(v) == last_index {
        last = last_index;
    }
    return vec2(max(first, 0), min(last, last_index));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn mask_pixel_gradient(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let plane = params.height * params.width;
    if i >= params.batch * plane {
        return;
    }
    let n = i / plane;
    let rows = shift_preimage((i % plane) / params.width, params.shift_y, params.height);
    let columns = shift_preimage(i % params.width, params.shift_x, params.width);
    var total = 0.0;
    for (var y = rows.x; y <= rows.y; y++) {
        for (var x = columns.x; x <= columns.y; x++) {
            let p = u32(y) * params.width + u32(x);
            var pixel = 0.0;
            for (var c = 0u; c < params.channels; c++) {
                let e = (n * params.channels + c) * plane + p;
                pixel += g[e] * (images[e] - replacement[e]);
            }
            total += pixel;
        }
    }
    grad_out[i] = total;
}

// The weight of mask cell `cell` in output position o's bilinear sample (both taps when they
// coincide at an edge).
fn tap_weight(o: u32, cell: u32, size_in: u32, size_out: u32) -> f32 {
    let s = bilinear_source(o, size_in, size_out);
    return select(0.0, 1.0 - s.weight, s.low == cell) + select(0.0, s.weight, s.high == cell);
}

// The output positions that may sample cell `cell` (a superset: tap_weight sorts them out).
fn tap_range(cell: u32, size_in: u32, size_out: u32) -> vec2<u32> {
    let scale = f32(size_out) / f32(size_in);
    let first = i32(floor((f32(cell) - 0.5) * scale - 0.5)) - 1;
    let last = i32(ceil((f32(cell) + 1.5) * scale)) + 1;
    return vec2(u32(max(first, 0)), u32(min(last, i32(size_out) - 1)));
}

fn tv_slope(difference: f32) -> f32 {
    let magnitude = select(0.0, pow(abs(difference), params.tv_beta - 1.0), difference != 0.0);
    return params.tv * params.tv_beta * magnitude * sign(difference);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn mask_gradient(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let h = params.mask_height;
    let w = params.mask_width;
    if i >= params.batch * h * w {
        return;
    }
    let n = i / (h * w);
    let j = (i % (h * w)) / w;
    let k = i % w;
    let rows = tap_range(j, h, params.height);
    let columns = tap_range(k, w, params.width);
    var total = 0.0;
    for (var y = rows.x; y <= rows.y; y++) {
        let wy = tap_weight(y, j, h, params.height);
        if wy == 0.0 {
            continue;
        }
        for (var x = columns.x; x <= columns.y; x++) {
            let wx = tap_weight(x, k, w, params.width);
            total += pixel_grad[(n * params.height + y) * params.width + x] * wy * wx;
        }
    }
    let m = mask[i];
    if m < 1.0 {
        total -= params.l1;
    }
    if k + 1u < w {
        total -= tv_slope(mask[i + 1u] - m);
    }
    if k > 0u {
        total += tv_slope(m - mask[i - 1u]);
    }
    if j + 1u < h {
        total -= tv_slope(mask[i + w] - m);
    }
    if j > 0u {
        total += tv_slope(m - mask[i - w]);
    }
    grad_out[i] = total;
}

// ---- extremal perturbation ----

// The grid points within reach of pixel o on an axis of `points` grid points `step` apart.
fn grid_range(o: u32, points: u32) -> vec2<u32> {
    let first = select(0u, (o - params.reach + params.step - 1u) / params.step, o > params.reach);
    return vec2(first, min((o + params.reach) / params.step, points - 1u));
}

fn gap(a: u32, b: u32) -> u32 {
    return max(a, b) - min(a, b);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn smooth_masks(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let plane = params.height * params.width;
    if i >= params.batch * plane {
        return;
    }
    let k = i / plane;
    let y = (i % plane) / params.width;
    let x = i % params.width;
    let rows = grid_range(y, params.mask_height);
    let columns = grid_range(x, params.mask_width);
    let base = k * params.mask_height * params.mask_width;
    var best = -3.0e38;
    var best_weight = 0.0;
    var best_point = 0u;
    for (var gy = rows.x; gy <= rows.y; gy++) {
        let ky = bump[gap(gy * params.step, y)];
        for (var gx = columns.x; gx <= columns.y; gx++) {
            let weight = ky * bump[gap(gx * params.step, x)];
            let point = gy * params.mask_width + gx;
            let value = weight * grid[base + point];
            if value > best || (value == best && weight > best_weight) {
                best = value;
                best_weight = weight;
                best_point = point;
            }
        }
    }
    out[i] = best;
    winner_out[i] = best_point;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn blend_pyramid(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let plane = params.height * params.width;
    let size = params.channels * plane;
    if i >= params.batch * size {
        return;
    }
    let level = pyramid_level(i / size, i % size, mask[(i / size) * plane + i % plane]);
    let a = pyramid[level.index];
    let b = pyramid[level.index + (params.batch / params.areas) * size];
    out[i] = a + level.fraction * (b - a);
}

// Where copy k's element e (of one image's C·H·W) lies in the blur pyramid at mask value m:
// the index of the level below (1 − m) · (levels − 1), and the fraction of the way to the next.
struct Level {
    index: u32,
    fraction: f32,
}

fn pyramid_level(k: u32, e: u32, m: f32) -> Level {
    let level = clamp(1.0 - m, 0.0, 1.0) * f32(params.levels - 1u);
    let low = min(u32(floor(level)), params.levels - 2u);
    let images = params.batch / params.areas;
    let size = params.channels * params.height * params.width;
    return Level((low * images + k / params.areas) * size + e, level - f32(low));
}

var<workgroup> histogram: array<atomic<u32>, 256>;
// The digit chosen by a pass and the rank still to find among the keys that share it.
var<workgroup> chosen: vec2<u32>;

// Mask values are ≥ 0, so their bits order as the values do (−0 counts as 0).
fn order_key(value: f32) -> u32 {
    return select(bitcast<u32>(value), 0u, value <= 0.0);
}

// The key of mask pixel p: its value's bits or, when `among_ties`, its index if its value's
// bits are `tied` (and none otherwise).
struct Candidate {
    key: u32,
    counts: bool,
}

fn candidate(base: u32, p: u32, among_ties: bool, tied: u32) -> Candidate {
    let value_key = order_key(mask[base + p]);
    if among_ties {
        return Candidate(p, value_key == tied);
    }
    return Candidate(value_key, true);
}

// A radix select over one mask of the workgroup (called by every invocation): the key of the
// rank-th largest candidate (rank ≥ 1) and how many candidates with that key rank at or above
// it. 8 bits a pass from the top: each pass counts the candidates that share the bits chosen
// so far by their next digit, then takes the digit that holds the rank-th largest.
fn select_largest(lid: u32, base: u32, rank_in: u32, among_ties: bool, tied: u32) -> vec2<u32> {
    let plane = params.height * params.width;
    var prefix = 0u;
    var rank = rank_in;
    // The bits fixed by the rounds so far (none in the first).
    var chosen_bits = 0u;
    for (var round = 0u; round < 4u; round++) {
        let shift = 24u - 8u * round;
        for (var b = lid; b < 256u; b += WORKGROUP_SIZE) {
            atomicStore(&histogram[b], 0u);
        }
        workgroupBarrier();
        for (var p = lid; p < plane; p += WORKGROUP_SIZE) {
            let c = candidate(base, p, among_ties, tied);
            if c.counts && (c.key & chosen_bits) == prefix {
                atomicAdd(&histogram[(c.key >> shift) & 255u], 1u);
            }
        }
        workgroupBarrier();
        if lid == 0u {
            var above = 0u;
            var digit = 255u;
            for (; digit > 0u; digit--) {
                let here = atomicLoad(&histogram[digit]);
                if above + here >= rank {
                    break;
                }
                above += here;
            }
            chosen = vec2(digit, rank - above);
        }
        let picked = workgroupUniformLoad(&chosen);
        prefix |= picked.x << shift;
        rank = picked.y;
        chosen_bits |= 0xFFu << shift;
    }
    return vec2(prefix, rank);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn area_threshold(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let k = workgroup_index(at);
    if k >= params.batch {
        return;
    }
    let base = k * params.height * params.width;
    let count = kept[k % params.areas];
    if count == 0u {
        // Nothing is kept: every target is 0.
        if lid == 0u {
            threshold_out[2u * k] = 3.0e38;
            threshold_out[2u * k + 1u] = 0.0;
        }
        return;
    }
    // T, and how many of the values equal to T rank among the kept; of those ties, the kept
    // are the last in index order (the order of a stable ascending sort), from `first` on.
    let value = select_largest(lid, base, count, false, 0u);
    let first = select_largest(lid, base, value.y, true, value.x).x;
    if lid == 0u {
        threshold_out[2u * k] = bitcast<f32>(value.x);
        threshold_out[2u * k + 1u] = f32(first);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn extremal_mask_gradient(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let plane = params.height * params.width;
    if i >= params.batch * plane {
        return;
    }
    let k = i / plane;
    let p = i % plane;
    let m = mask[i];
    let t = threshold[2u * k];
    let kept_tie = m == t && f32(p) >= threshold[2u * k + 1u];
    let target_value = select(0.0, 1.0, m > t || kept_tie);
    var total = 2.0 * params.area_weight * (m - target_value) / f32(plane);
    let top = f32(params.levels - 1u);
    let next_level = (params.batch / params.areas) * params.channels * plane;
    for (var c = 0u; c < params.channels; c++) {
        let lower = pyramid_level(k, c * plane + p, m).index;
        let a = pyramid[lower];
        let b = pyramid[lower + next_level];
        total += g[(k * params.channels + c) * plane + p] * (top * (b - a));
    }
    grad_out[i] = total;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn smooth_masks_adjoint(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let points = params.mask_height * params.mask_width;
    if i >= params.batch * points {
        return;
    }
    let k = i / points;
    let point = i % points;
    let gy = (point / params.mask_width) * params.step;
    let gx = (point % params.mask_width) * params.step;
    let first_y = select(0u, gy - params.reach, gy > params.reach);
    let first_x = select(0u, gx - params.reach, gx > params.reach);
    let last_y = min(gy + params.reach, params.height - 1u);
    let last_x = min(gx + params.reach, params.width - 1u);
    var total = 0.0;
    for (var y = first_y; y <= last_y; y++) {
        let ky = bump[gap(gy, y)];
        for (var x = first_x; x <= last_x; x++) {
            let p = (k * params.height + y) * params.width + x;
            if winner[p] == point {
                total += pixel_grad[p] * (ky * bump[gap(gx, x)]);
            }
        }
    }
    grad_out[i] = total;
}

// ---- both ----

@compute @workgroup_size(WORKGROUP_SIZE)
fn blur_axis(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let plane = params.height * params.width;
    if i >= params.batch * plane {
        return;
    }
    let along_y = params.axis == 1u;
    let stride = select(1u, params.width, along_y);
    let size = select(params.width, params.height, along_y);
    let position = (i / stride) % size;
    let line_start = i - position * stride;
    var total = 0.0;
    for (var t = 0u; t <= 2u * params.radius; t++) {
        let source = clamp(i32(position + t) - i32(params.radius), 0, i32(size) - 1);
        total += taps[t] * images[line_start + u32(source) * stride];
    }
    out[params.out_offset + i] = total;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn clamp_to_unit(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i >= params.batch {
        return;
    }
    values[i] = clamp(values[i], 0.0, 1.0);
}
