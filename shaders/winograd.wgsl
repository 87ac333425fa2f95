// winograd.wgsl — Winograd F(2×2, 3×3) and F(4×4, 3×3) convolution (Lavin & Gray 2016) for 3×3
// kernels at stride 1, as three passes around one batched GEMM (F(2×2) below; F(4×4)'s `_f4`
// passes, in their own section at the end, are the same with 6×6 transformed tiles):
//
//   weight_transform:  U[ξ, k, c] = (G g Gᵀ)[ξ] for g = weight[k, c] (3×3), or with `flip`
//                      for g = weight[c, k] rotated 180° (the backward to the input, itself a
//                      3×3 stride-1 convolution of the output gradient).
//   input_transform:   V[ξ, c, p] = (Bᵀ d B)[ξ] for d the 4×4 input patch of tile p (zero
//                      outside the image); p < tile_stride, columns past the last tile zeroed.
//   (matmul:           M[ξ] = U[ξ] · V[ξ], [K, C] · [C, tile_stride], 16 batched products.)
//   output_transform:  y[n, first + k, 2ty + i, 2tx + j] = (Aᵀ M[·, k, p] A)[i, j] (+ bias[k]),
//                      y having out_total channels (a slice of a concatenation when first > 0
//                      or out_total > K); or, with `affine`, relu?(value · bias[k] +
//                      bias[K + k] + residual?) — an eval-mode BatchNorm folded, the residual
//                      add and the ReLU that would follow as a pass (`finished`).
//
// and the weight gradient, the same passes transposed around dU[ξ] = dM[ξ] · V[ξ]ᵀ:
//
//   output_gradient_transform: dM[ξ, k, p] = (A dy Aᵀ)[ξ] for dy the 2×2 output-gradient tile
//                      of tile p (zero outside the output); columns past the last tile zeroed.
//   (matmul:           dU[ξ] = dM[ξ] · V[ξ]ᵀ, [K, tile_stride] · [tile_stride, C]: the sum over
//                      every tile of every sample.)
//   weight_gradient_transform: grad_weight[k, c] = Gᵀ dU[·, k, c] G (3×3).
//
// ξ = 4·row + column of the 4×4 transformed tile; tile p = (n·tiles_h + ty)·tiles_w + tx covers
// output rows 2ty, 2ty + 1 and columns 2tx, 2tx + 1; its input patch starts at (2ty − padding_h,
// 2tx − padding_w).
//
// Dispatch: one invocation per (k, c), (c, p) or (k, p) respectively (the weight gradient's
// passes per (k, p) and (k, c); the `_f4` passes likewise), WORKGROUP_SIZE per workgroup,
// folded into a 2-D grid (linear id = wid.y · nx + wid.x).
// Bindings: 0 params (uniform), 1 source (read), 2 out (read_write), 3 bias (read; the output
// transforms' bias, or with `affine` their scales and shifts [2, K]), 4 residual (read; the
// output transforms' with add_residual, out's shape).
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust.

