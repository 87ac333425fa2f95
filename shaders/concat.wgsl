// concat.wgsl — copies a run of channels between NCHW tensors: the forward of channel
// concatenation (each input copied into its slice of the output) and its backward (the output
// gradient split back into per-input slices).
//
//   copy_channels: dst[n, dst_first + c, p] = src[n, src_first + c, p]
//                  for n < batch, c < channels, p < plane
//
// (A convolution can write straight into its channel slice of the destination instead:
// conv2d_into, on conv2d_implicit_gemm.wgsl. This copy remains the general path and the
// backward.)
// Layout: src [batch, src_channels, plane], dst [batch, dst_channels, plane].
// Dispatch: one invocation per copied element (batch · channels · plane), WORKGROUP_SIZE per
// workgroup, folded into a 2-D grid (linear id = wid.y · nx + wid.x).
// Bindings: 0 params (uniform), 1 src (read), 2 dst (read_write).
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust.

struct Params {
    batch: u32,
    channels: u32,
    plane: u32,
    src_channels: u32,
    src_first: u32,
    dst_channels: u32,
    dst_first: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;


@compute @workgroup_size(WORKGROUP_SIZE)
fn copy_channels(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    let block = params.channels * params.plane;
    if i >= params.batch * block {
        return;
    }
    let n = i / block;
    let within = i % block; // channel · plane + position, contiguous within one sample
    dst[(n * params.dst_channels + params.dst_first) * params.plane + within] =
        src[(n * params.src_channels + params.src_first) * params.plane + within];
}
