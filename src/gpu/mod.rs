//! The GPU context: the only place that touches raw wgpu objects.
//!
//! A `Gpu` is a cheap handle (clone it freely) over one device and queue, the buffer pool, the
//! pipeline cache and the batch of recorded dispatches. Kernels are recorded, not run: the batch
//! is encoded into one command buffer and submitted when it grows large, when data is read back,
//! or on `synchronize`. Nothing blocks until a readback.
//!
//! This file opens the device and answers for its limits; the context's other concerns each
//! have a file: `memory.rs` (buffers, uploads, textures; the pool in `pool.rs`),
//! `pipelines.rs` (the pipeline cache), `submit.rs` (recording dispatches and submitting the
//! batch of `batch.rs`), `readback.rs` (reading back), `timing.rs` and `profile.rs`
//! (profiling), `finite.rs` (`--check-finite`'s flags) and `adapter.rs` (choosing an adapter).

pub mod adapter;
mod batch;
mod clock;
mod error_scope;
mod finite;
pub mod kept_copies;
mod memory;
mod operand_textures;
mod pipelines;
mod pool;
mod profile;
mod readback;
mod submit;
mod textures;
mod timing;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
pub use adapter::AdapterRequest;
use batch::Batch;
use finite::FiniteChecks;
pub use finite::NonFinite;
use pipelines::PipelineCache;
use pool::BufferPool;
pub use pool::PoolStats;
pub(crate) use pool::{FirstWrite, PooledBuffer};
use profile::Profiler;
pub use profile::{KernelTiming, Phase, PhaseGuard, Profile, ScopeGuard, TimingSource};
use textures::ScratchTextures;

/// Optional features gradlens uses when the adapter offers them; never assumed.
const WANTED_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
    .union(wgpu::Features::SHADER_F16)
    .union(wgpu::Features::SUBGROUP);

/// How to open the context.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    pub request: AdapterRequest,
    /// Fill every newly leased tensor buffer with NaN before it is handed out, so a kernel that
    /// leaves an output element unwritten fails its test instead of passing on stale data.
    pub poison_allocations: bool,
    /// Limits below the adapter's, so that tests reach on small tensors the paths that large
    /// ones take (the 2-D grid fold, binding-sized pieces).
    pub caps: LimitCaps,
    /// Choose kernels as if the adapter were of this type: tests run the variants that `Auto`
    /// picks only on GPUs (split-K, a workgroup per column) on a CPU adapter, and check them.
    pub choose_as: Option<wgpu::DeviceType>,
    /// The most bytes of copies kept from call to call (Winograd-domain filters, operand
    /// textures; see `kept_copies.rs`); `None` is `kept_copies::DEFAULT_KEPT_COPY_BYTES`.
    pub kept_copy_bytes: Option<u64>,
}

/// Lower limits for the device than its adapter offers; `None` keeps the adapter's.
#[derive(Clone, Copy, Debug, Default)]
pub struct LimitCaps {
    pub max_workgroups_per_dimension: Option<u32>,
    pub max_binding_bytes: Option<u64>,
}

/// The most bytes one storage binding may cover whatever the adapter allows (Metal allows
/// more): the shaders index elements with u32, and vec4 and byte arithmetic stay far from its
/// overflow below 2^31 bytes.
pub const MAX_BINDING_BYTES: u64 = 1 << 31;

/// The limits gradlens opens a device with: the adapter's own (a browser's defaults are
/// smaller; VGG16's first classifier weight alone is 411 MB), one storage binding capped at
/// `MAX_BINDING_BYTES`, and `caps` applied.
pub fn device_limits(adapter: &wgpu::Limits, caps: LimitCaps) -> wgpu::Limits {
    let mut limits = adapter.clone();
    let cap_binding = caps
        .max_binding_bytes
        .unwrap_or(u64::MAX)
        .min(MAX_BINDING_BYTES);
    limits.max_storage_buffer_binding_size =
        limits.max_storage_buffer_binding_size.min(cap_binding);
    if let Some(cap) = caps.max_workgroups_per_dimension {
        limits.max_compute_workgroups_per_dimension =
            limits.max_compute_workgroups_per_dimension.min(cap);
    }
    limits
}

/// A range of a buffer bound to a kernel's binding slot.
#[derive(Clone)]
pub(crate) struct BufferRange {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) offset: u64,
    pub(crate) size: u64,
    /// The shape of the tensor bound (empty for other buffers), for error messages.
    pub(crate) dims: Vec<usize>,
}

