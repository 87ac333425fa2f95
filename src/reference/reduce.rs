//! References for shaders/reduce.wgsl.

use super::Real;
use crate::kernels::reduce::reduced_shape;

/// Sum over `axes` of a row-major tensor of shape `dims`, in the output layout of
/// `reduced_shape(dims, axes, _)` (keeping or dropping size-1 axes does not change the order).
pub fn sum<T: Real>(x: &[T], dims: &[usize], axes: &[usize]) -> Vec<T> {
    let out_len: usize = reduced_shape(dims, axes, false).iter().product();
    let mut out = vec![0f64; out_len];
    let mut index = vec![0usize; dims.len()];
    for &value in x {
        // Output position: the row-major index over the kept axes only.
        let mut o = 0;
        for (axis, (&i, &size)) in index.iter().zip(dims).enumerate() {
            if !axes.contains(&axis) {
                o = o * size + i;
            }
        }
        out[o] += value.to_f64();
        for axis in (0..dims.len()).rev() {
            index[axis] += 1;
            if index[axis] < dims[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out.into_iter().map(T::from_f64).collect()
}

pub fn mean<T: Real>(x: &[T], dims: &[usize], axes: &[usize]) -> Vec<T> {
    let count: usize = axes.iter().map(|&axis| dims[axis]).product();
    sum(x, dims, axes)
        .into_iter()
        .map(|v| T::from_f64(v.to_f64() / count as f64))
        .collect()
}
