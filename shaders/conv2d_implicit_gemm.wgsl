// conv2d_implicit_gemm.wgsl — 2-D convolution and its backward passes as GEMMs whose operands
// are gathered from the tensors on the fly: no im2col buffer, so memory stays at the size of the
// tensors themselves whatever the input size, and groups are handled per workgroup.
//
//   conv2d_implicit:                 the GEMM out[n] (C_out × OH·OW) = weight (C_out × K) ·
//                                    cols[n] (K × OH·OW), K = C_in/groups · KH · KW, reading
//                                    cols[n][k, p] straight from x (0 in the padding). Writes
//                                    into channels out_first .. of an output with
//                                    out_total channels, so a producer can fill its slice of a
//                                    channel concatenation directly.
//   conv2d_backward_input_implicit:  grad_x[n, ci, i] = sum over co (in ci's group), kh, kw of
//                                    weight[co, ci, kh, kw] · grad_out[n, co, o] for the output
//                                    position o whose tap (kh, kw) reads i: the transposed
//                                    convolution, as a gather (no atomics).
//   conv2d_backward_weight_implicit: grad_w[co, k] = sum over (n, p) of grad_out[n, co, p] ·
//                                    cols[n][k, p]; the (n, p) range is split into chunks, one
//                                    per workgroup z, each writing partial[z, co, k]; the launcher
//                                    sums the partials (a split reduction: the sum is long — 12544
//                                    terms for ResNet's stem — and the weight gradient small).
//
// Register tiling: each invocation owns a CHANNEL_TILE × 4 tile of its GEMM's result —
// CHANNEL_TILE channels (output channels; input channels for backward input) by 4 pixels (or 4
// taps k for backward weight), accumulated as CHANNEL_TILE vec4s. Channels vary only with the
// workgroup (wid.y), so their weight / grad_out loads have the same address in every lane: a
// single load on SIMD adapters such as lavapipe, where a load whose address differs across
// lanes runs as a scalar loop. The 4 gathered operand values are shared by the whole column.
//
// Layout: x [N, C_in, H, W]; weight [C_out, C_in/groups, KH, KW]; bias [C_out];
//   grad_out [N, C_out, OH, OW]; out [N, out_total, OH, OW] for conv2d_implicit, grad_x
//   [N, C_in, H, W], partial [chunks, C_out, C_in/groups · KH · KW].
// Dispatch (WORKGROUP_SIZE invocations per workgroup):
//   conv2d_implicit / backward_input: the x dimension (folded into z above the per-dimension
//     limit: linear = wid.z · nx + wid.x) runs over N · ceil(plane / 4) pixel quads of the
//     tensor written; y over groups · ceil(channels per group / CHANNEL_TILE) channel blocks.
//   backward_weight: x over ceil(K / 4) tap quads, y as above (output channels), z over chunks.
// Bindings: 0 params (uniform); 1 x, 2 weight, 3 bias, 4 grad_out (read); 5 out (read_write).
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust; CHANNEL_TILE (1 to 8) —
//   channels per invocation: more reuse of each gathered value, more registers.

// Params and bindings 0-5: common/conv.wgsl, appended with common/grid.wgsl.

override CHANNEL_TILE: u32 = 8u;
const MAX_CHANNEL_TILE: u32 = 8u;

// The channel block a workgroup owns: its group, its first channel (absolute) and the end of
// the group's channels. `per_group` is the count of the channels being tiled, per group.
struct ChannelBlock {
    group: u32,
    first: u32,
    end: u32,
}

fn channel_block(block: u32, per_group: u32) -> ChannelBlock {
    let blocks_per_group = (per_group + CHANNEL_TILE - 1u) / CHANNEL_TILE;
    let group = block / blocks_per_group;
    let first = group * per_group + (block % blocks_per_group) * CHANNEL_TILE;
    return ChannelBlock(group, first, (group + 1u) * per_group);
}

// Reads four values at `index` where `ok`, else 0 (the load itself goes to element 0).
fn gather_x(index: vec4<i32>, ok: vec4<bool>) -> vec4<f32> {
    let at = select(vec4<i32>(0), index, ok);
    let v = vec4<f32>(x[at.x], x[at.y], x[at.z], x[at.w]);
    return select(vec4<f32>(0.0), v, ok);
}