#[derive(Clone)]
pub struct Gpu {
    inner: Arc<GpuInner>,
}

struct GpuInner {
    adapter_info: wgpu::AdapterInfo,
    features: wgpu::Features,
    limits: wgpu::Limits,
    device: wgpu::Device,
    queue: wgpu::Queue,
    pool: Arc<Mutex<BufferPool>>,
    scratch_textures: Arc<Mutex<ScratchTextures>>,
    /// Bound where a kernel declares a texture that the chosen path leaves unread.
    placeholder_texture: wgpu::TextureView,
    pipelines: PipelineCache,
    batch: Mutex<Batch>,
    /// Set between `start_profiling` and `finish_profiling`.
    profiler: Mutex<Option<Profiler>>,
    /// Set between `start_finite_checks` and `finish_finite_checks`.
    finite_checks: Mutex<Option<FiniteChecks>>,
    /// The FLOPs of every counted dispatch recorded so far.
    flops_recorded: AtomicU64,
    /// The buffer reads back to the host so far (`Gpu::readbacks`).
    readbacks: AtomicU64,
    /// Bytes of uploads staged since `Gpu::upload` last handed them to the queue.
    staged_upload_bytes: AtomicU64,
    /// The adapter type kernel selection goes by (`GpuOptions::choose_as`).
    chooses_as: wgpu::DeviceType,
    /// Errors wgpu reported outside any error scope (its default handler would panic).
    uncaptured: Arc<Mutex<Vec<String>>>,
    lost: Arc<Mutex<Option<String>>>,
    poison_allocations: bool,
    /// The NaNs new allocations are filled from when `poison_allocations` is set.
    poison_source: Mutex<Option<wgpu::Buffer>>,
}

impl Gpu {
    /// Opens the adapter chosen by `GRADLENS_BACKEND` / `GRADLENS_ADAPTER`, or the best one,
    /// keeping as many bytes of kept copies as `GRADLENS_KEPT_COPIES_MIB` says.
    pub fn new() -> Result<Self> {
        Self::with_options(GpuOptions {
            request: AdapterRequest::from_env()?,
            kept_copy_bytes: kept_copies::budget_from_env()?,
            ..GpuOptions::default()
        })
    }

    pub fn with_options(options: GpuOptions) -> Result<Self> {
        // One context opened at a time per process: two threads opening theirs at once hung
        // in NVIDIA's Vulkan driver (580.159, an H200: tests that each open a context).
        static OPENING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = OPENING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let ranked = adapter::enumerate_ranked(&options.request);
        let chosen = adapter::choose(ranked, &options.request)?;
        pollster::block_on(Self::open_with(chosen, &options))
    }

    /// Opens a device on `adapter` with everything it offers that gradlens uses: its own
    /// limits (a browser's defaults are smaller) and the wanted optional features. The browser
    /// front chooses its adapter itself and comes in here.
    pub async fn open(adapter: wgpu::Adapter, poison_allocations: bool) -> Result<Self> {
        let options = GpuOptions {
            poison_allocations,
            ..GpuOptions::default()
        };
        Self::open_with(adapter, &options).await
    }