struct Params {
    batch: u32,
    // The transformed convolution's input channels (C) and outputs (K).
    channels: u32,
    out_channels: u32,
    height: u32,
    width: u32,
    out_height: u32,
    out_width: u32,
    padding_h: u32,
    padding_w: u32,
    tiles_h: u32,
    tiles_w: u32,
    // Columns of V and M: the tile count rounded up to a multiple of 4.
    tile_stride: u32,
    has_bias: u32,
    flip: u32,
    out_first: u32,
    out_total: u32,
    // The output transforms' epilogue (`finished`).
    affine: u32,
    add_residual: u32,
    relu: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> source: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;


// The output transforms' (scale, shift) of channel k, loaded once per invocation: the bias
// (scale 1), or the epilogue's affine.
fn channel_affine(k: u32) -> vec2<f32> {
    if params.affine == 0u {
        return vec2<f32>(1.0, select(0.0, bias[k], params.has_bias != 0u));
    }
    return vec2<f32>(bias[k], bias[params.out_channels + k]);
}

// The output transforms' value for out[at]: the channel's (scale, shift) `affine` applied,
// then the residual and the ReLU when asked for.
fn finished(value: f32, affine: vec2<f32>, at: u32) -> f32 {
    var y = value * affine.x + affine.y;
    if params.add_residual != 0u {
        y += residual[at];
    }
    if params.relu != 0u {
        y = max(y, 0.0);
    }
    return y;
}

fn tile_count() -> u32 {
    return params.batch * params.tiles_h * params.tiles_w;
}

// Tile p's column and row of tiles, and its sample.
struct Tile {
    x: u32,
    y: u32,
    n: u32,
}

fn tile_at(p: u32) -> Tile {
    return Tile(p % params.tiles_w, (p / params.tiles_w) % params.tiles_h,
                p / (params.tiles_w * params.tiles_h));
}

// The input transforms' value at (y, x) of the plane at `base`: 0 outside the image, and in
// a column past the last tile (`real` false). The load is clamped into the plane and its value
// dropped rather than skipped: a branch around each load cost llvmpipe's compile far more.
fn patch_value(base: u32, y: i32, x: i32, real: bool) -> f32 {
    let inside = real && y >= 0 && y < i32(params.height) && x >= 0 && x < i32(params.width);
    let row = u32(clamp(y, 0, i32(params.height) - 1));
    let column = u32(clamp(x, 0, i32(params.width) - 1));
    return select(0.0, source[base + row * params.width + column], inside);
}

// The weight transforms' index of tap (r, s) of filter (k, c): weight[k, c, r, s], or with
// `flip` weight[c, k] rotated 180°. One load either way: a branch between two loads per tap
// cost llvmpipe's compile twice the loads.
fn filter_tap(k: u32, c: u32, r: u32, s: u32) -> u32 {
    let direct = ((k * params.channels + c) * 3u + r) * 3u + s;
    let flipped = ((c * params.out_channels + k) * 3u + 2u - r) * 3u + 2u - s;
    return select(direct, flipped, params.flip != 0u);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn weight_transform(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let kc = params.out_channels * params.channels;
    if i >= kc {
        return;
    }
    let k = i / params.channels;
    let c = i % params.channels;
    var g: array<array<f32, 3>, 3>;
    for (var r = 0u; r < 3u; r++) {
        for (var s = 0u; s < 3u; s++) {
            g[r][s] = source[filter_tap(k, c, r, s)];
        }
    }
    // t = G g (4×3), G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]].
    var t: array<array<f32, 3>, 4>;
    for (var s = 0u; s < 3u; s++) {
        t[0][s] = g[0][s];
        t[1][s] = 0.5 * (g[0][s] + g[1][s] + g[2][s]);
        t[2][s] = 0.5 * (g[0][s] - g[1][s] + g[2][s]);
        t[3][s] = g[2][s];
    }
    // u = t Gᵀ (4×4).
    for (var r = 0u; r < 4u; r++) {
        var row = array<f32, 4>(t[r][0], 0.5 * (t[r][0] + t[r][1] + t[r][2]),
                                0.5 * (t[r][0] - t[r][1] + t[r][2]), t[r][2]);
        for (var s = 0u; s < 4u; s++) {
            out[((r * 4u + s) * params.out_channels + k) * params.channels + c] = row[s];
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn input_transform(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let stride = params.tile_stride;
    if i >= params.channels * stride {
        return;
    }
    let c = i / stride;
    let p = i % stride;
    let plane = stride * params.channels;
    let tiles = tile_count();
    // Columns past the last tile are zeroed: their patch reads as zeros.
    let real = p < tiles;
    let tile = tile_at(min(p, tiles - 1u));
    let base = (tile.n * params.channels + c) * params.height * params.width;
    let top = i32(2u * tile.y) - i32(params.padding_h);
    let left = i32(2u * tile.x) - i32(params.padding_w);
    var d: array<array<f32, 4>, 4>;
    for (var r = 0; r < 4; r++) {
        for (var s = 0; s < 4; s++) {
            d[r][s] = patch_value(base, top + r, left + s, real);
        }
    }
    // t = Bᵀ d, Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]].
    var t: array<array<f32, 4>, 4>;
    for (var s = 0; s < 4; s++) {
        t[0][s] = d[0][s] - d[2][s];
        t[1][s] = d[1][s] + d[2][s];
        t[2][s] = d[2][s] - d[1][s];
        t[3][s] = d[1][s] - d[3][s];
    }
    // v = t B.
    for (var r = 0u; r < 4u; r++) {
        var row = array<f32, 4>(t[r][0] - t[r][2], t[r][1] + t[r][2], t[r][2] - t[r][1],
                                t[r][1] - t[r][3]);
        for (var s = 0u; s < 4u; s++) {
            out[(r * 4u + s) * plane + c * stride + p] = row[s];
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn output_transform(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let tiles = tile_count();
    if i >= params.out_channels * tiles {
        return;
    }
    let k = i / tiles;
    let p = i % tiles;
    let stride = params.tile_stride;
    let plane = params.out_channels * stride;
    var m: array<array<f32, 4>, 4>;
    for (var r = 0u; r < 4u; r++) {
        for (var s = 0u; s < 4u; s++) {
            m[r][s] = source[(r * 4u + s) * plane + k * stride + p];
        }
    }
    // t = Aᵀ m (2×4), Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]; y = t A (2×2).
    var t: array<array<f32, 4>, 2>;
    for (var s = 0u; s < 4u; s++) {
        t[0][s] = m[0][s] + m[1][s] + m[2][s];
        t[1][s] = m[1][s] - m[2][s] - m[3][s];
    }
    let tile = tile_at(p);
    let plane_size = params.out_height * params.out_width;
    let base = (tile.n * params.out_total + params.out_first + k) * plane_size;
    let affine = channel_affine(k);
    for (var r = 0u; r < 2u; r++) {
        let y = 2u * tile.y + r;
        if y >= params.out_height {
            break;
        }
        var row = array<f32, 2>(t[r][0] + t[r][1] + t[r][2], t[r][1] - t[r][2] - t[r][3]);
        for (var s = 0u; s < 2u; s++) {
            let x = 2u * tile.x + s;
            if x < params.out_width {
                let at = base + y * params.out_width + x;
                out[at] = finished(row[s], affine, at);
            }
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn output_gradient_transform(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let stride = params.tile_stride;
    if i >= params.out_channels * stride {
        return;
    }
    let k = i / stride;
    let p = i % stride;
    let plane = params.out_channels * stride;
    var dy: array<array<f32, 2>, 2>;
    if p < tile_count() {
        let tile = tile_at(p);
        let base = (tile.n * params.out_channels + k) * params.out_height * params.out_width;
        for (var r = 0u; r < 2u; r++) {
            for (var s = 0u; s < 2u; s++) {
                let y = 2u * tile.y + r;
                let x = 2u * tile.x + s;
                if y < params.out_height && x < params.out_width {
                    dy[r][s] = source[base + y * params.out_width + x];
                }
            }
        }
    }
    // t = A dy (4×2), A = [[1, 0], [1, 1], [1, −1], [0, −1]] (the output transform's Aᵀ
    // transposed); dM = t Aᵀ (4×4).
    var t: array<array<f32, 2>, 4>;
    for (var s = 0u; s < 2u; s++) {
        t[0][s] = dy[0][s];
        t[1][s] = dy[0][s] + dy[1][s];
        t[2][s] = dy[0][s] - dy[1][s];
        t[3][s] = -dy[1][s];
    }
    for (var r = 0u; r < 4u; r++) {
        let row = array<f32, 4>(t[r][0], t[r][0] + t[r][1], t[r][0] - t[r][1], -t[r][1]);
        for (var s = 0u; s < 4u; s++) {
            out[(r * 4u + s) * plane + k * stride + p] = row[s];
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn weight_gradient_transform(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let kc = params.out_channels * params.channels;
    if i >= kc {
        return;
    }
    var u: array<array<f32, 4>, 4>;
    for (var r = 0u; r < 4u; r++) {
        for (var s = 0u; s < 4u; s++) {
            u[r][s] = source[(r * 4u + s) * kc + i];
        }
    }
    // t = Gᵀ u (3×4), G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]; grad = t G (3×3).
    var t: array<array<f32, 4>, 3>;
    for (var s = 0u; s < 4u; s++) {
        t[0][s] = u[0][s] + 0.5 * (u[1][s] + u[2][s]);
        t[1][s] = 0.5 * (u[1][s] - u[2][s]);
        t[2][s] = 0.5 * (u[1][s] + u[2][s]) + u[3][s];
    }
    // i = k·C + c, so the 3×3 of (k, c) starts at 9·i in weight [K, C, 3, 3].
    for (var a = 0u; a < 3u; a++) {
        out[9u * i + 3u * a] = t[a][0] + 0.5 * (t[a][1] + t[a][2]);
        out[9u * i + 3u * a + 1u] = 0.5 * (t[a][1] - t[a][2]);
        out[9u * i + 3u * a + 2u] = 0.5 * (t[a][1] + t[a][2]) + t[a][3];
    }
}

// ---- F(4×4, 3×3): 4×4 output tiles from 6×6 input patches ----
// The same three forward passes with 6×6 transformed tiles (ξ = 6·row + column, 36 batched
// products): 36 multiplies per 16 outputs against F(2×2)'s 16 per 4 (1.78× fewer; 4× fewer
// than the direct convolution's 9 per output), and transformed tensors of 2.25 values per
// output against 4. Tile p covers output rows 4ty ..
// 4ty + 3 (columns likewise); its input patch starts at (4ty − padding_h, 4tx − padding_w).
// Points 0, ±1, ±2 and ∞ (Lavin & Gray), each transform applied to columns, then to rows.

// G (6×3) times a 3-vector: G = [[¼, 0, 0], [−⅙, −⅙, −⅙], [−⅙, ⅙, −⅙], [1/24, 1/12, ⅙],
// [1/24, −1/12, ⅙], [0, 0, 1]].
fn filter_points(a: f32, b: f32, c: f32) -> array<f32, 6> {
    let even = a / 24.0 + c / 6.0;
    return array<f32, 6>(a / 4.0, -(a + b + c) / 6.0, -(a - b + c) / 6.0, even + b / 12.0,
                         even - b / 12.0, c);
}

// Bᵀ (6×6) times a 6-vector: Bᵀ = [[4, 0, −5, 0, 1, 0], [0, −4, −4, 1, 1, 0],
// [0, 4, −4, −1, 1, 0], [0, −2, −1, 2, 1, 0], [0, 2, −1, −2, 1, 0], [0, 4, 0, −5, 0, 1]].
fn patch_points(d: array<f32, 6>) -> array<f32, 6> {
    return array<f32, 6>(4.0 * d[0] - 5.0 * d[2] + d[4],
                         d[3] + d[4] - 4.0 * (d[1] + d[2]),
                         d[4] - d[3] + 4.0 * (d[1] - d[2]),
                         d[4] - d[2] + 2.0 * (d[3] - d[1]),
                         d[4] - d[2] + 2.0 * (d[1] - d[3]),
                         4.0 * d[1] - 5.0 * d[3] + d[5]);
}

// Aᵀ (4×6) times a 6-vector: Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, −1, 2, −2, 0],
// [0, 1, 1, 4, 4, 0], [0, 1, −1, 8, −8, 1]].
fn output_points(m: array<f32, 6>) -> array<f32, 4> {
    let sum12 = m[1] + m[2];
    let difference12 = m[1] - m[2];
    let sum34 = m[3] + m[4];
    let difference34 = m[3] - m[4];
    return array<f32, 4>(m[0] + sum12 + sum34, difference12 + 2.0 * difference34,
                         sum12 + 4.0 * sum34, difference12 + 8.0 * difference34 + m[5]);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn weight_transform_f4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let kc = params.out_channels * params.channels;
    if i >= kc {
        return;
    }
    let k = i / params.channels;
    let c = i % params.channels;
    var g: array<array<f32, 3>, 3>;
    for (var r = 0u; r < 3u; r++) {
        for (var s = 0u; s < 3u; s++) {
            g[r][s] = source[filter_tap(k, c, r, s)];
        }
    }
    // t = G g (6×3), column by column; u = t Gᵀ (6×6), row by row.
    var t: array<array<f32, 3>, 6>;
    for (var s = 0u; s < 3u; s++) {
        let column = filter_points(g[0][s], g[1][s], g[2][s]);
        for (var r = 0u; r < 6u; r++) {
            t[r][s] = column[r];
        }
    }
    for (var r = 0u; r < 6u; r++) {
        let row = filter_points(t[r][0], t[r][1], t[r][2]);
        for (var s = 0u; s < 6u; s++) {
            out[((r * 6u + s) * params.out_channels + k) * params.channels + c] = row[s];
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn input_transform_f4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let stride = params.tile_stride;
    if i >= params.channels * stride {
        return;
    }
    let c = i / stride;
    let p = i % stride;
    let plane = stride * params.channels;
    let tiles = tile_count();
    // Columns past the last tile are zeroed: their patch reads as zeros.
    let real = p < tiles;
    let tile = tile_at(min(p, tiles - 1u));
    let base = (tile.n * params.channels + c) * params.height * params.width;
    let top = i32(4u * tile.y) - i32(params.padding_h);
    let left = i32(4u * tile.x) - i32(params.padding_w);
    // t = Bᵀ d (6×6), column by column of the patch d (zero outside the image); v = t B, row
    // by row.
    var t: array<array<f32, 6>, 6>;
    for (var s = 0; s < 6; s++) {
        let x = left + s;
        var column: array<f32, 6>;
        for (var r = 0; r < 6; r++) {
            column[r] = patch_value(base, top + r, x, real);
        }
        let transformed = patch_points(column);
        for (var r = 0; r < 6; r++) {
            t[r][s] = transformed[r];
        }
    }
    for (var r = 0u; r < 6u; r++) {
        let row = patch_points(t[r]);
        for (var s = 0u; s < 6u; s++) {
            out[(r * 6u + s) * plane + c * stride + p] = row[s];
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn output_transform_f4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let tiles = tile_count();
    if i >= params.out_channels * tiles {
        return;
    }
    let k = i / tiles;
    let p = i % tiles;
    let stride = params.tile_stride;
    let plane = params.out_channels * stride;
    // t = Aᵀ m (4×6), column by column of the product tile m; y = t A (4×4), row by row.
    var t: array<array<f32, 6>, 4>;
    for (var s = 0u; s < 6u; s++) {
        var column: array<f32, 6>;
        for (var r = 0u; r < 6u; r++) {
            column[r] = source[(r * 6u + s) * plane + k * stride + p];
        }
        let transformed = output_points(column);
        for (var r = 0u; r < 4u; r++) {
            t[r][s] = transformed[r];
        }
    }
    let tile = tile_at(p);
    let plane_size = params.out_height * params.out_width;
    let base = (tile.n * params.out_total + params.out_first + k) * plane_size;
    let affine = channel_affine(k);
    for (var r = 0u; r < 4u; r++) {
        let y = 4u * tile.y + r;
        if y >= params.out_height {
            break;
        }
        let row = output_points(t[r]);
        for (var s = 0u; s < 4u; s++) {
            let x = 4u * tile.x + s;
            if x < params.out_width {
                let at = base + y * params.out_width + x;
                out[at] = finished(row[s], affine, at);
            }
        }
    }
}

// A (6×4) times a 4-vector: the output transform's Aᵀ transposed, taking an output-gradient
// tile's rows (or columns) back to the 6 points.
fn output_gradient_points(y: array<f32, 4>) -> array<f32, 6> {
    let even = y[0] + 4.0 * y[2];
    let odd = y[1] + 4.0 * y[3];
    return array<f32, 6>(y[0], y[0] + y[1] + y[2] + y[3], y[0] - y[1] + y[2] - y[3],
                         even + 2.0 * odd, even - 2.0 * odd, y[3]);
}

// Gᵀ (3×6) times a 6-vector: the filter transform taken back to the 3 taps.
fn filter_gradient_taps(u: array<f32, 6>) -> array<f32, 3> {
    let sum12 = u[1] + u[2];
    let sum34 = u[3] + u[4];
    let difference34 = u[3] - u[4];
    return array<f32, 3>(u[0] / 4.0 - sum12 / 6.0 + sum34 / 24.0,
                         (u[2] - u[1]) / 6.0 + difference34 / 12.0,
                         (sum34 - sum12) / 6.0 + u[5]);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn output_gradient_transform_f4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let stride = params.tile_stride;
    if i >= params.out_channels * stride {
        return;
    }
    let k = i / stride;
    let p = i % stride;
    let plane = params.out_channels * stride;
    var dy: array<array<f32, 4>, 4>;
    if p < tile_count() {
        let tile = tile_at(p);
        let base = (tile.n * params.out_channels + k) * params.out_height * params.out_width;
        for (var r = 0u; r < 4u; r++) {
            for (var s = 0u; s < 4u; s++) {
                let y = 4u * tile.y + r;
                let x = 4u * tile.x + s;
                if y < params.out_height && x < params.out_width {
                    dy[r][s] = source[base + y * params.out_width + x];
                }
            }
        }
    }
    // t = A dy (6×4), column by column; dM = t Aᵀ (6×6), row by row.
    var t: array<array<f32, 4>, 6>;
    for (var s = 0u; s < 4u; s++) {
        let column = output_gradient_points(array<f32, 4>(dy[0][s], dy[1][s], dy[2][s], dy[3][s]));
        for (var r = 0u; r < 6u; r++) {
            t[r][s] = column[r];
        }
    }
    for (var r = 0u; r < 6u; r++) {
        let row = output_gradient_points(t[r]);
        for (var s = 0u; s < 6u; s++) {
            out[(r * 6u + s) * plane + k * stride + p] = row[s];
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn weight_gradient_transform_f4(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let kc = params.out_channels * params.channels;
    if i >= kc {
        return;
    }
    // t = Gᵀ u (3×6), column by column; grad = t G (3×3), row by row.
    var t: array<array<f32, 6>, 3>;
    for (var s = 0u; s < 6u; s++) {
        var column: array<f32, 6>;
        for (var r = 0u; r < 6u; r++) {
            column[r] = source[(r * 6u + s) * kc + i];
        }
        let taps = filter_gradient_taps(column);
        for (var a = 0u; a < 3u; a++) {
            t[a][s] = taps[a];
        }
    }
    // i = k·C + c, so the 3×3 of (k, c) starts at 9·i in weight [K, C, 3, 3].
    for (var a = 0u; a < 3u; a++) {
        let row = filter_gradient_taps(t[a]);
        for (var b = 0u; b < 3u; b++) {
            out[9u * i + 3u * a + b] = row[b];
        }
    }
}
