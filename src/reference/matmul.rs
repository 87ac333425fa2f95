//! Reference for shaders/matmul.wgsl.

use super::Real;

/// C[b] = op(A[b]) · op(B[b]) for row-major operands; `batch_stride_*` 0 shares an operand
/// across the batch. A is [M, K] ([K, M] if `transpose_a`), B is [K, N] ([N, K] if
/// `transpose_b`).
#[allow(clippy::too_many_arguments)]
pub fn matmul<T: Real>(
    a: &[T],
    b: &[T],
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    transpose_a: bool,
    transpose_b: bool,
    batch_stride_a: usize,
    batch_stride_b: usize,
) -> Vec<T> {
    let mut c = vec![T::zero(); batch * m * n];
    for p in 0..batch {
        let a = &a[p * batch_stride_a..];
        let b = &b[p * batch_stride_b..];
        for row in 0..m {
            for col in 0..n {
                let mut sum = 0f64;
                for kk in 0..k {
                    let x = if transpose_a {
                        a[kk * m + row]
                    } else {
                        a[row * k + kk]
                    };
                    let y = if transpose_b {
                        b[col * k + kk]
                    } else {
                        b[kk * n + col]
                    };
                    sum += x.to_f64() * y.to_f64();
                }
                c[(p * m + row) * n + col] = T::from_f64(sum);
            }
        }
    }
    c
}
