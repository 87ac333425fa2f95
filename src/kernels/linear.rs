//! Linear (fully connected) layers as compositions of matmul, add_row_bias and sum:
//! y = x · weightᵀ + bias, with weight stored [out_features, in_features] as in PyTorch.
//!
//! A weight larger than one storage binding (VGG's classifier.0.weight: 25088 × 4096 floats,
//! 411 MB, against lavapipe's 128 MiB) is processed in blocks of rows, each bound as a view.

use crate::error::{Error, Result};
use crate::kernels::concat::{concat_channels, split_channels};
use crate::kernels::elementwise::{add, add_row_bias};
use crate::kernels::fill::copy_into;
use crate::kernels::matmul::{MatmulOptions, matmul};
use crate::kernels::reduce::sum;
use crate::tensor::Tensor;

/// The gradients of a linear layer; `grad_bias` is None when the layer has no bias.
#[derive(Debug)]
pub struct LinearGrads {
    pub grad_input: Tensor,
    pub grad_weight: Tensor,
    pub grad_bias: Option<Tensor>,
}

/// y[b, o] = sum_i x[b, i] · weight[o, i] + bias[o].
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    validate("linear", x, weight)?;
    let transposed = MatmulOptions {
        transpose_b: true,
        ..MatmulOptions::default()
    };
    let blocks = row_blocks(weight)?;
    let y = if blocks.len() == 1 {
        matmul(x, weight, transposed)?
    } else {
        // y's column blocks, one per weight row block, joined as channels of [batch, C, 1, 1].
        let parts = blocks
            .iter()
            .map(|&(start, rows)| {
                let part = matmul(x, &weight.rows(start, rows)?, transposed)?;
                part.reshape([part.dims()[0], rows, 1, 1])
            })
            .collect::<Result<Vec<_>>>()?;
        let joined = concat_channels(&parts.iter().collect::<Vec<_>>())?;
        joined.reshape([joined.dims()[0], joined.dims()[1]])?
    };
    match bias {
        Some(bias) => add_row_bias(&y, bias),
        None => Ok(y),
    }
}

/// Gradients of `linear` from the output gradient [batch, out_features].
pub fn linear_backward(
    x: &Tensor,
    weight: &Tensor,
    grad_out: &Tensor,
    has_bias: bool,
) -> Result<LinearGrads> {
    let (batch, out_features) = validate("linear_backward", x, weight)?;
    if grad_out.dims() != [batch, out_features] {
        return Err(Error::ShapeMismatch {
            op: "linear_backward (grad_out)",
            left: vec![batch, out_features],
            right: grad_out.dims().to_vec(),
        });
    }
    // dx = dy · W; dW = dyᵀ · x; db = column sums of dy.
    let transposed_a = MatmulOptions {
        transpose_a: true,
        ..MatmulOptions::default()
    };
    let grad_input = linear_backward_input(weight, grad_out)?;
    let blocks = row_blocks(weight)?;
    let grad_weight = if blocks.len() == 1 {
        matmul(grad_out, x, transposed_a)?
    } else {
        // Per row block b: dW_b = dy_bᵀ · x, written into its rows.
        let grad_weight = Tensor::empty(weight.gpu(), weight.shape().clone())?;
        for (&(start, rows), part) in blocks.iter().zip(block_gradients(grad_out, &blocks)?) {
            let grad_block = matmul(&part, x, transposed_a)?;
            copy_into(
                &grad_block,
                0,
                &grad_weight.rows(start, rows)?,
                0,
                grad_block.numel(),
            )?;
        }
        grad_weight
    };
    let grad_bias = if has_bias {
        Some(sum(grad_out, &[0], false)?)
    } else {
        None
    };
    Ok(LinearGrads {
        grad_input,
        grad_weight,
        grad_bias,
    })
}

/// The gradient of `linear` to its input alone, dy · W (what saliency needs: the weight's
/// gradient, as large as the weight, is never formed).
pub fn linear_backward_input(weight: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
    let blocks = row_blocks(weight)?;
    if blocks.len() == 1 {
        return matmul(grad_out, weight, MatmulOptions::default());
    }
    // Per row block b: dx += dy_b · W_b.
    let mut grad_input: Option<Tensor> = None;
    for (&(start, rows), part) in blocks.iter().zip(block_gradients(grad_out, &blocks)?) {
        let contribution = matmul(&part, &weight.rows(start, rows)?, MatmulOptions::default())?;
        grad_input = Some(match grad_input {
            Some(sum) => add(&sum, &contribution)?,
            None => contribution,
        });
    }
    Ok(grad_input.expect("at least two blocks"))
}

/// dy [batch, out] split into the weight's row blocks' columns, each [batch, rows].
fn block_gradients(grad_out: &Tensor, blocks: &[(usize, usize)]) -> Result<Vec<Tensor>> {
    let &[batch, out_features] = grad_out.dims() else {
        return Err(Error::invalid(
            "linear_backward",
            format!(
                "grad_out {:?} is not [batch, out_features]",
                grad_out.dims()
            ),
        ));
    };
    let rows: Vec<usize> = blocks.iter().map(|&(_, rows)| rows).collect();
    split_channels(&grad_out.reshape([batch, out_features, 1, 1])?, &rows)?
        .into_iter()
        .zip(&rows)
        .map(|(part, &rows)| part.reshape([batch, rows]))
        .collect()
}

/// (first row, row count) of the blocks `weight` is bound in: one block when it fits one
/// storage binding, else blocks as large as a binding allows whose starts are aligned for views.
fn row_blocks(weight: &Tensor) -> Result<Vec<(usize, usize)>> {
    let limits = weight.gpu().limits();
    let (rows, row_bytes) = (weight.dims()[0], weight.dims()[1] as u64 * 4);
    if weight.byte_size() <= limits.max_storage_buffer_binding_size || row_bytes == 0 {
        return Ok(vec![(0, rows)]);
    }
    let alignment = u64::from(limits.min_storage_buffer_offset_alignment);
    // The fewest rows whose bytes are a multiple of the alignment, rounded to a multiple of 4
    // rows: the input gradient's per-block products (dy_b · W_b) reduce over a block's rows,
    // and the vec4 and subgroup matmuls need that a multiple of 4 (VGG16's classifier.0 in
    // blocks of 1337 rows ran on the scalar tiled kernel: 1.5 s; in blocks of 1336, see
    // BENCHMARKS.md).
    let aligned = alignment / gcd(row_bytes, alignment);
    let step = (aligned * 4 / gcd(aligned, 4)) as usize;
    let per_block = (limits.max_storage_buffer_binding_size / row_bytes) as usize / step * step;
    if per_block == 0 {
        return Err(Error::invalid(
            "linear",
            format!(
                "a weight row of {row_bytes} bytes does not fit the adapter's storage binding \
                 limit of {} bytes",
                limits.max_storage_buffer_binding_size
            ),
        ));
    }
    Ok((0..rows)
        .step_by(per_block)
        .map(|start| (start, per_block.min(rows - start)))
        .collect())
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// (batch, out_features) after checking x [batch, in] against weight [out, in].
fn validate(op: &'static str, x: &Tensor, weight: &Tensor) -> Result<(usize, usize)> {
    match (x.dims(), weight.dims()) {
        (&[batch, inputs], &[outputs, weight_inputs]) if inputs == weight_inputs => {
            Ok((batch, outputs))
        }
        _ => Err(Error::ShapeMismatch {
            op,
            left: x.dims().to_vec(),
            right: weight.dims().to_vec(),
        }),
    }
}
