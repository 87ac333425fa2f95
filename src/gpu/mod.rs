//! The GPU context: the only place that touches raw wgpu objects.
//!
//! A `Gpu` is a cheap handle (clone it freely) over one device and queue, the buffer pool, the
//! pipeline cache and the batch of recorded dispatches. Kernels are recorded, not run: the batch
//! is encoded into one command buffer and submitted when it grows large, when data is read back,
//! or on `synchronize`. Nothing blocks until a readback.

pub mod adapter;
mod batch;
mod clock;
mod error_scope;
mod finite;
mod operand_textures;
mod pipelines;
mod pool;
mod profile;
mod readback;
mod textures;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::shaders::{BindingKind, Kernel, Uniform};
pub use adapter::AdapterRequest;
use batch::{Batch, Dispatch, Step, TextureCopy};
use error_scope::scoped;
pub use finite::NonFinite;
use finite::{FiniteChecks, SLOTS_PER_BUFFER};
pub(crate) use operand_textures::OperandTexture;
use pipelines::PipelineCache;
use pool::BufferPool;
pub use pool::PoolStats;
pub(crate) use pool::PooledBuffer;
use profile::Profiler;
pub use profile::{KernelTiming, Phase, PhaseGuard, Profile, ScopeGuard, TimingSource};
pub(crate) use textures::ScratchTexture;
use textures::{BYTES_PER_TEXEL, ScratchTextures};

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
    /// Errors wgpu reported outside any error scope (its default handler would panic).
    uncaptured: Arc<Mutex<Vec<String>>>,
    lost: Arc<Mutex<Option<String>>>,
    poison_allocations: bool,
}

