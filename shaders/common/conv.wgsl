
// common/conv.wgsl — appended by src/shaders/mod.rs to conv2d.wgsl and
// conv2d_implicit_gemm.wgsl: the parameters both read (one `Params` in src/kernels/conv2d/) and
// the bindings both use.

struct Params {
    batch: u32,
    in_channels: u32,
    in_h: u32,
    in_w: u32,
    out_channels: u32,
    out_h: u32,
    out_w: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    dilation_h: u32,
    dilation_w: u32,
    groups: u32,
    has_bias: u32,
    // The implicit GEMM's output slice: channels out_first .. of an output with out_total
    // channels; chunk: (n, p) pairs per partial sum of its weight gradient.
    out_total: u32,
    out_first: u32,
    chunk: u32,
    // conv2d.wgsl's im2col / im2row / col2im buffers' strides (see its Layout).
    position_stride: u32,
    tap_stride: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> grad_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
