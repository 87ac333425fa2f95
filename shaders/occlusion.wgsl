// occlusion.wgsl — copies of one image, each with one square window set to a baseline value:
// the inputs of occlusion saliency (Zeiler & Fergus 2014), a batch of windows per forward pass.
//
// Windows slide over the image every params.stride pixels from the top left, in rows of
// params.windows_per_row; window w covers rows [y0, y0 + window_size), columns [x0, x0 + window_size),
// y0 = (w / windows_per_row) · stride, x0 = (w % windows_per_row) · stride, cut off at the
// image's edges, across every channel (Captum's Occlusion with a (C, patch, patch) window).
//
// Layout: x [N, C, H, W] (NCHW, f32); out [count, C, H, W]: copy b occludes window
// params.first_window + b of image params.image.
// Dispatch: one invocation per element of out, WORKGROUP_SIZE invocations per workgroup, folded
// into a 2-D grid past the per-dimension limit (common/grid.wgsl).
// Bindings: 0 params (uniform), 1 x (read), 2 out (read_write).
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust.

struct Params {
    channels: u32,
    height: u32,
    width: u32,
    image: u32,
    window_size: u32,
    stride: u32,
    windows_per_row: u32,
    first_window: u32,
    count: u32,
    baseline: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn occlude(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let plane = params.height * params.width;
    let per_image = params.channels * plane;
    if i >= params.count * per_image {
        return;
    }
    let copy = i / per_image;
    let within = i % per_image;
    let position = within % plane;
    let row = position / params.width;
    let column = position % params.width;
    let window = params.first_window + copy;
    let y0 = (window / params.windows_per_row) * params.stride;
    let x0 = (window % params.windows_per_row) * params.stride;
    let inside = row >= y0 && row < y0 + params.window_size && column >= x0 && column < x0 + params.window_size;
    out[i] = select(x[params.image * per_image + within], params.baseline, inside);
}
