//! References for shaders/transpose.wgsl: row-major index arithmetic, nothing more.

use super::Real;

/// [batch, rows, cols] → [batch, cols, rows].
pub fn transpose<T: Real>(x: &[T], [batch, rows, cols]: [usize; 3]) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    for b in 0..batch {
        for r in 0..rows {
            for c in 0..cols {
                out[(b * cols + c) * rows + r] = x[(b * rows + r) * cols + c];
            }
        }
    }
    out
}

/// [batch, rows, cols] → [rows, batch, cols].
pub fn swap_leading_axes<T: Real>(x: &[T], [batch, rows, cols]: [usize; 3]) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    for b in 0..batch {
        for r in 0..rows {
            let from = (b * rows + r) * cols;
            let to = (r * batch + b) * cols;
            out[to..to + cols].copy_from_slice(&x[from..from + cols]);
        }
    }
    out
}

/// Each of `rows` rows of `last` values zero-padded or cropped to `length` (rows of no values
/// become rows of zeros).
pub fn resize_last_axis<T: Real>(x: &[T], rows: usize, last: usize, length: usize) -> Vec<T> {
    (0..rows)
        .flat_map(|r| (0..length).map(move |c| if c < last { x[r * last + c] } else { T::zero() }))
        .collect()
}