    /// `open` with the options tests set (`caps`, `choose_as`); the request is already met.
    async fn open_with(adapter: wgpu::Adapter, options: &GpuOptions) -> Result<Self> {
        let poison_allocations = options.poison_allocations;
        let adapter_info = adapter.get_info();
        let chooses_as = options.choose_as.unwrap_or(adapter_info.device_type);
        let limits = device_limits(&adapter.limits(), options.caps);
        let features = adapter.features() & WANTED_FEATURES;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("gradlens"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::default(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|error| Error::RequestDevice {
                adapter: adapter::describe(&adapter_info),
                message: error.to_string(),
            })?;

        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            if let Ok(mut errors) = sink.lock() {
                errors.push(error.to_string());
            }
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut lost) = lost_sink.lock() {
                *lost = Some(format!("{message} ({reason:?})"));
            }
        });

        let kept_copy_budget = options
            .kept_copy_bytes
            .unwrap_or(kept_copies::DEFAULT_KEPT_COPY_BYTES);
        let pool = Arc::new(Mutex::new(BufferPool::new(kept_copy_budget)));
        let placeholder_texture = textures::create(&device, "gradlens placeholder texture", 1, 1)
            .create_view(&wgpu::TextureViewDescriptor::default());
        Ok(Self {
            inner: Arc::new(GpuInner {
                adapter_info,
                features,
                limits,
                device,
                queue,
                pool: pool.clone(),
                scratch_textures: Arc::new(Mutex::new(ScratchTextures::new(pool))),
                placeholder_texture,
                pipelines: PipelineCache::default(),
                batch: Mutex::default(),
                profiler: Mutex::default(),
                finite_checks: Mutex::default(),
                flops_recorded: AtomicU64::new(0),
                readbacks: AtomicU64::new(0),
                chooses_as,
                uncaptured,
                lost,
                poison_allocations,
                poison_source: Mutex::default(),
                staged_upload_bytes: AtomicU64::new(0),
            }),
        })
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.adapter_info
    }

    /// The optional features enabled on this device (a subset of what gradlens wants).
    pub fn features(&self) -> wgpu::Features {
        self.inner.features
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// One line naming the adapter, its type and backend.
    pub fn describe(&self) -> String {
        adapter::describe(&self.inner.adapter_info)
    }

    /// The number of distinct pipelines compiled so far.
    pub fn pipeline_count(&self) -> usize {
        self.inner.pipelines.len()
    }

    pub(crate) fn poisons_allocations(&self) -> bool {
        self.inner.poison_allocations
    }

    /// The largest range one storage binding may cover on this device.
    pub(crate) fn max_binding_bytes(&self) -> u64 {
        self.inner.limits.max_storage_buffer_binding_size
    }

    /// Whether kernels are chosen for a CPU adapter (lavapipe, llvmpipe, SwiftShader): the
    /// adapter's type unless `GpuOptions::choose_as` says otherwise.
    pub fn chooses_for_cpu(&self) -> bool {
        self.inner.chooses_as == wgpu::DeviceType::Cpu
    }

    pub(crate) fn max_workgroups_per_dimension(&self) -> u32 {
        self.inner.limits.max_compute_workgroups_per_dimension
    }

    /// Destroys the device at once, as a driver reset would: its memory is freed and every
    /// later call on this context fails with `Error::DeviceLost` (tests of device loss use it).
    pub fn destroy_device(&self) {
        self.inner.device.destroy();
    }

    pub(super) fn check_lost(&self) -> Result<()> {
        match self.inner.lost.lock().expect("lost lock").clone() {
            Some(reason) => Err(Error::DeviceLost { reason }),
            None => Ok(()),
        }
    }

    /// Fails if the device is lost or wgpu reported an error outside an error scope.
    pub(super) fn check_alive(&self) -> Result<()> {
        self.check_lost()?;
        let mut uncaptured = self.inner.uncaptured.lock().expect("error lock");
        if let Some(message) = uncaptured.drain(..).next() {
            return Err(Error::Validation {
                kernel: "(outside any kernel)".into(),
                message,
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.describe())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_never_exceeds_two_gibibytes_and_caps_only_lower() {
        let metal_like = wgpu::Limits {
            max_storage_buffer_binding_size: 4 << 30,
            max_compute_workgroups_per_dimension: 65_535,
            ..wgpu::Limits::default()
        };
        let limits = device_limits(&metal_like, LimitCaps::default());
        assert_eq!(limits.max_storage_buffer_binding_size, MAX_BINDING_BYTES);
        assert_eq!(limits.max_compute_workgroups_per_dimension, 65_535);

        let caps = LimitCaps {
            max_workgroups_per_dimension: Some(256),
            max_binding_bytes: Some(1 << 20),
        };
        let capped = device_limits(&metal_like, caps);
        assert_eq!(capped.max_storage_buffer_binding_size, 1 << 20);
        assert_eq!(capped.max_compute_workgroups_per_dimension, 256);

        let small = wgpu::Limits {
            max_storage_buffer_binding_size: 128 << 20,
            ..wgpu::Limits::default()
        };
        let raised = LimitCaps {
            max_workgroups_per_dimension: Some(1 << 20),
            max_binding_bytes: Some(1 << 40),
        };
        let kept = device_limits(&small, raised);
        assert_eq!(kept.max_storage_buffer_binding_size, 128 << 20);
        assert_eq!(
            kept.max_compute_workgroups_per_dimension,
            small.max_compute_workgroups_per_dimension
        );
    }
}
