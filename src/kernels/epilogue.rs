//! What an output pass applies to each value it stores: a per-channel affine (an eval-mode
//! BatchNorm folded, `EvalBatchNorm::folded`), then a residual and a ReLU, where a batch-norm
//! pass would follow (`conv2d_batch_norm`). The Winograd output transforms apply all of it;
//! the subgroup GEMM's stores the affine and the ReLU (`matmul::RowEpilogue`).

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// out = relu?(value · scale[c] + shift[c] + residual?) for output channel c.
#[derive(Clone, Copy)]
pub(crate) struct ChannelEpilogue<'a> {
    /// [2, C]: the scales in row 0, the shifts in row 1.
    pub affine: &'a Tensor,
    /// Added after the affine; the output's shape.
    pub residual: Option<&'a Tensor>,
    pub relu: bool,
}

impl ChannelEpilogue<'_> {
    /// Checks the epilogue against an output of `out_dims` whose channels are its axis 1.
    pub fn check(&self, op: &'static str, out_dims: &[usize]) -> Result<()> {
        let channels = out_dims.get(1).copied().unwrap_or(0);
        if self.affine.dims() != [2, channels] {
            return Err(Error::invalid(
                op,
                format!(
                    "the epilogue's affine must be [2, {channels}] for output {out_dims:?}, got {:?}",
                    self.affine.dims()
                ),
            ));
        }
        match self.residual {
            Some(residual) if residual.dims() != out_dims => Err(Error::ShapeMismatch {
                op,
                left: out_dims.to_vec(),
                right: residual.dims().to_vec(),
            }),
            _ => Ok(()),
        }
    }
}