impl Gpu {
    /// Opens the adapter chosen by `GRADLENS_BACKEND` / `GRADLENS_ADAPTER`, or the best one.
    pub fn new() -> Result<Self> {
        Self::with_options(GpuOptions {
            request: AdapterRequest::from_env()?,
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
        pollster::block_on(Self::open(chosen, options.poison_allocations))
    }

    /// Opens a device on `adapter` with everything it offers that gradlens uses: its own
    /// limits (a browser's defaults are smaller) and the wanted optional features. The browser
    /// front chooses its adapter itself and comes in here.
    pub async fn open(adapter: wgpu::Adapter, poison_allocations: bool) -> Result<Self> {
        let adapter_info = adapter.get_info();
        // The adapter's own limits, not wgpu's conservative defaults: VGG16's first classifier
        // weight alone is 411 MB.
        let limits = adapter.limits();
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

        let pool = Arc::new(Mutex::new(BufferPool::default()));
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
                uncaptured,
                lost,
                poison_allocations,
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

    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pool.lock().expect("pool lock").stats()
    }

    /// Starts a new high-water mark for `PoolStats::peak_in_use_bytes`.
    pub fn reset_peak_memory(&self) {
        self.inner.pool.lock().expect("pool lock").reset_peak();
    }

    /// Destroys the pool's free buffers (after `synchronize`, so none is still in flight).
    pub fn trim_pool(&self) -> Result<()> {
        self.synchronize()?;
        self.inner.pool.lock().expect("pool lock").trim();
        Ok(())
    }

    /// The floating-point operations of every convolution and matrix product recorded so far
    /// (the difference over a forward pass is its FLOPs).
    pub fn flops_recorded(&self) -> u64 {
        self.inner.flops_recorded.load(Ordering::Relaxed)
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

    pub(crate) fn max_workgroups_per_dimension(&self) -> u32 {
        self.inner.limits.max_compute_workgroups_per_dimension
    }

    /// Leases a storage buffer of at least `bytes` bytes from the pool.
    pub(crate) fn allocate(&self, bytes: u64, what: &str) -> Result<PooledBuffer> {
        let max = self.inner.limits.max_buffer_size;
        if bytes > max {
            return Err(Error::InvalidArgument {
                op: "allocate",
                message: format!(
                    "{what} needs {bytes} bytes, more than this adapter's largest buffer ({max} bytes)"
                ),
            });
        }
        let class = pool::size_class(bytes).min(max.max(bytes));
        let reused = self.inner.pool.lock().expect("pool lock").take(class);
        let buffer = match reused {
            Some(buffer) => buffer,
            None => {
                self.check_alive()?;
                let device = &self.inner.device;
                let (buffer, error) = scoped(device, wgpu::ErrorFilter::OutOfMemory, || {
                    device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some(what),
                        size: class,
                        usage: pool::TENSOR_USAGE,
                        mapped_at_creation: false,
                    })
                });
                if error.is_some() {
                    return Err(Error::OutOfMemory {
                        during: format!("allocating {bytes} bytes for {what}"),
                    });
                }
                self.inner
                    .pool
                    .lock()
                    .expect("pool lock")
                    .note_created(class);
                buffer
            }
        };
        Ok(PooledBuffer::new(buffer, class, self.inner.pool.clone()))
    }

    /// A scratch rgba32float texture of `width` × `height` texels, filled by
    /// `copy_into_texture` and read by kernels as a read-only storage texture, leased until the
    /// returned guard drops (hold it until every dispatch that reads it is recorded). Its
    /// contents are whatever was last copied into it.
    pub(crate) fn scratch_texture(&self, width: u32, height: u32) -> Result<ScratchTexture> {
        let max = self.inner.limits.max_texture_dimension_2d;
        if width == 0 || height == 0 || width > max || height > max {
            return Err(Error::invalid(
                "scratch_texture",
                format!("{width} × {height} texels; the device allows 1 to {max} per side"),
            ));
        }
        let owner = &self.inner.scratch_textures;
        Ok(ScratchTexture::lease(
            owner,
            &self.inner.device,
            width,
            height,
        ))
    }

    /// The texture copy of `range` laid out as `copy_into_texture` lays it, `width` × `height`
    /// texels: kept from an earlier call while the buffer has not been written since, else
    /// copied now and kept (see `operand_textures.rs`). For operands that stay the same from
    /// product to product, such as weights.
    pub(crate) fn operand_texture(
        &self,
        range: &BufferRange,
        width: u32,
        height: u32,
    ) -> Result<OperandTexture> {
        let key = (range.buffer.clone(), range.offset, range.size);
        let generation = {
            let mut pool = self.inner.pool.lock().expect("pool lock");
            if let Some(kept) = pool.operand_texture(&key) {
                return Ok(kept);
            }
            pool.write_generation(&range.buffer)
        };
        self.check_alive()?;
        let texture = textures::create(
            &self.inner.device,
            "gradlens operand texture",
            width,
            height,
        );
        self.copy_into_texture(range, &texture)?;
        let kept = OperandTexture {
            view: texture.create_view(&wgpu::TextureViewDescriptor::default()),
            width,
            bytes: textures::bytes_of((width, height)),
        };
        self.inner
            .pool
            .lock()
            .expect("pool lock")
            .keep_operand_texture(key, kept.clone(), generation);
        Ok(kept)
    }

    /// `buffer` is about to be written: its kept texture copies go, its write generation
    /// moves on.
    fn note_written(&self, buffer: &wgpu::Buffer) {
        self.inner
            .pool
            .lock()
            .expect("pool lock")
            .note_written(buffer);
    }

    /// How many writes `buffer` has seen (see `BufferPool::write_generation`).
    pub(crate) fn write_generation(&self, buffer: &wgpu::Buffer) -> u64 {
        self.inner
            .pool
            .lock()
            .expect("pool lock")
            .write_generation(buffer)
    }

    /// A 1×1 rgba32float texture for a kernel's texture binding that goes unread.
    pub(crate) fn placeholder_texture(&self) -> wgpu::TextureView {
        self.inner.placeholder_texture.clone()
    }

    /// Copies host data into a buffer. Safe for freshly leased buffers only: the pool never
    /// hands out a buffer that a pending dispatch still uses, whereas an existing tensor may be
    /// read by a pending dispatch, so `overwrite` flushes first.
    pub(crate) fn upload(&self, buffer: &wgpu::Buffer, bytes: &[u8]) {
        self.note_written(buffer);
        if !bytes.is_empty() {
            self.inner.queue.write_buffer(buffer, 0, bytes);
        }
    }

    /// Overwrites a buffer that pending dispatches may read or write.
    pub(crate) fn overwrite(&self, buffer: &wgpu::Buffer, offset: u64, bytes: &[u8]) -> Result<()> {
        self.flush()?;
        self.note_written(buffer);
        if !bytes.is_empty() {
            self.inner.queue.write_buffer(buffer, offset, bytes);
        }
        Ok(())
    }

    /// Records one dispatch of `kernel` doing `flops` floating-point operations (the
    /// profiler's GFLOP/s): `params` goes to binding 0 as a uniform, `storage` and `textures`
    /// list the other bindings by slot. Checked here: the slots against the entry's
    /// declaration, binding sizes against the device limit and the workgroup counts against
    /// the per-dimension limit. Launchers reach it through `kernels::Launch`.
    pub(crate) fn dispatch<P: Uniform>(
        &self,
        kernel: &Kernel<P>,
        params: &P,
        storage: &[(u32, BufferRange)],
        textures: &[(u32, wgpu::TextureView)],
        workgroups: [u32; 3],
        flops: u64,
    ) -> Result<()> {
        self.check_alive()?;
        check_bound_slots(kernel, storage, textures)?;
        let max_binding = self.max_binding_bytes();
        for (_, range) in storage {
            if range.size > max_binding {
                return Err(Error::BindingTooLarge {
                    kernel: kernel.label(),
                    tensor: format!("a tensor of shape {:?}", range.dims),
                    bytes: range.size,
                    limit: max_binding,
                });
            }
        }
        let max_groups = self.max_workgroups_per_dimension();
        if workgroups.iter().any(|&count| count > max_groups) {
            return Err(Error::invalid(
                "dispatch",
                format!(
                    "kernel {} needs {workgroups:?} workgroups; the limit is {max_groups} per dimension",
                    kernel.label()
                ),
            ));
        }
        let pipeline = self.inner.pipelines.get(&self.inner.device, kernel)?;
        for (slot, range) in storage {
            if pipeline.writable.contains(slot) {
                self.note_written(&range.buffer);
            }
        }
        self.inner
            .flops_recorded
            .fetch_add(flops, Ordering::Relaxed);
        let layer = self.current_scope();
        let attribution = self.with_profiler(|profiler| {
            let bytes = storage.iter().map(|(_, range)| range.size).sum();
            profiler.attribution(layer.unwrap_or_else(|| Arc::from("")), flops, bytes)
        });
        let mut batch = self.inner.batch.lock().expect("batch lock");
        batch.push(Step::Dispatch(Dispatch {
            pipeline,
            params: bytemuck::bytes_of(params).to_vec(),
            storage: storage.to_vec(),
            textures: textures.to_vec(),
            workgroups,
            attribution,
        }));
        if batch.is_full() {
            self.flush_locked(&mut batch)?;
        }
        Ok(())
    }

    /// Records a copy of `source` into `texture`'s first texels, row after row: texel i gets
    /// bytes 16·i .. 16·i + 16 of the range (a straight copy, far cheaper than a kernel storing
    /// texels on lavapipe). The texture's rows must be whole multiples of 256 bytes (widths in
    /// multiples of 16 texels) and the range whole texels at a 16-byte offset.
    pub(crate) fn copy_into_texture(
        &self,
        source: &BufferRange,
        texture: &wgpu::Texture,
    ) -> Result<()> {
        self.check_alive()?;
        let (width, height) = (texture.width(), texture.height());
        let texels = source.size / BYTES_PER_TEXEL;
        if !source.size.is_multiple_of(BYTES_PER_TEXEL)
            || !source.offset.is_multiple_of(BYTES_PER_TEXEL)
            || width % 16 != 0
            || texels > u64::from(width) * u64::from(height)
        {
            return Err(Error::invalid(
                "copy_into_texture",
                format!(
                    "{} bytes at offset {} do not fill whole texels of a {width} × {height} texture",
                    source.size, source.offset
                ),
            ));
        }
        let attribution = self.with_profiler(|profiler| {
            let layer = self.current_scope().unwrap_or_else(|| Arc::from(""));
            profiler.attribution(layer, 0, source.size)
        });
        let mut batch = self.inner.batch.lock().expect("batch lock");
        batch.push(Step::TextureCopy(TextureCopy {
            source: source.clone(),
            texture: texture.clone(),
            texels: texels as u32,
            attribution,
        }));
        if batch.is_full() {
            self.flush_locked(&mut batch)?;
        }
        Ok(())
    }

    /// Submits every recorded dispatch; returns without waiting for the GPU.
    pub fn flush(&self) -> Result<()> {
        let mut batch = self.inner.batch.lock().expect("batch lock");
        self.flush_locked(&mut batch)
    }

    fn flush_locked(&self, batch: &mut Batch) -> Result<()> {
        let inner = &self.inner;
        let alignment = u64::from(inner.limits.min_uniform_buffer_offset_alignment);
        let mut profiler = inner.profiler.lock().expect("profiler lock");
        let result = batch.submit(&inner.device, &inner.queue, alignment, profiler.as_mut());
        drop(profiler);
        // Whatever happened, the quarantined buffers are no longer needed by unsubmitted work.
        inner.pool.lock().expect("pool lock").end_quarantine();
        if result.is_err() {
            // A lost device makes every object invalid: report the loss, not the first invalid
            // object (the loss callback runs on a poll).
            let _ = inner.device.poll(wgpu::PollType::Poll);
            self.check_lost()?;
        }
        result?;
        self.check_alive()
    }

    /// Submits everything and waits until the GPU has finished it.
    pub fn synchronize(&self) -> Result<()> {
        self.flush()?;
        self.wait()
    }

    fn wait(&self) -> Result<()> {
        readback::wait_idle(&self.inner.device)?;
        self.check_alive()
    }

    /// Reads `size` bytes at `offset` of `buffer` back to the host, after all recorded work,
    /// blocking until the GPU is done. Natively only: in a browser this is an error, and
    /// `read_async` is awaited instead.
    pub(crate) fn read(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        size: u64,
        what: &str,
    ) -> Result<Vec<u8>> {
        if cfg!(target_arch = "wasm32") {
            return Err(Error::Readback {
                what: what.to_string(),
                message: "a browser cannot wait for the GPU; await the async readback".into(),
            });
        }
        pollster::block_on(self.read_async(buffer, offset, size, what))
    }

    /// Reads `size` bytes at `offset` of `buffer` back to the host, after all recorded work.
    pub(crate) async fn read_async(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        size: u64,
        what: &str,
    ) -> Result<Vec<u8>> {
        self.flush()?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        let staging = inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = inner
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, size);
        inner.queue.submit(Some(encoder.finish()));
        let bytes = readback::read_staging(&inner.device, &staging, what).await?;
        self.check_alive()?;
        Ok(bytes)
    }

