// pool.wgsl — 2-D max, average and adaptive average pooling over NCHW planes, with backward.
//
//   max_pool2d:             out = max over the window (padding never wins; NaN propagates)
//   max_pool2d_backward:    grad_in[i] += grad_out of one class of windows whose maximum is i
//   avg_pool2d:             out = sum over the window / divisor (PyTorch's count_include_pad rule)
//   avg_pool2d_backward:    grad_in[i] = sum over windows containing i of grad_out / divisor
//   adaptive_avg_pool2d:    window rows floor(o·in/out) .. ceil((o+1)·in/out), likewise columns
//   adaptive_avg_pool2d_backward
//
// Ties in max pooling go to the first maximum in row-major window order and a NaN wins, as in
// PyTorch's `val > max || isnan(val)`. The backward finds each window's maximum again (the
// forward stores no indices), once per window, then gathers: no atomics (WGSL has no float
// atomics), deterministic.
//
// Layout: x, grad_in [planes, in_h, in_w]; out, grad_out [planes, out_h, out_w]; planes = N·C.
// Dispatch: one invocation per output element (forward) or per input element (backward),
// WORKGROUP_SIZE per workgroup, folded into a 2-D grid (linear id = wid.y · nx + wid.x); the
// max-pooling backward's two passes and the average-pooling backward over 8×8 grids of
// positions per plane, as their comments say.
// Bindings: 0 params (uniform); forward: 1 x (read), 3 out (read_write);
//   max_pool2d_with_argmax: 1 x (read), 3 out and 4 argmax_out (read_write, u32);
//   backward: 2 grad_out (read), 3 grad_in (read_write), max pooling's 5 argmax (read, u32).
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust; POOL_STRIDE_H, _W.

struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    count_include_pad: u32,
    // max_pool2d_backward's class of windows: outputs (class_h + a·class_step_h,
    // class_w + b·class_step_w), with class_step = ceil(kernel / stride) so that no two of them
    // overlap.
    class_h: u32,
    class_w: u32,
    class_step_h: u32,
    class_step_w: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> grad_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@group(0) @binding(4) var<storage, read_write> argmax_out: array<u32>;
@group(0) @binding(5) var<storage, read> argmax: array<u32>;

// The backward passes' strides (max and average pooling) as pipeline constants: their
// divisions by them compile to multiplies and shifts (lavapipe runs a vector division by a
// variable as eight scalar ones).
override POOL_STRIDE_H: u32 = 1u;
override POOL_STRIDE_W: u32 = 1u;

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// The flat index (within its plane) of the maximum of window (oh, ow); windows always hold at
// least one input element (the output size guarantees it).
fn window_argmax(plane_base: u32, oh: u32, ow: u32) -> u32 {
    let h0 = i32(oh * params.stride_h) - i32(params.pad_h);
    let w0 = i32(ow * params.stride_w) - i32(params.pad_w);
    let h_start = u32(max(h0, 0));
    let w_start = u32(max(w0, 0));
    let h_end = u32(min(h0 + i32(params.kernel_h), i32(params.in_h)));
    let w_end = u32(min(w0 + i32(params.kernel_w), i32(params.in_w)));
    var best_index = h_start * params.in_w + w_start;
    var best = x[plane_base + best_index];
    for (var h = h_start; h < h_end; h++) {
        for (var w = w_start; w < w_end; w++) {
            let index = h * params.in_w + w;
            let v = x[plane_base + index];
            if v > best || (is_nan(v) && !is_nan(best)) {
                best = v;
                best_index = index;
            }
        }
    }
    return best_index;
}

// PyTorch's avg_pool2d divisor for window (oh, ow), and its clipped bounds.
struct AvgWindow {
    h_start: u32,
    h_end: u32,
    w_start: u32,
    w_end: u32,
    divisor: f32,
}

