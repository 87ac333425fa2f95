// conv2d.wgsl — 2-D convolution (NCHW, PyTorch's cross-correlation) and its backward passes,
// direct versions: the simplest correct kernels, kept as the reference variant that faster ones
// (implicit GEMM) are checked and benchmarked against.
//
//   conv2d_direct:                 out[n, co, oh, ow] = bias[co] + sum over ci (in co's group),
//                                  kh, kw of x[n, ci, oh·sh - ph + kh·dh, ow·sw - pw + kw·dw]
//                                  · weight[co, ci mod group, kh, kw]   (zero padding)
//   conv2d_backward_input_direct:  grad_x[n, ci, ih, iw] = sum of grad_out · weight over the
//                                  (co, kh, kw) whose window reads (ih, iw): a gather, no atomics
//   conv2d_backward_weight_direct: grad_w[co, ci, kh, kw] = sum over n, oh, ow of
//                                  grad_out[n, co, oh, ow] · x[n, ci', ih, iw]
//   (the bias gradient is reduce.wgsl's sum of grad_out over N, H, W)
//   im2col:                        cols[n, k, p] = the input value tap k = (ci, kh, kw) reads
//                                  for output position p = (oh, ow), 0 in the padding; the
//                                  GEMM path multiplies weight [C_out, K] by cols[n] [K, OH·OW]
//   im2row:                        rows[n, p, k]: im2col's values, transposed per sample; the
//                                  weight gradient is grad_out as [C_out, N·OH·OW] times rows
//                                  as [N·OH·OW, K], one GEMM over every sample
//   col2im:                        grad_x[n, ci, ih, iw] = sum of grad_cols[n, k, p] over the
//                                  taps k = (ci, kh, kw) and positions p that read (ih, iw): the
//                                  backward of im2col, after grad_cols = weightᵀ · grad_out[n]
//
// Layout: x [N, C_in, H, W]; weight [C_out, C_in/groups, KH, KW]; bias [C_out];
// out and grad_out [N, C_out, OH, OW].
// Layout of cols: [N, T, S] and of rows [N, S, T] (groups = 1), where the position stride
// S = params.position_stride ≥ OH·OW and the tap stride T = params.tap_stride ≥ C_in·KH·KW: the
// GEMM path rounds both up to multiples of 4 so that its vec4 matmul applies to any output
// size (ResNet's 7×7 planes) and any tap count (a stem's 3·7·7 = 147); positions and taps
// beyond the real ones are written as zeros (im2col, im2row). col2im reads grad_cols
// [N, C_in·KH·KW, S]: padded positions, never read, but no padded taps.
// Dispatch: one invocation per element of the tensor each entry writes, WORKGROUP_SIZE per
// workgroup, folded into a 2-D grid (linear id = wid.y · nx + wid.x); col2im, im2col and
// im2row as they say.
// Bindings: 0 params; 1 x, 2 weight, 3 bias, 4 grad_out (read; col2im reads grad_cols there);
// 5 out (read_write); im2col and im2row write through 6 out4, a vec4 view, instead.
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust; COL2IM_* — col2im's
// stride, dilation and tap steps.

// Params and bindings 0-5: common/conv.wgsl, appended with common/grid.wgsl.

// The input coordinate a kernel tap reads, or -1 when it falls in the padding.
fn input_coordinate(o: u32, k: u32, stride: u32, pad: u32, dilation: u32, size: u32) -> i32 {
    let i = i32(o * stride + k * dilation) - i32(pad);
    return select(-1, i, i >= 0 && i < i32(size));
}

