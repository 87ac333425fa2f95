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
    launch(OP, OP, x, out_dims, [batch, rows, cols], Grid::PerElement)
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
    // Runs of a multiple of 4 values move as vec4s.
    let (entry, units) = match cols % 4 {
        0 => ("swap_leading_axes_vec4", cols / 4),
        _ => (OP, cols),
    };
    let grid = Grid::Rows {
        units,
        rows: batch * rows,
    };
    launch(
        OP,
        entry,
        x,
        vec![rows, batch, cols],
        [batch, rows, cols],
        grid,
    )
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
    // The kernel's (batch, rows, cols) are (leading elements, input length, output length).
    let grid = Grid::Rows {
        units: length,
        rows,
    };
    launch(OP, OP, x, out_dims, [rows, last, length], grid)
}

/// How a pass is dispatched: one invocation per element of the output, or rows of `units`
/// invocations (`row_grid`).
enum Grid {
    PerElement,
    Rows { units: usize, rows: usize },
}

/// Records `entry` from `x` into a fresh `out_dims` tensor, with the kernel's (batch, rows,
/// cols); entries named `_vec4` read and write through the vec4 bindings 3 and 4.
fn launch(
    op: &'static str,
    entry: &'static str,
    x: &Tensor,
    out_dims: Vec<usize>,
    [batch, rows, cols]: [usize; 3],
    grid: Grid,
) -> Result<Tensor> {
    let gpu = x.gpu();
    let Some(x_range) = x.binding() else {
        // Nothing to move: at most padding (zeros) to write.
        return Tensor::zeros(gpu, out_dims);
    };
    let out = Tensor::empty(gpu, out_dims)?;
    let Some(out_range) = out.binding() else {
        return Ok(out);
    };
    let params = Params {
        batch: as_u32(op, "batch", batch)?,
        rows: as_u32(op, "rows", rows)?,
        cols: as_u32(op, "cols", cols)?,
    };
    let (kernel, workgroups) = match grid {
        Grid::PerElement => (
            Kernel::new(Shader::Transpose, entry),
            grid_1d(gpu, (out.numel() as u64).div_ceil(WORKGROUP_SIZE)),
        ),
        Grid::Rows { units, rows } => {
            let units = as_u32(op, "invocations per row", units)?;
            let (width, workgroups) = row_grid(gpu, units, as_u32(op, "rows", rows)?);
            let kernel = Kernel::new(Shader::Transpose, entry)
                .with_override("WORKGROUP_SIZE", f64::from(width));
            (kernel, workgroups)
        }
    };
    let slots = match entry.ends_with("_vec4") {
        true => [(3, x_range), (4, out_range)],
        false => [(1, x_range), (2, out_range)],
    };
    gpu.dispatch(&kernel, &params, &slots, workgroups)?;
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
