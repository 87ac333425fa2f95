//! Launchers for shaders/fill.wgsl: fill a tensor with a value, copy a range of elements.

use super::{Launch, as_u32};
use crate::error::{Error, Result};
use crate::shaders::{Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;

uniform_params! {
    struct Params {
        len: u32, value_bits: u32, src_offset: u32, dst_offset: u32,
    }
}

entries! {
    entries for Shader::Fill, Params;
    bindings { out: read_write 1, src: read 1, dst: read_write 2 }
    FILL = "fill", WorkgroupSize::Override(256), [out];
    COPY = "copy", WorkgroupSize::Override(256), [src, dst];
}

/// Sets every element of `tensor` to `value` (NaN included: the value travels as bits).
pub fn fill_into(tensor: &Tensor, value: f32) -> Result<()> {
    let params = Params {
        len: as_u32("fill", "element count", tensor.numel())?,
        value_bits: value.to_bits(),
        src_offset: 0,
        dst_offset: 0,
    };
    Launch::new(tensor.gpu(), &FILL, params)
        .bind(1, tensor)
        .over(tensor.numel() as u64)
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
    let params = Params {
        len: as_u32("copy", "len", len)?,
        value_bits: 0,
        src_offset: as_u32("copy", "src_offset", src_offset)?,
        dst_offset: as_u32("copy", "dst_offset", dst_offset)?,
    };
    Launch::new(src.gpu(), &COPY, params)
        .bind(1, src)
        .bind(2, dst)
        .over(len as u64)
}

/// A new tensor with the same shape and values.
pub fn copy(src: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty(src.gpu(), src.shape().clone())?;
    copy_into(src, 0, &out, 0, src.numel())?;
    Ok(out)
}
