//! References for shaders/fill.wgsl.

/// `dst` with `len` values from `src[src_offset..]` copied to `dst_offset..`, the rest as it
/// was.
pub fn copy_into(
    src: &[f32],
    src_offset: usize,
    dst: &[f32],
    dst_offset: usize,
    len: usize,
) -> Vec<f32> {
    let mut out = dst.to_vec();
    out[dst_offset..dst_offset + len].copy_from_slice(&src[src_offset..src_offset + len]);
    out
}
