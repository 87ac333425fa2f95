//! Launcher for shaders/transpose.wgsl: axis swaps (the last two axes, the leading two) and
//! the last axis padded or cropped, for the matmul kernels' operands.

use bytemuck::{Pod, Zeroable};

use super::{as_u32, grid_1d};
use crate::error::{Error, Result};
use crate::shaders::{Kernel, Shader};
use crate::tensor::Tensor;

const WORKGROUP_SIZE: u64 = 256;

/// About this many workgroups make the row-by-row passes (swap_leading_axes,
/// resize_last_axis): enough to keep every thread of a
/// CPU adapter busy, few enough that lavapipe's fixed cost per workgroup stays small.
const ROW_GRID_WORKGROUPS: u32 = 512;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    rows: u32,
    cols: u32,
}

/// [rows, cols] → [cols, rows], or [batch, rows, cols] → [batch, cols, rows].
pub fn transpose(x: &Tensor) -> Result<Tensor> {
    const OP: &str = "transpose";
    let (batch, rows, cols, out_dims) = match *x.dims() {
        [rows, cols] => (1, rows, cols, vec![cols, rows]),
        [batch, rows, cols] => (batch, rows, cols, vec![batch, cols, rows]),
        ref dims => {
            return Err(Error::invalid(
                OP,
                format!("needs rank 2 or 3, got shape {dims:?}"),
            ));
        }
    };
    let gpu = x.gpu();
    let Some(x_range) = x.binding() else {
        return Tensor::zeros(gpu, out_dims);
    };
    let out = Tensor::empty(gpu, out_dims)?;
    let Some(out_range) = out.binding() else {
        return Ok(out);
    };
    let params = Params {
        batch: as_u32(OP, "batch", batch)?,
        rows: as_u32(OP, "rows", rows)?,
        cols: as_u32(OP, "cols", cols)?,
    };
    // One invocation per element of the output.
    gpu.dispatch(
        &Kernel::new(Shader::Transpose, OP),
        &params,
        &[(1, x_range), (2, out_range)],
        grid_1d(gpu, (out.numel() as u64).div_ceil(WORKGROUP_SIZE)),
    )?;
    Ok(out)
}

/// [batch, rows, cols] → [rows, batch, cols].
pub fn swap_leading_axes(x: &Tensor) -> Result<Tensor> {
    const OP: &str = "swap_leading_axes";
    let [batch, rows, cols] = *x.dims() else {
        return Err(Error::invalid(
            OP,
            format!("needs rank 3, got shape {:?}", x.dims()),
        ));
    };
    let gpu = x.gpu();
    let Some(x_range) = x.binding() else {
        return Tensor::zeros(gpu, [rows, batch, cols]);
    };
    let out = Tensor::empty(gpu, [rows, batch, cols])?;
    let Some(out_range) = out.binding() else {
        return Ok(out);
    };
    let params = Params {
        batch: as_u32(OP, "batch", batch)?,
        rows: as_u32(OP, "rows", rows)?,
        cols: as_u32(OP, "cols", cols)?,
    };
    // Runs of a multiple of 4 values move as vec4s.
    let (entry, slots, units) = match cols % 4 {
        0 => ("swap_leading_axes_vec4", [3, 4], params.cols / 4),
        _ => (OP, [1, 2], params.cols),
    };
    let (width, workgroups) = row_grid(gpu, units, params.batch * params.rows);
    gpu.dispatch(
        &Kernel::new(Shader::Transpose, entry).with_override("WORKGROUP_SIZE", f64::from(width)),
        &params,
        &[(slots[0], x_range), (slots[1], out_range)],
        workgroups,
    )?;
    Ok(out)
}

/// The last axis zero-padded or cropped to `length`: [..., L] → [..., length].
pub fn resize_last_axis(x: &Tensor, length: usize) -> Result<Tensor> {
    const OP: &str = "resize_last_axis";
    let Some((&last, leading)) = x.dims().split_last() else {
        return Err(Error::invalid(OP, "needs a tensor of rank 1 or more"));
    };
    let rows: usize = leading.iter().product();
    let mut out_dims = leading.to_vec();
    out_dims.push(length);
    let gpu = x.gpu();
    let Some(x_range) = x.binding() else {
        return Tensor::zeros(gpu, out_dims);
    };
    let out = Tensor::empty(gpu, out_dims)?;
    let Some(out_range) = out.binding() else {
        return Ok(out);
    };
    // The kernel's (batch, rows, cols) are (leading elements, input length, output length).
    let params = Params {
        batch: as_u32(OP, "leading elements", rows)?,
        rows: as_u32(OP, "length", last)?,
        cols: as_u32(OP, "new length", length)?,
    };
    let (width, workgroups) = row_grid(gpu, params.cols, params.batch);
    gpu.dispatch(
        &Kernel::new(Shader::Transpose, OP).with_override("WORKGROUP_SIZE", f64::from(width)),
        &params,
        &[(1, x_range), (2, out_range)],
        workgroups,
    )?;
    Ok(out)
}

/// The workgroup size and grid of a pass over `rows` rows of `units` invocations each: the
/// workgroup sized to the row (52 columns take 64 lanes, not 256 mostly idle), about
/// ROW_GRID_WORKGROUPS workgroups, each looping over rows from wid.y in steps of
/// num_workgroups.y.
fn row_grid(gpu: &crate::Gpu, units: u32, rows: u32) -> (u32, [u32; 3]) {
    let width = units.next_power_of_two().clamp(8, WORKGROUP_SIZE as u32);
    let column_groups = units.div_ceil(width);
    let row_groups = ROW_GRID_WORKGROUPS
        .div_ceil(column_groups)
        .clamp(1, rows.max(1))
        .min(gpu.max_workgroups_per_dimension());
    (width, [column_groups, row_groups, 1])
}
