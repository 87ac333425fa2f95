//! The budget for kept copies: values computed from a tensor that stays the same from call to
//! call (a layer's weights) and kept, so that later calls skip computing them again. Two kinds
//! exist: the Winograd-domain filters (`Tensor::derived`) and the texture copies the subgroup
//! matmul reads its A operand from (`operand_textures.rs`).
//!
//! Kept copies trade memory for speed, and without a bound they cost more than the weights
//! themselves: ResNet-50's, kept in full, held 230 MB beside its 108 MB of parameters (a
//! filter in the F(4×4) domain is 4× its weight, and its texture copy as much again). Each is
//! kept only while the copies kept so far leave room for it in the budget; past it, a copy is
//! computed for its call and then dropped. The first copies asked for are the ones kept, so a
//! network run again and again keeps the same ones every time rather than evicting in a cycle
//! that would keep nothing it reuses. What a copy saves is its recomputation (a weight
//! transform, a buffer-to-texture copy), and in a training loop little: each step writes the
//! weights, which invalidates every copy of them (a weight's texture copy still serves the
//! backward's product with the same weight in that step).

use std::sync::{Arc, Mutex};

use super::pool::BufferPool;
use crate::error::{Error, Result};

/// The budget when neither `GpuOptions::kept_copy_bytes` nor the environment sets one.
pub const DEFAULT_KEPT_COPY_BYTES: u64 = 64 << 20;

/// The environment variable `Gpu::new` reads the budget from, in MiB (0 keeps no copies).
pub const KEPT_COPIES_VAR: &str = "GRADLENS_KEPT_COPIES_MIB";

/// The budget `GRADLENS_KEPT_COPIES_MIB` sets, if set.
pub(crate) fn budget_from_env() -> Result<Option<u64>> {
    match std::env::var(KEPT_COPIES_VAR) {
        Ok(value) => parse_budget(&value).map(Some),
        Err(_) => Ok(None),
    }
}

/// A budget in whole MiB, in bytes.
fn parse_budget(value: &str) -> Result<u64> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|mib| mib.checked_mul(1 << 20))
        .ok_or_else(|| {
            Error::invalid(
                KEPT_COPIES_VAR,
                format!("{value:?} is not a whole number of MiB"),
            )
        })
}

/// The bytes of copies kept, against the budget.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeptCopies {
    budget: u64,
    bytes: u64,
}

impl KeptCopies {
    pub(crate) fn new(budget: u64) -> Self {
        Self { budget, bytes: 0 }
    }

    /// Whether a copy of `bytes` fits; if so, it is counted as kept from now on.
    pub(crate) fn try_keep(&mut self, bytes: u64) -> bool {
        let fits = self
            .bytes
            .checked_add(bytes)
            .is_some_and(|total| total <= self.budget);
        if fits {
            self.bytes += bytes;
        }
        fits
    }

    /// A kept copy of `bytes` is gone.
    pub(crate) fn release(&mut self, bytes: u64) {
        self.bytes -= bytes;
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn budget(&self) -> u64 {
        self.budget
    }
}

/// A place in the budget held for one kept copy (a `Tensor::derived` result), given back when
/// the copy is dropped.
pub(crate) struct KeptCopyLease {
    bytes: u64,
    pool: Arc<Mutex<BufferPool>>,
}

impl KeptCopyLease {
    pub(crate) fn new(bytes: u64, pool: Arc<Mutex<BufferPool>>) -> Self {
        Self { bytes, pool }
    }
}

impl Drop for KeptCopyLease {
    fn drop(&mut self) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.kept_copies_mut().release(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{KeptCopies, parse_budget};

    #[test]
    fn a_budget_is_a_whole_number_of_mebibytes() {
        assert_eq!(parse_budget("64").unwrap(), 64 << 20);
        assert_eq!(parse_budget(" 0\n").unwrap(), 0);
        for bad in ["", "-1", "1.5", "64MB", "18446744073709551615"] {
            let message = parse_budget(bad).unwrap_err().to_string();
            assert!(
                message.contains("GRADLENS_KEPT_COPIES_MIB"),
                "{bad:?}: {message}"
            );
        }
    }

    #[test]
    fn copies_are_kept_until_the_budget_is_full_and_room_comes_back() {
        let mut kept = KeptCopies::new(100);
        assert!(kept.try_keep(60));
        assert!(!kept.try_keep(41), "past the budget");
        assert!(kept.try_keep(40), "exactly to the budget");
        assert!(!kept.try_keep(1));
        kept.release(60);
        assert!(kept.try_keep(1));
        assert_eq!(kept.bytes(), 41);
        assert!(
            !KeptCopies::new(0).try_keep(1),
            "a budget of 0 keeps nothing"
        );
        assert!(!kept.try_keep(u64::MAX), "no overflow");
    }
}
