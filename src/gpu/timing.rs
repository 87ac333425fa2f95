//! The context's profiling switches and the scopes and phases dispatches are charged to
//! (the profiler itself is in profile.rs).

use std::sync::Arc;

use super::profile::{self, Phase, PhaseGuard, Profile, Profiler, ScopeGuard, TimingSource};
use super::{Gpu, readback};
use crate::error::{Error, Result};

impl Gpu {
    /// Starts timing every dispatch (see [`Profile`]); work recorded before is submitted first,
    /// untimed. Uses GPU timestamp queries where the adapter has them.
    pub fn start_profiling(&self) -> Result<()> {
        if self.is_profiling() {
            return Err(Error::invalid(
                "start_profiling",
                "profiling is already on (finish it first)",
            ));
        }
        self.synchronize()?;
        let source = match self
            .inner
            .features
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            true => TimingSource::GpuTimestamps,
            // Timing kernels on the host waits for each one: impossible in a browser.
            false if cfg!(target_arch = "wasm32") => {
                return Err(Error::invalid(
                    "start_profiling",
                    "this browser's adapter offers no timestamp queries",
                ));
            }
            false => TimingSource::HostSynchronised,
        };
        *self.inner.profiler.lock().expect("profiler lock") = Some(Profiler::new(source));
        Ok(())
    }

    /// Runs what is pending, stops profiling and returns what it recorded (awaiting the
    /// kernels' timestamps).
    pub async fn finish_profiling(&self) -> Result<Profile> {
        self.synchronize()?;
        let profiler = self.inner.profiler.lock().expect("profiler lock").take();
        let mut profiler = profiler
            .ok_or_else(|| Error::invalid("finish_profiling", "profiling was not started"))?;
        for pending in std::mem::take(&mut profiler.pending) {
            let bytes =
                readback::read_staging(&self.inner.device, &pending.staging, "kernel timestamps")
                    .await?;
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
            profiler.record_timestamps(pending.kernels, &ticks, pending.period_ns);
        }
        self.check_alive()?;
        Ok(Profile {
            source: profiler.source,
            kernels: profiler.kernels,
            shapes: profiler.shapes,
        })
    }

    pub fn is_profiling(&self) -> bool {
        self.inner.profiler.lock().expect("profiler lock").is_some()
    }

    /// Charges the work recorded until the guard drops to the layer `name` (torchvision's
    /// module name): in a profile, and in what `--check-finite` reports.
    pub fn scope(&self, name: &str) -> ScopeGuard {
        self.scope_shared(Arc::from(name))
    }

    /// `scope` with a name already shared (the tape re-enters a recorded op's layer during
    /// backward).
    pub(crate) fn scope_shared(&self, name: Arc<str>) -> ScopeGuard {
        profile::push_scope(name)
    }

    /// The innermost scope open on this thread.
    pub(crate) fn current_scope(&self) -> Option<Arc<str>> {
        profile::current_scope()
    }

    /// Notes an op's input and output shapes for the current layer, when profiling.
    pub(crate) fn note_shapes(&self, input: &[usize], output: &[usize]) {
        let Some(scope) = self.current_scope() else {
            return;
        };
        self.with_profiler(|profiler| profiler.note_shapes(&scope, input, output));
    }

    /// Charges the dispatches recorded until the guard drops to `phase`.
    pub fn phase(&self, phase: Phase) -> PhaseGuard {
        let previous = self.with_profiler(|profiler| profiler.swap_phase(phase));
        PhaseGuard {
            gpu: previous.map(|_| self.clone()),
            previous: previous.unwrap_or(phase),
        }
    }

    /// Runs `action` on the profiler when profiling; `None` otherwise.
    pub(super) fn with_profiler<T>(&self, action: impl FnOnce(&mut Profiler) -> T) -> Option<T> {
        self.inner
            .profiler
            .lock()
            .expect("profiler lock")
            .as_mut()
            .map(action)
    }
}