    /// Destroys the device at once, as a driver reset would: its memory is freed and every
    /// later call on this context fails with `Error::DeviceLost` (tests of device loss use it).
    pub fn destroy_device(&self) {
        self.inner.device.destroy();
    }

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

    /// Starts flagging every op output and gradient the tape computes that holds NaN or Inf
    /// (`--check-finite`); see [`Gpu::finish_finite_checks`].
    pub fn start_finite_checks(&self) {
        *self.inner.finite_checks.lock().expect("finite lock") = Some(FiniteChecks::default());
    }

    /// Stops checking and names the first tensor, in the order they were computed, that held
    /// NaN or Inf; `None` when all were finite (or checks were never started).
    pub fn finish_finite_checks(&self) -> Result<Option<NonFinite>> {
        let checks = self.inner.finite_checks.lock().expect("finite lock").take();
        let Some(checks) = checks else {
            return Ok(None);
        };
        let mut flags = Vec::with_capacity(checks.labels.len());
        for buffer in &checks.buffers {
            let bytes = self.read(
                buffer.buffer(),
                0,
                (SLOTS_PER_BUFFER * 4) as u64,
                "finite flags",
            )?;
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
            let buffer = self.allocate(bytes, "finite-check flags")?;
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

    /// Runs `action` on the profiler when profiling; `None` otherwise.
    fn with_profiler<T>(&self, action: impl FnOnce(&mut Profiler) -> T) -> Option<T> {
        self.inner
            .profiler
            .lock()
            .expect("profiler lock")
            .as_mut()
            .map(action)
    }

    fn check_lost(&self) -> Result<()> {
        match self.inner.lost.lock().expect("lost lock").clone() {
            Some(reason) => Err(Error::DeviceLost { reason }),
            None => Ok(()),
        }
    }

    /// Fails if the device is lost or wgpu reported an error outside an error scope.
    fn check_alive(&self) -> Result<()> {
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

/// A launcher binds exactly the buffers and textures its entry declares (the interface test
/// holds the declarations to the shader): caught here, naming the kernel, before wgpu's
/// validation would reject the bind group.
fn check_bound_slots<P>(
    kernel: &Kernel<P>,
    storage: &[(u32, BufferRange)],
    textures: &[(u32, wgpu::TextureView)],
) -> Result<()> {
    let declared = |texture: bool| {
        let mut slots: Vec<u32> = kernel
            .entry()
            .bindings
            .iter()
            .filter(|binding| (binding.kind == BindingKind::ReadOnlyTexture) == texture)
            .map(|binding| binding.slot)
            .collect();
        slots.sort_unstable();
        slots
    };
    let bound = |slots: &mut dyn Iterator<Item = u32>| {
        let mut slots: Vec<u32> = slots.collect();
        slots.sort_unstable();
        slots
    };
    let buffers = bound(&mut storage.iter().map(|(slot, _)| *slot));
    let views = bound(&mut textures.iter().map(|(slot, _)| *slot));
    if buffers != declared(false) || views != declared(true) {
        return Err(Error::invalid(
            "dispatch",
            format!(
                "kernel {} was bound buffers at {buffers:?} and textures at {views:?}; it declares \
                 buffers at {:?} and textures at {:?}",
                kernel.label(),
                declared(false),
                declared(true)
            ),
        ));
    }
    Ok(())
}