// The output coordinate whose kernel tap k reads input coordinate i (o·stride - pad + k·dilation
// = i), or -1 when no output position does.
fn output_coordinate(i: u32, k: u32, stride: u32, pad: u32, dilation: u32, size: u32) -> i32 {
    let shifted = i32(i + pad) - i32(k * dilation);
    if shifted < 0 || shifted % i32(stride) != 0 {
        return -1;
    }
    let o = shifted / i32(stride);
    return select(-1, o, o < i32(size));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn conv2d_direct(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let index = invocation_index(at, lid);
    let out_plane = params.out_h * params.out_w;
    if index >= params.batch * params.out_channels * out_plane {
        return;
    }
    let ow = index % params.out_w;
    let oh = (index / params.out_w) % params.out_h;
    let co = (index / out_plane) % params.out_channels;
    let n = index / (out_plane * params.out_channels);
    let group_in = params.in_channels / params.groups;
    let group = co / (params.out_channels / params.groups);
    var sum = 0.0;
    for (var ci = 0u; ci < group_in; ci++) {
        let x_plane = ((n * params.in_channels + group * group_in + ci) * params.in_h) * params.in_w;
        let w_base = ((co * group_in + ci) * params.kernel_h) * params.kernel_w;
        for (var kh = 0u; kh < params.kernel_h; kh++) {
            let ih = input_coordinate(oh, kh, params.stride_h, params.pad_h, params.dilation_h, params.in_h);
            if ih < 0 {
                continue;
            }
            for (var kw = 0u; kw < params.kernel_w; kw++) {
                let iw = input_coordinate(ow, kw, params.stride_w, params.pad_w, params.dilation_w, params.in_w);
                if iw < 0 {
                    continue;
                }
                sum += x[x_plane + u32(ih) * params.in_w + u32(iw)] * weight[w_base + kh * params.kernel_w + kw];
            }
        }
    }
    if params.has_bias != 0u {
        sum += bias[co];
    }
    out[index] = sum;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn conv2d_backward_input_direct(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let index = invocation_index(at, lid);
    let in_plane = params.in_h * params.in_w;
    if index >= params.batch * params.in_channels * in_plane {
        return;
    }
    let iw = index % params.in_w;
    let ih = (index / params.in_w) % params.in_h;
    let ci_all = (index / in_plane) % params.in_channels;
    let n = index / (in_plane * params.in_channels);
    let group_in = params.in_channels / params.groups;
    let group_out = params.out_channels / params.groups;
    let group = ci_all / group_in;
    let ci = ci_all % group_in;
    var sum = 0.0;
    for (var kh = 0u; kh < params.kernel_h; kh++) {
        let oh_at = output_coordinate(ih, kh, params.stride_h, params.pad_h, params.dilation_h, params.out_h);
        if oh_at < 0 {
            continue;
        }
        let oh = u32(oh_at);
        for (var kw = 0u; kw < params.kernel_w; kw++) {
            let ow_at = output_coordinate(iw, kw, params.stride_w, params.pad_w, params.dilation_w, params.out_w);
            if ow_at < 0 {
                continue;
            }
            let ow = u32(ow_at);
            for (var j = 0u; j < group_out; j++) {
                let co = group * group_out + j;
                let g = grad_out[((n * params.out_channels + co) * params.out_h + oh) * params.out_w + ow];
                sum += g * weight[((co * group_in + ci) * params.kernel_h + kh) * params.kernel_w + kw];
            }
        }
    }
    out[index] = sum;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn conv2d_backward_weight_direct(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let index = invocation_index(at, lid);
    let group_in = params.in_channels / params.groups;
    let taps = params.kernel_h * params.kernel_w;
    if index >= params.out_channels * group_in * taps {
        return;
    }
    let kw = index % params.kernel_w;
    let kh = (index / params.kernel_w) % params.kernel_h;
    let ci = (index / taps) % group_in;
    let co = index / (taps * group_in);
    let group = co / (params.out_channels / params.groups);
    let ci_all = group * group_in + ci;
    var sum = 0.0;
    for (var n = 0u; n < params.batch; n++) {
        let x_plane = ((n * params.in_channels + ci_all) * params.in_h) * params.in_w;
        let g_plane = ((n * params.out_channels + co) * params.out_h) * params.out_w;
        for (var oh = 0u; oh < params.out_h; oh++) {
            let ih = input_coordinate(oh, kh, params.stride_h, params.pad_h, params.dilation_h, params.in_h);
            if ih < 0 {
                continue;
            }
            for (var ow = 0u; ow < params.out_w; ow++) {
                let iw = input_coordinate(ow, kw, params.stride_w, params.pad_w, params.dilation_w, params.in_w);
                if iw < 0 {
                    continue;
                }
                sum += grad_out[g_plane + oh * params.out_w + ow] * x[x_plane + u32(ih) * params.in_w + u32(iw)];
            }
        }
    }
    out[index] = sum;
}

// The input value that tap (ci, kh, kw) reads for output position (oh, ow), 0 in the padding.
fn tap_value(n: u32, ci: u32, kh: u32, kw: u32, oh: u32, ow: u32) -> f32 {
    let ih = input_coordinate(oh, kh, params.stride_h, params.pad_h, params.dilation_h, params.in_h);
    let iw = input_coordinate(ow, kw, params.stride_w, params.pad_w, params.dilation_w, params.in_w);
    if ih < 0 || iw < 0 {
        return 0.0;
    }
    return x[((n * params.in_channels + ci) * params.in_h + u32(ih)) * params.in_w + u32(iw)];
}

@group(0) @binding(6) var<storage, read_write> out4: array<vec4<f32>>;

// im2col's own dispatch: workgroups (ceil(S / (4·WORKGROUP_SIZE)), row groups); each invocation
// owns four consecutive positions p0 .. p0 + 3 and writes them, as one vec4, into the rows
// r = n·T + k from wid.y in steps of num_workgroups.y. The positions' (oh, ow) are decoded once
// per invocation, the row's (n, ci, kh, kw) once per row from workgroup-uniform values: no
// per-value integer division (lavapipe runs a vector division as eight scalar ones). Positions
// p ≥ OH·OW and taps k ≥ C_in·KH·KW (the padding up to the strides) are zeros; the position
// stride must be a multiple of 4.
@compute @workgroup_size(WORKGROUP_SIZE)
fn im2col(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let p0 = 4u * (at.wid.x * WORKGROUP_SIZE + lid);
    if p0 >= params.position_stride {
        return;
    }
    let positions = params.out_h * params.out_w;
    var oh: array<u32, 4>;
    var ow: array<u32, 4>;
    oh[0] = p0 / params.out_w;
    ow[0] = p0 - oh[0] * params.out_w;
    for (var j = 1u; j < 4u; j++) {
        let wraps = ow[j - 1u] + 1u == params.out_w;
        oh[j] = select(oh[j - 1u], oh[j - 1u] + 1u, wraps);
        ow[j] = select(ow[j - 1u] + 1u, 0u, wraps);
    }
    let taps = params.kernel_h * params.kernel_w;
    let k_count = params.in_channels * taps;
    for (var r = at.wid.y; r < params.batch * params.tap_stride; r += at.groups.y) {
        let n = r / params.tap_stride;
        let k = r - n * params.tap_stride;
        var values = vec4<f32>(0.0);
        if k < k_count {
            let ci = k / taps;
            let kh = (k - ci * taps) / params.kernel_w;
            let kw = k - ci * taps - kh * params.kernel_w;
            for (var j = 0u; j < 4u; j++) {
                if p0 + j < positions {
                    values[j] = tap_value(n, ci, kh, kw, oh[j], ow[j]);
                }
            }
        }
        out4[(r * params.position_stride + p0) / 4u] = values;
    }
}

// im2row's own dispatch: workgroups (ceil(T / (4·WORKGROUP_SIZE)), row groups); each invocation
// owns four consecutive taps k0 .. k0 + 3 and writes them, as one vec4, into the rows
// r = n·S + p from wid.y in steps of num_workgroups.y. The taps' (ci, kh, kw) are decoded once
// per invocation, the row's (n, oh, ow) once per row from workgroup-uniform values: no
// per-value integer division (lavapipe runs a vector division as eight scalar ones). Rows
// p ≥ OH·OW and taps k ≥ C_in·KH·KW (the padding up to the strides) are zeros; the tap stride
// must be a multiple of 4.
@compute @workgroup_size(WORKGROUP_SIZE)
fn im2row(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let k0 = 4u * (at.wid.x * WORKGROUP_SIZE + lid);
    if k0 >= params.tap_stride {
        return;
    }
    let taps = params.kernel_h * params.kernel_w;
    let k_count = params.in_channels * taps;
    var ci: array<u32, 4>;
    var kh: array<u32, 4>;
    var kw: array<u32, 4>;
    for (var j = 0u; j < 4u; j++) {
        let k = k0 + j;
        ci[j] = k / taps;
        kh[j] = (k % taps) / params.kernel_w;
        kw[j] = k % params.kernel_w;
    }
    let positions = params.out_h * params.out_w;
    let stride = params.position_stride;
    for (var r = at.wid.y; r < params.batch * stride; r += at.groups.y) {
        let n = r / stride;
        let p = r - n * stride;
        var values = vec4<f32>(0.0);
        if p < positions {
            let oh = p / params.out_w;
            let ow = p - oh * params.out_w;
            for (var j = 0u; j < 4u; j++) {
                if k0 + j < k_count {
                    values[j] = tap_value(n, ci[j], kh[j], kw[j], oh, ow);
                }
            }
        }
        out4[(r * params.tap_stride + k0) / 4u] = values;
    }
}

// col2im's stride and dilation as pipeline constants, so that its divisions by them compile to
// multiplies and shifts (lavapipe runs a vector division by a variable as eight scalar ones),
// and its tap step along each axis: stride / gcd(stride, dilation).
override COL2IM_STRIDE_H: u32 = 1u;
override COL2IM_STRIDE_W: u32 = 1u;
override COL2IM_DILATION_H: u32 = 1u;
override COL2IM_DILATION_W: u32 = 1u;
override COL2IM_TAP_STEP_H: u32 = 1u;
override COL2IM_TAP_STEP_W: u32 = 1u;

// The first kernel tap along one axis whose window position is whole for input coordinate i
// ((i + pad - k·dilation) a multiple of the stride); the next ones follow every `step` taps, so
// a stride-2 convolution's col2im visits a quarter of the taps, not all of them to skip three
// in four. `step` when no tap is whole.
fn first_whole_tap(i: u32, pad: u32, stride: u32, dilation: u32, step: u32) -> u32 {
    var k = 0u;
    while k < step && (i32(i + pad) - i32(k * dilation)) % i32(stride) != 0 {
        k++;
    }
    return k;
}

// col2im's own dispatch: 8×8 invocations over (iw, ih) per workgroup, workgroups
// (ceil(W / 8), ceil(H / 8), planes), each invocation looping over the planes n·C_in + ci
// from wid.z in steps of num_workgroups.z — no division finds a coordinate.
@compute @workgroup_size(8, 8)
fn col2im(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let iw = wid.x * 8u + lid.x;
    let ih = wid.y * 8u + lid.y;
    if iw >= params.in_w || ih >= params.in_h {
        return;
    }
    let taps = params.kernel_h * params.kernel_w;
    let planes = params.batch * params.in_channels;
    let kh_first = first_whole_tap(ih, params.pad_h, COL2IM_STRIDE_H, COL2IM_DILATION_H,
                                   COL2IM_TAP_STEP_H);
    let kw_first = first_whole_tap(iw, params.pad_w, COL2IM_STRIDE_W, COL2IM_DILATION_W,
                                   COL2IM_TAP_STEP_W);
    for (var plane = wid.z; plane < planes; plane += groups.z) {
        // Sample n's grad_cols rows for channel ci start at (n·C_in + ci)·taps.
        let cols_base = plane * taps * params.position_stride;
        var sum = 0.0;
        for (var kh = kh_first; kh < params.kernel_h; kh += COL2IM_TAP_STEP_H) {
            let oh_at = output_coordinate(ih, kh, COL2IM_STRIDE_H, params.pad_h, COL2IM_DILATION_H,
                                          params.out_h);
            if oh_at < 0 {
                continue;
            }
            let oh = u32(oh_at);
            for (var kw = kw_first; kw < params.kernel_w; kw += COL2IM_TAP_STEP_W) {
                let ow_at = output_coordinate(iw, kw, COL2IM_STRIDE_W, params.pad_w,
                                              COL2IM_DILATION_W, params.out_w);
                if ow_at < 0 {
                    continue;
                }
                let k = kh * params.kernel_w + kw;
                sum += grad_out[cols_base + k * params.position_stride + oh * params.out_w + u32(ow_at)];
            }
        }
        out[(plane * params.in_h + ih) * params.in_w + iw] = sum;
    }
}
