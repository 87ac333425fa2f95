//! Launchers for shaders/concat.wgsl: channel concatenation (Inception's branches, DenseNet's
//! feature reuse) and its backward, the split.

use super::{Launch, as_u32};
use crate::error::{Error, Result};
use crate::shaders::{Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;

uniform_params! {
    struct Params {
        batch: u32, channels: u32, plane: u32, src_channels: u32, src_first: u32,
        dst_channels: u32, dst_first: u32,
    }
}

entries! {
    entries for Shader::Concat, Params;
    bindings { src: read 1, dst: read_write 2 }
    COPY_CHANNELS = "copy_channels", WorkgroupSize::Override(256), [src, dst];
}

/// Concatenates NCHW tensors along the channel axis, in order (as torch.cat(..., dim=1)).
pub fn concat_channels(inputs: &[&Tensor]) -> Result<Tensor> {
    const OP: &str = "concat_channels";
    let Some(first) = inputs.first() else {
        return Err(Error::invalid(OP, "needs at least one tensor"));
    };
    let [n, _, h, w] = nchw(OP, first)?;
    let mut total = 0;
    for input in inputs {
        let [ni, ci, hi, wi] = nchw(OP, input)?;
        if (ni, hi, wi) != (n, h, w) {
            return Err(Error::ShapeMismatch {
                op: OP,
                left: first.dims().to_vec(),
                right: input.dims().to_vec(),
            });
        }
        total += ci;
    }
    let out = Tensor::empty(first.gpu(), [n, total, h, w])?;
    let mut offset = 0;
    for input in inputs {
        let channels = input.dims()[1];
        copy_channels(input, 0, &out, offset, channels)?;
        offset += channels;
    }
    Ok(out)
}

/// The backward of `concat_channels`: the gradient split into slices of `channels` each.
pub fn split_channels(grad: &Tensor, channels: &[usize]) -> Result<Vec<Tensor>> {
    const OP: &str = "split_channels";
    let [n, total, h, w] = nchw(OP, grad)?;
    if channels.iter().sum::<usize>() != total {
        return Err(Error::invalid(
            OP,
            format!(
                "slices {channels:?} do not add up to the {total} channels of {:?}",
                grad.dims()
            ),
        ));
    }
    let mut offset = 0;
    let mut parts = Vec::with_capacity(channels.len());
    for &count in channels {
        let part = Tensor::empty(grad.gpu(), [n, count, h, w])?;
        copy_channels(grad, offset, &part, 0, count)?;
        parts.push(part);
        offset += count;
    }
    Ok(parts)
}

/// Copies all of `src` [N, C, H, W] into channels `dst_first .. dst_first + C` of `dst`
/// [N, C_dst, H, W] (a DenseNet block buffer at a batch above 1).
pub fn copy_channels_into(src: &Tensor, dst: &Tensor, dst_first: usize) -> Result<()> {
    const OP: &str = "copy_channels_into";
    let [n, c, h, w] = nchw(OP, src)?;
    let [dn, dc, dh, dw] = nchw(OP, dst)?;
    if (dn, dh, dw) != (n, h, w) || dst_first + c > dc {
        return Err(Error::invalid(
            OP,
            format!(
                "{:?} has no room for {:?} at channel {dst_first}",
                dst.dims(),
                src.dims()
            ),
        ));
    }
    copy_channels(src, 0, dst, dst_first, c)
}

/// Copies channels src_first..src_first+count of `src` to dst_first.. of `dst` (same N, H, W).
fn copy_channels(
    src: &Tensor,
    src_first: usize,
    dst: &Tensor,
    dst_first: usize,
    count: usize,
) -> Result<()> {
    const OP: &str = "copy_channels";
    if src.numel() == 0 || dst.numel() == 0 {
        return Ok(()); // nothing to copy
    }
    let [n, src_channels, h, w] = nchw(OP, src)?;
    let dst_channels = dst.dims()[1];
    let params = Params {
        batch: as_u32(OP, "N", n)?,
        channels: as_u32(OP, "channels", count)?,
        plane: as_u32(OP, "H·W", h * w)?,
        src_channels: as_u32(OP, "source channels", src_channels)?,
        src_first: as_u32(OP, "source offset", src_first)?,
        dst_channels: as_u32(OP, "destination channels", dst_channels)?,
        dst_first: as_u32(OP, "destination offset", dst_first)?,
    };
    Launch::new(src.gpu(), &COPY_CHANNELS, params)
        .bind(1, src)
        .bind(2, dst)
        .over((n * count * h * w) as u64)
}

fn nchw(op: &'static str, t: &Tensor) -> Result<[usize; 4]> {
    match *t.dims() {
        [n, c, h, w] => Ok([n, c, h, w]),
        ref dims => Err(Error::invalid(
            op,
            format!("needs NCHW tensors, got shape {dims:?}"),
        )),
    }
}
