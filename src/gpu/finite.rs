//! `--check-finite`: which layer first produced NaN or Inf. While checks are on, every op
//! output and every gradient the tape computes is flagged on the GPU (kernels/finite.rs) into
//! one u32 slot of a flags buffer, labelled with the layer scope it was recorded in; nothing is
//! read back until `Gpu::finish_finite_checks`, so a checked run stays asynchronous.

use std::sync::Arc;

use super::pool::FirstWrite;
use super::{BufferRange, Gpu, PooledBuffer};
use crate::error::Result;

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

impl Gpu {
    /// Starts flagging every op output and gradient the tape computes that holds NaN or Inf
    /// (`--check-finite`); see [`Gpu::finish_finite_checks`].
    pub fn start_finite_checks(&self) {
        *self.inner.finite_checks.lock().expect("finite lock") = Some(FiniteChecks::default());
    }

    /// Stops checking and names the first tensor, in the order they were computed, that held
    /// NaN or Inf; `None` when all were finite (or checks were never started).
    pub async fn finish_finite_checks(&self) -> Result<Option<NonFinite>> {
        let checks = self.inner.finite_checks.lock().expect("finite lock").take();
        let Some(checks) = checks else {
            return Ok(None);
        };
        let mut flags = Vec::with_capacity(checks.labels.len());
        for buffer in &checks.buffers {
            let size = (SLOTS_PER_BUFFER * 4) as u64;
            let bytes = self
                .read_async(buffer.buffer(), 0, size, "finite flags")
                .await?;
            flags.extend(bytemuck::pod_collect_to_vec::<u8, u32>(&bytes));
        }
        Ok(checks.first_flagged(&flags))
    }

    /// When checks are on: a zeroed slot for one more checked tensor, labelled with the
    /// current layer and `what` — the flags buffer's binding and the slot's index in it.
    pub(crate) fn finite_check_slot(
        &self,
        what: &'static str,
    ) -> Result<Option<(BufferRange, u32)>> {
        let mut guard = self.inner.finite_checks.lock().expect("finite lock");
        let Some(checks) = guard.as_mut() else {
            return Ok(None);
        };
        let slot = checks.labels.len();
        if slot / SLOTS_PER_BUFFER == checks.buffers.len() {
            let bytes = (SLOTS_PER_BUFFER * 4) as u64;
            let buffer = self.allocate(bytes, "finite-check flags", FirstWrite::Upload)?;
            self.upload(buffer.buffer(), &vec![0u8; bytes as usize]);
            checks.buffers.push(buffer);
        }
        let layer = self.current_scope().unwrap_or_else(|| Arc::from(""));
        checks.labels.push((layer, what));
        let buffer = &checks.buffers[slot / SLOTS_PER_BUFFER];
        let range = BufferRange {
            buffer: buffer.buffer().clone(),
            offset: 0,
            size: (SLOTS_PER_BUFFER * 4) as u64,
            dims: Vec::new(),
        };
        Ok(Some((range, (slot % SLOTS_PER_BUFFER) as u32)))
    }
}