fn avg_window(oh: u32, ow: u32) -> AvgWindow {
    let h0 = i32(oh * params.stride_h) - i32(params.pad_h);
    let w0 = i32(ow * params.stride_w) - i32(params.pad_w);
    // The window clipped to the padded input counts for count_include_pad ...
    let h_end_padded = min(h0 + i32(params.kernel_h), i32(params.in_h + params.pad_h));
    let w_end_padded = min(w0 + i32(params.kernel_w), i32(params.in_w + params.pad_w));
    let padded_size = (h_end_padded - h0) * (w_end_padded - w0);
    // ... the window clipped to the input itself for the sum (and otherwise for the divisor).
    var window: AvgWindow;
    window.h_start = u32(max(h0, 0));
    window.w_start = u32(max(w0, 0));
    window.h_end = u32(min(h_end_padded, i32(params.in_h)));
    window.w_end = u32(min(w_end_padded, i32(params.in_w)));
    if params.count_include_pad != 0u {
        window.divisor = f32(padded_size);
    } else {
        window.divisor = f32((window.h_end - window.h_start) * (window.w_end - window.w_start));
    }
    return window;
}

// Adaptive pooling's window along one axis: [floor(o·in/out), ceil((o+1)·in/out)).
fn adaptive_range(o: u32, in_size: u32, out_size: u32) -> vec2<u32> {
    return vec2<u32>((o * in_size) / out_size, ((o + 1u) * in_size + out_size - 1u) / out_size);
}

// Output rows (or columns) whose windows can contain input index i: o·stride - pad <= i and
// i < o·stride - pad + kernel, clamped to the output.
fn covering_outputs(i: u32, kernel: u32, stride: u32, pad: u32, out_size: u32) -> vec2<u32> {
    let shifted = i32(i + pad);
    let first = max((shifted - i32(kernel) + i32(stride)) / i32(stride), 0);
    let last = min(shifted / i32(stride), i32(out_size) - 1);
    return vec2<u32>(u32(first), u32(max(last + 1, first)));
}

// (plane, row, column) of input element i.
fn input_position(i: u32) -> vec3<u32> {
    let per_plane = params.in_h * params.in_w;
    return vec3<u32>(i / per_plane, (i % per_plane) / params.in_w, i % params.in_w);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn max_pool2d(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let o = invocation_index(at, lid);
    let per_plane = params.out_h * params.out_w;
    if o >= params.planes * per_plane {
        return;
    }
    let plane_base = (o / per_plane) * params.in_h * params.in_w;
    let oh = (o % per_plane) / params.out_w;
    let ow = o % params.out_w;
    out[o] = x[plane_base + window_argmax(plane_base, oh, ow)];
}

// The max-pooling backward over 8×8 grids of positions per plane (workgroups (ceil(W / 8),
// ceil(H / 8), planes), each invocation looping over the planes from wid.z in steps of
// num_workgroups.z, so no division finds a coordinate): max_pool2d_with_argmax pools and
// records every window's maximum (its flat index in the plane) — with the forward, when a
// backward will follow — then max_pool2d_backward adds each window's gradient to its maximum,
// one class of non-overlapping windows per dispatch (ceil(k/s)² of them, on a zeroed grad_in),
// so that no two invocations of a dispatch add to one input. An invocation per output and
// two loads, where gathering per input read every covering window's maximum and gradient.
@compute @workgroup_size(8, 8)
fn max_pool2d_with_argmax(@builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) groups: vec3<u32>,
                          @builtin(local_invocation_id) lid: vec3<u32>) {
    let ow = wid.x * 8u + lid.x;
    let oh = wid.y * 8u + lid.y;
    if ow >= params.out_w || oh >= params.out_h {
        return;
    }
    let in_plane = params.in_h * params.in_w;
    let out_plane = params.out_h * params.out_w;
    for (var plane = wid.z; plane < params.planes; plane += groups.z) {
        let o = plane * out_plane + oh * params.out_w + ow;
        let index = window_argmax(plane * in_plane, oh, ow);
        argmax_out[o] = index;
        out[o] = x[plane * in_plane + index];
    }
}

