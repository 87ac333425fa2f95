//! Launchers for shaders/fill.wgsl: fill a tensor with a value, copy a range of elements.

use bytemuck::{Pod, Zeroable};

use super::{as_u32, grid_1d};
use crate::error::{Error, Result};
use crate::shaders::{Kernel, Shader};
use crate::tensor::Tensor;

const WORKGROUP_SIZE: u64 = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    len: u32,
    value_bits: u32,
    src_offset: u32,
    dst_offset: u32,
}

/// Sets every element of `tensor` to `value` (NaN included: the value travels as bits).
pub fn fill_into(tensor: &Tensor, value: f32) -> Result<()> {
    let Some(out) = tensor.binding() else {
        return Ok(());
    };
    let params = Params {
        len: as_u32("fill", "element count", tensor.numel())?,
        value_bits: value.to_bits(),
        src_offset: 0,
        dst_offset: 0,
    };
    let gpu = tensor.gpu();
    gpu.dispatch(
        &Kernel::new(Shader::Fill, "fill"),
        &params,
        &[(1, out)],
        grid_1d(gpu, (tensor.numel() as u64).div_ceil(WORKGROUP_SIZE)),
    )
}

/// Copies `len` elements from `src` (starting at element `src_offset`) into `dst` (at
/// `dst_offset`). The tensors' shapes do not matter, only their element ranges.
pub fn copy_into(
    src: &Tensor,
    src_offset: usize,
    dst: &Tensor,
    dst_offset: usize,
    len: usize,
) -> Result<()> {
    for (name, tensor, offset) in [
        ("source", src, src_offset),
        ("destination", dst, dst_offset),
    ] {
        if offset
            .checked_add(len)
            .is_none_or(|end| end > tensor.numel())
        {
            return Err(Error::invalid(
                "copy",
                format!(
                    "{len} elements at offset {offset} do not fit the {name} of shape {:?}",
                    tensor.dims()
                ),
            ));
        }
    }
    if len == 0 {
        return Ok(());
    }
    let (Some(src_range), Some(dst_range)) = (src.binding(), dst.binding()) else {
        return Ok(());
    };
    let params = Params {
        len: as_u32("copy", "len", len)?,
        value_bits: 0,
        src_offset: as_u32("copy", "src_offset", src_offset)?,
        dst_offset: as_u32("copy", "dst_offset", dst_offset)?,
    };
    let gpu = src.gpu();
    gpu.dispatch(
        &Kernel::new(Shader::Fill, "copy"),
        &params,
        &[(1, src_range), (2, dst_range)],
        grid_1d(gpu, (len as u64).div_ceil(WORKGROUP_SIZE)),
    )
}

/// A new tensor with the same shape and values.
pub fn copy(src: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty(src.gpu(), src.shape().clone())?;
    copy_into(src, 0, &out, 0, src.numel())?;
    Ok(out)
}
