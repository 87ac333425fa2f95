//! Per-kernel timing: which layer each dispatch belongs to, and how long it ran.
//!
//! While profiling is on, every dispatch carries an [`Attribution`]: the innermost layer scope
//! open when it was recorded (torchvision's module name, entered by the layers and models), the
//! phase (forward or backward), its arithmetic and the bytes its bindings cover. The batch then
//! encodes each dispatch in a compute pass of its own with timestamp writes when the adapter has
//! timestamp queries, or submits and waits for each dispatch alone and times it on the host
//! when it has not (never in a browser, which cannot wait). Timestamps are resolved into a
//! staging buffer per batch and read back when profiling finishes. Either way profiling
//! serialises the work: a profiled run is slower than a plain one, and its total is the sum of
//! kernel times, not the wall time of an unprofiled run.

use std::collections::HashMap;
use std::sync::Arc;

use super::clock::Instant;

/// The part of a step a dispatch belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Forward,
    Backward,
    /// Optimiser steps.
    Update,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Forward => "forward",
            Phase::Backward => "backward",
            Phase::Update => "update",
        }
    }
}

/// How the kernel times were measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimingSource {
    /// GPU timestamp queries written at the start and end of each kernel's compute pass.
    GpuTimestamps,
    /// Host wall time around a submission of the kernel alone and a wait for it: includes
    /// submission and wake-up overhead, so small kernels look slower than they are.
    HostSynchronised,
}

impl TimingSource {
    pub fn describe(self) -> &'static str {
        match self {
            TimingSource::GpuTimestamps => "GPU timestamp queries",
            TimingSource::HostSynchronised => {
                "host timing of each kernel submitted alone (no timestamp queries on this adapter)"
            }
        }
    }
}

/// What a profiled dispatch is charged to.
#[derive(Clone, Debug)]
pub(crate) struct Attribution {
    pub(crate) layer: Arc<str>,
    pub(crate) phase: Phase,
    pub(crate) flops: u64,
    pub(crate) bytes: u64,
}

/// One kernel's run.
#[derive(Clone, Debug)]
pub struct KernelTiming {
    /// The innermost layer scope (torchvision module name); empty outside any.
    pub layer: String,
    pub phase: Phase,
    /// `shader::entry`.
    pub kernel: String,
    pub workgroups: [u32; 3],
    /// Floating-point operations (a multiply-add counts two); 0 where the kernel does not count
    /// them (data movement, elementwise).
    pub flops: u64,
    /// The bytes its storage bindings cover: each read or written range once.
    pub bytes: u64,
    /// Start and end, in nanoseconds since profiling began.
    pub start_ns: f64,
    pub end_ns: f64,
}

impl KernelTiming {
    pub fn duration_ns(&self) -> f64 {
        (self.end_ns - self.start_ns).max(0.0)
    }
}

/// Everything recorded between `Gpu::start_profiling` and `Gpu::finish_profiling`.
#[derive(Clone, Debug)]
pub struct Profile {
    pub source: TimingSource,
    pub kernels: Vec<KernelTiming>,
    /// Per layer: the first input's shape of its first op and the output shape of its last
    /// (forward ops only).
    pub shapes: HashMap<String, (Vec<usize>, Vec<usize>)>,
}

impl Profile {
    pub fn total_ns(&self) -> f64 {
        self.kernels.iter().map(KernelTiming::duration_ns).sum()
    }
}

/// The profiler's state inside the context.
pub(crate) struct Profiler {
    pub(crate) source: TimingSource,
    phase: Phase,
    /// Host instant of profiling's start (host timing) ...
    pub(crate) host_origin: Instant,
    /// ... or the first GPU timestamp seen, in nanoseconds (GPU timing).
    pub(crate) gpu_origin_ns: Option<f64>,
    pub(crate) kernels: Vec<KernelTiming>,
    pub(crate) shapes: HashMap<String, (Vec<usize>, Vec<usize>)>,
    /// Timestamped batches not read back yet, in submission order.
    pub(crate) pending: Vec<PendingTimestamps>,
}

