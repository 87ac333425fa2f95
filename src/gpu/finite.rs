//! `--check-finite`: which layer first produced NaN or Inf. While checks are on, every op
//! output and every gradient the tape computes is flagged on the GPU (kernels/finite.rs) into
//! one u32 slot of a flags buffer, labelled with the layer scope it was recorded in; nothing is
//! read back until `Gpu::finish_finite_checks`, so a checked run stays asynchronous.

use std::sync::Arc;

use super::PooledBuffer;

/// Slots per flags buffer (4 KiB); more buffers are added as checks accumulate.
pub(crate) const SLOTS_PER_BUFFER: usize = 1024;

/// The first tensor, in the order they were computed, that held NaN or Inf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonFinite {
    /// The torchvision module name, or "(outside any layer)".
    pub layer: String,
    /// "output" (forward) or "gradient" (backward).
    pub what: &'static str,
}

impl std::fmt::Display for NonFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} of layer {} holds NaN or Inf",
            self.what, self.layer
        )
    }
}

#[derive(Default)]
pub(crate) struct FiniteChecks {
    pub(crate) buffers: Vec<PooledBuffer>,
    /// Per slot, in recording order: the layer and what was checked.
    pub(crate) labels: Vec<(Arc<str>, &'static str)>,
}

impl FiniteChecks {
    /// The first flagged slot's label, given every buffer's flags in order.
    pub(crate) fn first_flagged(&self, flags: &[u32]) -> Option<NonFinite> {
        let slot = flags.iter().position(|&flag| flag != 0)?;
        let (layer, what) = self.labels.get(slot)?;
        Some(NonFinite {
            layer: match layer.as_ref() {
                "" => "(outside any layer)".to_string(),
                layer => layer.to_string(),
            },
            what,
        })
    }
}
