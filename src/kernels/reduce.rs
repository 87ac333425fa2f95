//! Launchers for shaders/reduce.wgsl: sum and mean over any set of axes.

use super::{Launch, as_u32, grid_1d};
use crate::error::{Error, Result};
use crate::shaders::{Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;
/// Most groups of kept (or of reduced) axes the shader walks; enough for any rank up to 8.
const MAX_GROUPS: usize = 4;
/// Reductions at least this long get a workgroup per output element; shorter ones a single
/// invocation each (a workgroup would idle most of its lanes on them).
pub const WORKGROUP_REDUCTION_MIN_LEN: usize = 512;

uniform_params! {
    struct Params {
        kept_sizes: [u32; 4], kept_strides: [u32; 4], reduced_sizes: [u32; 4],
        reduced_strides: [u32; 4], num_outputs: u32, reduced_count: u32, scale: f32, _padding: u32,
    }
}

entries! {
    entries for Shader::Reduce, Params;
    bindings { input: read 1, out: read_write 2 }
    /// One invocation per output element.
    REDUCE_PER_INVOCATION = "reduce_per_invocation", WorkgroupSize::Override(256), [input, out];
    /// One workgroup per output element.
    REDUCE_PER_WORKGROUP = "reduce_per_workgroup", WorkgroupSize::Override(256), [input, out];
}

/// Sum over `axes`; the reduced axes are dropped from the shape, or kept with size 1.
pub fn sum(x: &Tensor, axes: &[usize], keep_dims: bool) -> Result<Tensor> {
    reduce("sum", x, axes, keep_dims, false)
}

/// Mean over `axes` (NaN where the reduced axes are empty, as in PyTorch).
pub fn mean(x: &Tensor, axes: &[usize], keep_dims: bool) -> Result<Tensor> {
    reduce("mean", x, axes, keep_dims, true)
}

/// The output shape of a reduction (also used by the CPU reference).
pub fn reduced_shape(dims: &[usize], axes: &[usize], keep_dims: bool) -> Vec<usize> {
    dims.iter()
        .enumerate()
        .filter_map(|(axis, &size)| match (axes.contains(&axis), keep_dims) {
            (false, _) => Some(size),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

fn reduce(
    op: &'static str,
    x: &Tensor,
    axes: &[usize],
    keep_dims: bool,
    is_mean: bool,
) -> Result<Tensor> {
    let dims = x.dims();
    for (i, &axis) in axes.iter().enumerate() {
        if axis >= dims.len() {
            return Err(Error::invalid(
                op,
                format!("axis {axis} is out of range for shape {dims:?}"),
            ));
        }
        if axes[..i].contains(&axis) {
            return Err(Error::invalid(op, format!("axis {axis} is given twice")));
        }
    }
    let gpu = x.gpu();
    let out = Tensor::empty(gpu, reduced_shape(dims, axes, keep_dims))?;
    let reduced_count: usize = axes.iter().map(|&axis| dims[axis]).product();
    if out.numel() == 0 {
        return Ok(out);
    }
    if x.numel() == 0 {
        // Non-empty output over an empty reduction: PyTorch gives 0 for sum, NaN for mean.
        crate::kernels::fill::fill_into(&out, if is_mean { f32::NAN } else { 0.0 })?;
        return Ok(out);
    }
    let (kept, reduced) = coalesce(dims, axes);
    if kept.len() > MAX_GROUPS || reduced.len() > MAX_GROUPS {
        return Err(Error::invalid(
            op,
            format!(
                "axes {axes:?} of shape {dims:?} interleave into more than {MAX_GROUPS} groups"
            ),
        ));
    }
    let (kept_sizes, kept_strides) = pack(op, &kept)?;
    let (reduced_sizes, reduced_strides) = pack(op, &reduced)?;
    let params = Params {
        kept_sizes,
        kept_strides,
        reduced_sizes,
        reduced_strides,
        num_outputs: as_u32(op, "output count", out.numel())?,
        reduced_count: as_u32(op, "reduced count", reduced_count)?,
        scale: if is_mean {
            1.0 / reduced_count as f32
        } else {
            1.0
        },
        _padding: 0,
    };
    let outputs = out.numel() as u64;
    if reduced_count >= WORKGROUP_REDUCTION_MIN_LEN {
        Launch::new(gpu, &REDUCE_PER_WORKGROUP, params)
            .bind(1, x)
            .bind(2, &out)
            .on(grid_1d(gpu, outputs))?;
    } else {
        Launch::new(gpu, &REDUCE_PER_INVOCATION, params)
            .bind(1, x)
            .bind(2, &out)
            .over(outputs)?;
    }
    Ok(out)
}

/// (size, element stride) of a run of adjacent axes.
type AxisGroup = (usize, usize);

/// Splits the axes into runs of adjacent kept and adjacent reduced axes, each run merged into
/// one (size, stride) group, outermost first. Size-1 axes are dropped: they move nothing.
fn coalesce(dims: &[usize], axes: &[usize]) -> (Vec<AxisGroup>, Vec<AxisGroup>) {
    let mut kept: Vec<AxisGroup> = Vec::new();
    let mut reduced: Vec<AxisGroup> = Vec::new();
    let mut previous_reduced: Option<bool> = None;
    let mut stride = 1;
    let mut strides = vec![0; dims.len()];
    for axis in (0..dims.len()).rev() {
        strides[axis] = stride;
        stride *= dims[axis];
    }
    for (axis, &size) in dims.iter().enumerate() {
        if size == 1 {
            continue;
        }
        let is_reduced = axes.contains(&axis);
        let groups = if is_reduced { &mut reduced } else { &mut kept };
        match groups.last_mut() {
            // Continue the run: the merged group's stride is that of its innermost axis.
            Some(group) if previous_reduced == Some(is_reduced) => {
                group.0 *= size;
                group.1 = strides[axis];
            }
            _ => groups.push((size, strides[axis])),
        }
        previous_reduced = Some(is_reduced);
    }
    (kept, reduced)
}

/// Right-aligns groups into the shader's four slots (unused outer slots: size 1, stride 0).
fn pack(op: &'static str, groups: &[AxisGroup]) -> Result<([u32; 4], [u32; 4])> {
    let mut sizes = [1u32; 4];
    let mut strides = [0u32; 4];
    let start = MAX_GROUPS - groups.len();
    for (slot, &(size, stride)) in groups.iter().enumerate() {
        sizes[start + slot] = as_u32(op, "axis size", size)?;
        strides[start + slot] = as_u32(op, "axis stride", stride)?;
    }
    Ok((sizes, strides))
}

#[cfg(test)]
mod tests {
    use super::coalesce;

    #[test]
    fn batch_norm_statistics_coalesce_into_three_groups() {
        // NCHW reduced over N, H, W: reduced N, kept C, reduced H·W.
        let (kept, reduced) = coalesce(&[2, 3, 4, 5], &[0, 2, 3]);
        assert_eq!(kept, vec![(3, 20)]);
        assert_eq!(reduced, vec![(2, 60), (20, 1)]);
    }

    #[test]
    fn size_one_axes_disappear() {
        let (kept, reduced) = coalesce(&[1, 7, 1, 3], &[1]);
        assert_eq!(kept, vec![(3, 1)]);
        assert_eq!(reduced, vec![(7, 3)]);
    }
}