/// One submitted batch's timestamps: each kernel's start and end, resolved into `staging`.
pub(crate) struct PendingTimestamps {
    pub(crate) staging: wgpu::Buffer,
    pub(crate) kernels: Vec<(Attribution, String, [u32; 3])>,
    /// Nanoseconds per tick.
    pub(crate) period_ns: f64,
}

impl Profiler {
    pub(crate) fn new(source: TimingSource) -> Self {
        Self {
            source,
            phase: Phase::Forward,
            host_origin: Instant::now(),
            gpu_origin_ns: None,
            kernels: Vec::new(),
            shapes: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// Notes a forward op's shapes in its layer `scope` (see `Profile::shapes`).
    pub(crate) fn note_shapes(&mut self, scope: &str, input: &[usize], output: &[usize]) {
        if self.phase != Phase::Forward {
            return;
        }
        self.shapes
            .entry(scope.to_string())
            .and_modify(|(_, last)| *last = output.to_vec())
            .or_insert_with(|| (input.to_vec(), output.to_vec()));
    }

    pub(crate) fn attribution(&self, layer: Arc<str>, flops: u64, bytes: u64) -> Attribution {
        Attribution {
            layer,
            phase: self.phase,
            flops,
            bytes,
        }
    }

    /// Sets the phase and returns the previous one.
    pub(crate) fn swap_phase(&mut self, phase: Phase) -> Phase {
        std::mem::replace(&mut self.phase, phase)
    }

    /// Records GPU-timestamped kernels: `ticks` holds each kernel's start and end.
    pub(crate) fn record_timestamps(
        &mut self,
        kernels: Vec<(Attribution, String, [u32; 3])>,
        ticks: &[u64],
        period_ns: f64,
    ) {
        for (index, (attribution, kernel, workgroups)) in kernels.into_iter().enumerate() {
            let start = ticks[2 * index] as f64 * period_ns;
            let end = ticks[2 * index + 1] as f64 * period_ns;
            let origin = *self.gpu_origin_ns.get_or_insert(start);
            self.push(
                attribution,
                kernel,
                workgroups,
                start - origin,
                end - origin,
            );
        }
    }

    /// Records a host-timed kernel.
    pub(crate) fn record_host(
        &mut self,
        attribution: Attribution,
        kernel: String,
        workgroups: [u32; 3],
        started: Instant,
        ended: Instant,
    ) {
        let since = |instant: Instant| {
            instant
                .saturating_duration_since(self.host_origin)
                .as_nanos() as f64
        };
        let (start, end) = (since(started), since(ended));
        self.push(attribution, kernel, workgroups, start, end);
    }

    fn push(
        &mut self,
        attribution: Attribution,
        kernel: String,
        workgroups: [u32; 3],
        start_ns: f64,
        end_ns: f64,
    ) {
        self.kernels.push(KernelTiming {
            layer: attribution.layer.to_string(),
            phase: attribution.phase,
            kernel,
            workgroups,
            flops: attribution.flops,
            bytes: attribution.bytes,
            start_ns,
            end_ns,
        });
    }
}

thread_local! {
    /// The open layer scopes of this thread, innermost last: work is charged to the layer of
    /// the thread that records it.
    static SCOPES: std::cell::RefCell<Vec<Arc<str>>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(crate) fn push_scope(name: Arc<str>) -> ScopeGuard {
    SCOPES.with_borrow_mut(|scopes| scopes.push(name));
    ScopeGuard { _private: () }
}

pub(crate) fn current_scope() -> Option<Arc<str>> {
    SCOPES.with_borrow(|scopes| scopes.last().cloned())
}

/// Closes a layer scope when dropped (see `Gpu::scope`).
#[must_use = "the scope closes when this guard is dropped"]
pub struct ScopeGuard {
    _private: (),
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        SCOPES.with_borrow_mut(|scopes| scopes.pop());
    }
}

/// Restores the previous phase when dropped (see `Gpu::phase`).
#[must_use = "the phase is restored when this guard is dropped"]
pub struct PhaseGuard {
    pub(crate) gpu: Option<super::Gpu>,
    pub(crate) previous: Phase,
}

impl Drop for PhaseGuard {
    fn drop(&mut self) {
        if let Some(gpu) = &self.gpu {
            let previous = self.previous;
            gpu.with_profiler(|profiler| {
                profiler.swap_phase(previous);
            });
        }
    }
}