@compute @workgroup_size(8, 8)
fn max_pool2d_backward(@builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) groups: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let ow = (wid.x * 8u + lid.x) * params.class_step_w + params.class_w;
    let oh = (wid.y * 8u + lid.y) * params.class_step_h + params.class_h;
    if ow >= params.out_w || oh >= params.out_h {
        return;
    }
    let in_plane = params.in_h * params.in_w;
    let out_plane = params.out_h * params.out_w;
    for (var plane = wid.z; plane < params.planes; plane += groups.z) {
        let o = plane * out_plane + oh * params.out_w + ow;
        let i = plane * in_plane + argmax[o];
        out[i] += grad_out[o];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn avg_pool2d(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let o = invocation_index(at, lid);
    let per_plane = params.out_h * params.out_w;
    if o >= params.planes * per_plane {
        return;
    }
    let plane_base = (o / per_plane) * params.in_h * params.in_w;
    let window = avg_window((o % per_plane) / params.out_w, o % params.out_w);
    var sum = 0.0;
    for (var h = window.h_start; h < window.h_end; h++) {
        for (var w = window.w_start; w < window.w_end; w++) {
            sum += x[plane_base + h * params.in_w + w];
        }
    }
    out[o] = sum / window.divisor;
}

// As max_pool2d_backward's: one invocation per input position of a plane, looping over the
// planes, so that no division finds an element's plane and position.
@compute @workgroup_size(8, 8)
fn avg_pool2d_backward(@builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) groups: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let iw = wid.x * 8u + lid.x;
    let ih = wid.y * 8u + lid.y;
    if iw >= params.in_w || ih >= params.in_h {
        return;
    }
    let rows = covering_outputs(ih, params.kernel_h, POOL_STRIDE_H, params.pad_h, params.out_h);
    let cols = covering_outputs(iw, params.kernel_w, POOL_STRIDE_W, params.pad_w, params.out_w);
    let in_plane = params.in_h * params.in_w;
    let out_plane = params.out_h * params.out_w;
    for (var plane = wid.z; plane < params.planes; plane += groups.z) {
        var sum = 0.0;
        for (var oh = rows.x; oh < rows.y; oh++) {
            for (var ow = cols.x; ow < cols.y; ow++) {
                let window = avg_window(oh, ow);
                if ih >= window.h_start && ih < window.h_end && iw >= window.w_start && iw < window.w_end {
                    sum += grad_out[plane * out_plane + oh * params.out_w + ow] / window.divisor;
                }
            }
        }
        out[plane * in_plane + ih * params.in_w + iw] = sum;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn adaptive_avg_pool2d(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let o = invocation_index(at, lid);
    let per_plane = params.out_h * params.out_w;
    if o >= params.planes * per_plane {
        return;
    }
    let plane_base = (o / per_plane) * params.in_h * params.in_w;
    let rows = adaptive_range((o % per_plane) / params.out_w, params.in_h, params.out_h);
    let cols = adaptive_range(o % params.out_w, params.in_w, params.out_w);
    var sum = 0.0;
    for (var h = rows.x; h < rows.y; h++) {
        for (var w = cols.x; w < cols.y; w++) {
            sum += x[plane_base + h * params.in_w + w];
        }
    }
    out[o] = sum / f32((rows.y - rows.x) * (cols.y - cols.x));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn adaptive_avg_pool2d_backward(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let per_plane = params.in_h * params.in_w;
    if i >= params.planes * per_plane {
        return;
    }
    let position = input_position(i);
    let plane = position.x;
    let ih = position.y;
    let iw = position.z;
    // Windows containing ih: o from floor(ih·out/in) to ceil((ih+1)·out/in) - 1.
    let oh_first = (ih * params.out_h) / params.in_h;
    let oh_end = min(((ih + 1u) * params.out_h + params.in_h - 1u) / params.in_h, params.out_h);
    let ow_first = (iw * params.out_w) / params.in_w;
    let ow_end = min(((iw + 1u) * params.out_w + params.in_w - 1u) / params.in_w, params.out_w);
    let out_base = plane * params.out_h * params.out_w;
    var sum = 0.0;
    for (var oh = oh_first; oh < oh_end; oh++) {
        let rows = adaptive_range(oh, params.in_h, params.out_h);
        for (var ow = ow_first; ow < ow_end; ow++) {
            let cols = adaptive_range(ow, params.in_w, params.out_w);
            if ih >= rows.x && ih < rows.y && iw >= cols.x && iw < cols.y {
                let count = f32((rows.y - rows.x) * (cols.y - cols.x));
                sum += grad_out[out_base + oh * params.out_w + ow] / count;
            }
        }
    }
    out[i] = sum;
}
