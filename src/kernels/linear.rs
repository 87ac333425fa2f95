//! Linear (fully connected) layers as compositions of matmul, add_row_bias and sum:
//! y = x · weightᵀ + bias, with weight stored [out_features, in_features] as in PyTorch.

use crate::error::{Error, Result};
use crate::kernels::elementwise::add_row_bias;
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
    let y = matmul(x, weight, transposed)?;
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
    let grad_input = matmul(grad_out, weight, MatmulOptions::default())?;
    let transposed_a = MatmulOptions {
        transpose_a: true,
        ..MatmulOptions::default()
    };
    let grad_weight = matmul(grad_out, x, transposed_a)?;
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
