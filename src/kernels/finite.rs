//! Launcher for shaders/finite.wgsl: `--check-finite`'s flag of a tensor holding NaN or Inf.

use super::{Launch, as_u32, binding_pieces};
use crate::error::Result;
use crate::shaders::{Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;

uniform_params! {
    struct Params {
        count: u32, slot: u32,
    }
}

entries! {
    entries for Shader::Finite, Params;
    bindings { x: read 1, flags: read_write 2 }
    FLAG_NON_FINITE = "flag_non_finite", WorkgroupSize::Override(256), [x, flags];
}

/// Flags `x` if it holds NaN or Inf, when the context's finite checks are on (see
/// `Gpu::start_finite_checks`); records nothing otherwise. `what`: "output" or "gradient".
pub fn check_finite(x: &Tensor, what: &'static str) -> Result<()> {
    if x.numel() == 0 {
        return Ok(());
    }
    let gpu = x.gpu();
    let Some((flags, slot)) = gpu.finite_check_slot(what)? else {
        return Ok(());
    };
    // A tensor larger than one binding is checked piece by piece, each flagging the same slot.
    for piece in binding_pieces(x)? {
        let params = Params {
            count: as_u32("check_finite", "element count", piece.numel())?,
            slot,
        };
        Launch::new(gpu, &FLAG_NON_FINITE, params)
            .bind(1, &piece)
            .bind_range(2, Some(flags.clone()))
            .over(piece.numel() as u64)?;
    }
    Ok(())
}