fn gather_grad_out(index: vec4<i32>, ok: vec4<bool>) -> vec4<f32> {
    let at = select(vec4<i32>(0), index, ok);
    let v = vec4<f32>(grad_out[at.x], grad_out[at.y], grad_out[at.z], grad_out[at.w]);
    return select(vec4<f32>(0.0), v, ok);
}

fn pixel_quad_id(wid: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    return (wid.z * groups.x + wid.x) * WORKGROUP_SIZE + lid;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn conv2d_implicit(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let out_plane = params.out_h * params.out_w;
    let quads = (out_plane + 3u) / 4u;
    let quad = pixel_quad_id(at.wid, at.groups, lid);
    if quad >= params.batch * quads {
        return;
    }
    let n = quad / quads;
    let p = (quad % quads) * 4u + vec4<u32>(0u, 1u, 2u, 3u);
    let pixel_ok = p < vec4<u32>(out_plane);
    let origin_h = vec4<i32>((p / params.out_w) * params.stride_h) - i32(params.pad_h);
    let origin_w = vec4<i32>((p % params.out_w) * params.stride_w) - i32(params.pad_w);

    let per_group_out = params.out_channels / params.groups;
    let per_group_in = params.in_channels / params.groups;
    let block = channel_block(at.wid.y, per_group_out);
    let taps = params.kernel_h * params.kernel_w;
    let k_total = per_group_in * taps;
    let in_plane = params.in_h * params.in_w;

    var acc: array<vec4<f32>, MAX_CHANNEL_TILE>;
    for (var ci = 0u; ci < per_group_in; ci++) {
        let plane = i32(((n * params.in_channels) + block.group * per_group_in + ci) * in_plane);
        for (var kh = 0u; kh < params.kernel_h; kh++) {
            let ih = origin_h + i32(kh * params.dilation_h);
            let row_ok = pixel_ok & (ih >= vec4<i32>(0)) & (ih < vec4<i32>(i32(params.in_h)));
            let row = plane + ih * i32(params.in_w);
            for (var kw = 0u; kw < params.kernel_w; kw++) {
                let iw = origin_w + i32(kw * params.dilation_w);
                let ok = row_ok & (iw >= vec4<i32>(0)) & (iw < vec4<i32>(i32(params.in_w)));
                let v = gather_x(row + iw, ok);
                let k = (ci * params.kernel_h + kh) * params.kernel_w + kw;
                for (var c = 0u; c < CHANNEL_TILE; c++) {
                    let co = min(block.first + c, block.end - 1u);
                    acc[c] += weight[co * k_total + k] * v;
                }
            }
        }
    }
    for (var c = 0u; c < CHANNEL_TILE; c++) {
        let co = block.first + c;
        if co >= block.end {
            break;
        }
        var result = acc[c];
        if params.has_bias != 0u {
            result += bias[co];
        }
        let base = (n * params.out_total + params.out_first + co) * out_plane;
        for (var j = 0u; j < 4u; j++) {
            if pixel_ok[j] {
                out[base + p[j]] = result[j];
            }
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn conv2d_backward_input_implicit(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let in_plane = params.in_h * params.in_w;
    let quads = (in_plane + 3u) / 4u;
    let quad = pixel_quad_id(at.wid, at.groups, lid);
    if quad >= params.batch * quads {
        return;
    }
    let n = quad / quads;
    let p = (quad % quads) * 4u + vec4<u32>(0u, 1u, 2u, 3u);
    let pixel_ok = p < vec4<u32>(in_plane);
    // (ih + pad) and (iw + pad): an output o reads it through tap k when o·stride = that − k·dil.
    let shifted_h = vec4<i32>(p / params.in_w + params.pad_h);
    let shifted_w = vec4<i32>(p % params.in_w + params.pad_w);

    let per_group_out = params.out_channels / params.groups;
    let per_group_in = params.in_channels / params.groups;
    let block = channel_block(at.wid.y, per_group_in);
    let taps = params.kernel_h * params.kernel_w;
    let out_plane = params.out_h * params.out_w;
    let stride_h = vec4<i32>(i32(params.stride_h));
    let stride_w = vec4<i32>(i32(params.stride_w));

    var acc: array<vec4<f32>, MAX_CHANNEL_TILE>;
    for (var kh = 0u; kh < params.kernel_h; kh++) {
        let th = shifted_h - i32(kh * params.dilation_h);
        let oh = th / stride_h;
        let row_ok = pixel_ok & (th >= vec4<i32>(0)) & (th % stride_h == vec4<i32>(0)) &
                     (oh < vec4<i32>(i32(params.out_h)));
        for (var kw = 0u; kw < params.kernel_w; kw++) {
            let tw = shifted_w - i32(kw * params.dilation_w);
            let ow = tw / stride_w;
            let ok = row_ok & (tw >= vec4<i32>(0)) & (tw % stride_w == vec4<i32>(0)) &
                     (ow < vec4<i32>(i32(params.out_w)));
            let position = oh * i32(params.out_w) + ow;
            let tap = kh * params.kernel_w + kw;
            for (var j = 0u; j < per_group_out; j++) {
                let co = block.group * per_group_out + j;
                let g = gather_grad_out(i32((n * params.out_channels + co) * out_plane) + position, ok);
                let w_row = co * per_group_in * taps + tap;
                for (var c = 0u; c < CHANNEL_TILE; c++) {
                    let ci = min(block.first + c, block.end - 1u) - block.group * per_group_in;
                    acc[c] += weight[w_row + ci * taps] * g;
                }
            }
        }
    }
    for (var c = 0u; c < CHANNEL_TILE; c++) {
        let ci = block.first + c;
        if ci >= block.end {
            break;
        }
        let base = (n * params.in_channels + ci) * in_plane;
        for (var j = 0u; j < 4u; j++) {
            if pixel_ok[j] {
                out[base + p[j]] = acc[c][j];
            }
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn conv2d_backward_weight_implicit(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let per_group_out = params.out_channels / params.groups;
    let per_group_in = params.in_channels / params.groups;
    let taps = params.kernel_h * params.kernel_w;
    let k_total = per_group_in * taps;
    let k = (at.wid.x * WORKGROUP_SIZE + lid) * 4u + vec4<u32>(0u, 1u, 2u, 3u);
    if k.x >= k_total {
        return;
    }
    let k_ok = k < vec4<u32>(k_total);
    let kc = min(k, vec4<u32>(k_total - 1u));
    let block = channel_block(at.wid.y, per_group_out);
    // Each tap k = (ci, kh, kw) reads input channel plane ci at offset (kh·dil, kw·dil).
    let ci = kc / taps;
    let offset_h = vec4<i32>(((kc % taps) / params.kernel_w) * params.dilation_h) - i32(params.pad_h);
    let offset_w = vec4<i32>((kc % params.kernel_w) * params.dilation_w) - i32(params.pad_w);
    let in_plane = params.in_h * params.in_w;
    let out_plane = params.out_h * params.out_w;
    let total = params.batch * out_plane;
    let start = at.wid.z * params.chunk;
    let end = min(start + params.chunk, total);

    var acc: array<vec4<f32>, MAX_CHANNEL_TILE>;
    for (var i = start; i < end; i++) {
        let n = i / out_plane;
        let position = i % out_plane;
        let ih = i32((position / params.out_w) * params.stride_h) + offset_h;
        let iw = i32((position % params.out_w) * params.stride_w) + offset_w;
        let ok = k_ok & (ih >= vec4<i32>(0)) & (ih < vec4<i32>(i32(params.in_h))) &
                 (iw >= vec4<i32>(0)) & (iw < vec4<i32>(i32(params.in_w)));
        let plane = vec4<i32>((n * params.in_channels + block.group * per_group_in + ci) * in_plane);
        let v = gather_x(plane + ih * i32(params.in_w) + iw, ok);
        let g_base = n * params.out_channels * out_plane + position;
        for (var c = 0u; c < CHANNEL_TILE; c++) {
            let co = min(block.first + c, block.end - 1u);
            acc[c] += grad_out[g_base + co * out_plane] * v;
        }
    }
    for (var c = 0u; c < CHANNEL_TILE; c++) {
        let co = block.first + c;
        if co >= block.end {
            break;
        }
        let base = (at.wid.z * params.out_channels + co) * k_total;
        for (var j = 0u; j < 4u; j++) {
            if k_ok[j] {
                out[base + k[j]] = acc[c][j];
            }
        }
    }
}
