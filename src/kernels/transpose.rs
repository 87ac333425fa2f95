//! Launcher for shaders/transpose.wgsl: axis swaps (the last two axes, the leading two) and
//! the last axis padded or cropped, for the matmul kernels' operands.

use super::{Launch, as_u32};
use crate::error::{Error, Result};
use crate::shaders::{
    Access, BindingKind, Entry, Shader, WORKGROUP_SIZE_OVERRIDE, WorkgroupSize, entries,
    uniform_params,
};
use crate::tensor::Tensor;

/// About this many workgroups make the row-by-row passes (swap_leading_axes,
/// resize_last_axis): enough to keep every thread of a
/// CPU adapter busy, few enough that lavapipe's fixed cost per workgroup stays small.
const ROW_GRID_WORKGROUPS: u32 = 512;

uniform_params! {
    struct Params {
        batch: u32, rows: u32, cols: u32,
    }
}

entries! {
    entries for Shader::Transpose, Params;
    bindings { x: read 1, out: read_write 2, x4: read 3, out4: read_write 4 }
    TRANSPOSE = "transpose", WorkgroupSize::Override(256), [x, out];
    /// Row passes: the launcher sizes the workgroup to the row (`row_grid`), at most 256.
    RESIZE_LAST_AXIS = "resize_last_axis", WorkgroupSize::Override(256), [x, out];
    SWAP_LEADING_AXES = "swap_leading_axes", WorkgroupSize::Override(256), [x, out];
    SWAP_LEADING_AXES_VEC4 = "swap_leading_axes_vec4", WorkgroupSize::Override(256), [x4, out4];
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
    launch(
        OP,
        &TRANSPOSE,
        x,
        out_dims,
        [batch, rows, cols],
        Grid::PerElement,
    )
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
        0 => (&SWAP_LEADING_AXES_VEC4, cols / 4),
        _ => (&SWAP_LEADING_AXES, cols),
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
    launch(
        OP,
        &RESIZE_LAST_AXIS,
        x,
        out_dims,
        [rows, last, length],
        grid,
    )
}

/// How a pass is dispatched: one invocation per element of the output, or rows of `units`
/// invocations (`row_grid`).
enum Grid {
    PerElement,
    Rows { units: usize, rows: usize },
}

/// Records `entry` from `x` into a fresh `out_dims` tensor, with the kernel's (batch, rows,
/// cols), binding `x` and the output where the entry reads and writes.
fn launch(
    op: &'static str,
    entry: &'static Entry<Params>,
    x: &Tensor,
    out_dims: Vec<usize>,
    [batch, rows, cols]: [usize; 3],
    grid: Grid,
) -> Result<Tensor> {
    let gpu = x.gpu();
    if x.numel() == 0 {
        // Nothing to move: at most padding (zeros) to write.
        return Tensor::zeros(gpu, out_dims);
    }
    let out = Tensor::empty(gpu, out_dims)?;
    let params = Params {
        batch: as_u32(op, "batch", batch)?,
        rows: as_u32(op, "rows", rows)?,
        cols: as_u32(op, "cols", cols)?,
    };
    let slot = |access| {
        let kind = BindingKind::Buffer(access);
        let binding = entry.bindings.iter().find(|binding| binding.kind == kind);
        binding
            .expect("a transpose entry reads one buffer and writes one")
            .slot
    };
    let launch = |kernel| {
        Launch::of(gpu, kernel, params)
            .bind(slot(Access::Read), x)
            .bind(slot(Access::ReadWrite), &out)
    };
    match grid {
        Grid::PerElement => launch(entry.kernel()).over(out.numel() as u64)?,
        Grid::Rows { units, rows } => {
            let units = as_u32(op, "invocations per row", units)?;
            let (width, workgroups) = row_grid(gpu, entry, units, as_u32(op, "rows", rows)?);
            let kernel = entry
                .kernel()
                .with_override(WORKGROUP_SIZE_OVERRIDE, f64::from(width));
            launch(kernel).on(workgroups)?;
        }
    }
    Ok(out)
}

/// The workgroup size and grid of a pass over `rows` rows of `units` invocations each: the
/// workgroup sized to the row (52 columns take 64 lanes, not 256 mostly idle), about
/// ROW_GRID_WORKGROUPS workgroups, each looping over rows from wid.y in steps of
/// num_workgroups.y.
fn row_grid(gpu: &crate::Gpu, entry: &Entry<Params>, units: u32, rows: u32) -> (u32, [u32; 3]) {
    let width = units.next_power_of_two().clamp(8, entry.invocations());
    let column_groups = units.div_ceil(width);
    let row_groups = ROW_GRID_WORKGROUPS
        .div_ceil(column_groups)
        .clamp(1, rows.max(1))
        .min(gpu.max_workgroups_per_dimension());
    (width, [column_groups, row_groups, 1])
}
