// score_cam.wgsl — the inputs of Score-CAM (Wang et al. 2020): copies of one image, each
// multiplied by one channel of a layer's activations upsampled to the image and scaled to
// [0, 1], a batch of channels per forward pass.
//
// The upsampling is bilinear with align_corners = true, as torch.nn.UpsamplingBilinear2d (what
// pytorch-grad-cam's ScoreCAM uses): output index o samples input position o·(in − 1)/(out − 1)
// (0 where out = 1), in f32 as torch computes it. Each upsampled map u is scaled to
// (u − min u) / (max u − min u + 1e-8), min and max over the upsampled map, not the activations
// (they differ: the upsampling's samples need not land on the activations' grid).
//
//   upsampled_range: range[2k], range[2k + 1] = min, max of map k's upsampling, for the maps
//                    [first_map, first_map + count) of image params.image
//   masked_copies:   out[b, c, y, x] = x[image, c, y, x] · scaled map (first_map + b) at (y, x)
//
// Layout: x [N, C, H, W]; activations [N, K, h, w]; range [2 · count] (map k's pair at 2k, k
// counted from first_map); out [count, C, H, W]. All NCHW, f32.
// Dispatch: upsampled_range one workgroup per map (WORKGROUP_SIZE invocations stride over the
// H·W output pixels, then a tree reduction); masked_copies one invocation per element of out.
// Both folded into 2-D grids past the per-dimension limit (common/grid.wgsl).
// Bindings: 0 params (uniform), 1 x (read), 2 activations (read), 3 range (read_write in
// upsampled_range, read in masked_copies through binding 4), 5 out (read_write).
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust (a power of two for the
// tree in upsampled_range).

struct Params {
    channels: u32,
    height: u32,
    width: u32,
    image: u32,
    maps: u32,
    map_height: u32,
    map_width: u32,
    first_map: u32,
    count: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> activations: array<f32>;
@group(0) @binding(3) var<storage, read_write> range_out: array<f32>;
@group(0) @binding(4) var<storage, read> range_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> lowest: array<f32, WORKGROUP_SIZE>;
var<workgroup> highest: array<f32, WORKGROUP_SIZE>;

// The input position output index o samples on an axis of `size_in` inputs upsampled to
// `size_out`: the lower input index, whether a next one exists, and the next one's weight.
struct Sample {
    index: u32,
    step: u32,
    weight: f32,
}

fn align_corners_sample(o: u32, size_in: u32, size_out: u32) -> Sample {
    var scale = 0.0;
    if size_out > 1u {
        scale = f32(size_in - 1u) / f32(size_out - 1u);
    }
    let source = scale * f32(o);
    let index = min(u32(source), size_in - 1u);
    return Sample(index, select(0u, 1u, index + 1u < size_in), source - f32(index));
}

// Map `map` of image params.image, upsampled, at output pixel (row, column).
fn upsampled(map: u32, row: u32, column: u32) -> f32 {
    let sy = align_corners_sample(row, params.map_height, params.height);
    let sx = align_corners_sample(column, params.map_width, params.width);
    let base = (params.image * params.maps + map) * params.map_height * params.map_width;
    let top = base + sy.index * params.map_width + sx.index;
    let bottom = top + sy.step * params.map_width;
    let upper = (1.0 - sx.weight) * activations[top] + sx.weight * activations[top + sx.step];
    let lower = (1.0 - sx.weight) * activations[bottom] + sx.weight * activations[bottom + sx.step];
    return (1.0 - sy.weight) * upper + sy.weight * lower;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn upsampled_range(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let k = workgroup_index(at);
    if k >= params.count {
        return;
    }
    let plane = params.height * params.width;
    var low = 3.4028235e38;
    var high = -3.4028235e38;
    for (var p = lid; p < plane; p += WORKGROUP_SIZE) {
        let value = upsampled(params.first_map + k, p / params.width, p % params.width);
        low = min(low, value);
        high = max(high, value);
    }
    lowest[lid] = low;
    highest[lid] = high;
    workgroupBarrier();
    for (var half = WORKGROUP_SIZE / 2u; half > 0u; half /= 2u) {
        if lid < half {
            lowest[lid] = min(lowest[lid], lowest[lid + half]);
            highest[lid] = max(highest[lid], highest[lid + half]);
        }
        workgroupBarrier();
    }
    if lid == 0u {
        range_out[2u * k] = lowest[0];
        range_out[2u * k + 1u] = highest[0];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn masked_copies(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let plane = params.height * params.width;
    let per_image = params.channels * plane;
    if i >= params.count * per_image {
        return;
    }
    let copy = i / per_image;
    let within = i % per_image;
    let position = within % plane;
    let value = upsampled(params.first_map + copy, position / params.width, position % params.width);
    let low = range_in[2u * copy];
    let high = range_in[2u * copy + 1u];
    out[i] = x[params.image * per_image + within] * ((value - low) / (high - low + 1e-8));
}
