//! The batch of recorded steps (dispatches, and commands between them: copies of buffers into
//! textures, clears) and its submission as one command buffer.
//!
//! Steps are kept as plain data until submission, so that all the dispatches' uniform
//! parameters go to the GPU in one write (one buffer, each block at the device's uniform offset
//! alignment) and each run of dispatches between commands is encoded into one compute pass.

use std::sync::Arc;

use super::BufferRange;
use super::clock::Instant;
use super::error_scope::scoped;
use super::pipelines::CachedPipeline;
use super::profile::{Attribution, PendingTimestamps, Profiler, TimingSource};
use super::readback::wait_idle;
use super::textures::BYTES_PER_TEXEL;
use crate::error::{Error, Result};

/// Submit once this many steps (dispatches and commands) are pending: bounds the memory the batch
/// holds on to while keeping per-submission overhead negligible.
const MAX_PENDING_STEPS: usize = 512;

pub(crate) struct Dispatch {
    pub(crate) pipeline: Arc<CachedPipeline>,
    pub(crate) params: Vec<u8>,
    pub(crate) storage: Vec<(u32, BufferRange)>,
    /// Texture bindings (sampled or storage) by index.
    pub(crate) textures: Vec<(u32, wgpu::TextureView)>,
    pub(crate) workgroups: [u32; 3],
    /// Set while profiling.
    pub(crate) attribution: Option<Attribution>,
}

/// A buffer range copied into the first `texels` texels of a texture, row after row (the
/// texture's rows are whole multiples of 256 bytes, so the range's bytes land in texel order).
pub(crate) struct TextureCopy {
    pub(crate) source: BufferRange,
    pub(crate) texture: wgpu::Texture,
    pub(crate) texels: u32,
    /// Set while profiling.
    pub(crate) attribution: Option<Attribution>,
}

/// A buffer set to zero, whole (`Tensor::zeros`).
pub(crate) struct Clear {
    pub(crate) buffer: wgpu::Buffer,
    /// Set while profiling.
    pub(crate) attribution: Option<Attribution>,
}

/// A buffer filled, whole, with NaN copied from `source` (`GpuOptions::poison_allocations`).
pub(crate) struct Poison {
    pub(crate) buffer: wgpu::Buffer,
    /// NaNs, at least as many bytes as `buffer`.
    pub(crate) source: wgpu::Buffer,
    /// Set while profiling.
    pub(crate) attribution: Option<Attribution>,
}

/// A step that is no kernel: a command of the encoder, recorded between compute passes.
pub(crate) enum Command {
    TextureCopy(TextureCopy),
    Clear(Clear),
    Poison(Poison),
}

impl Command {
    /// The name it goes by in profiles and error messages.
    fn label(&self) -> &'static str {
        match self {
            Command::TextureCopy(_) => "copy::buffer_to_texture",
            Command::Clear(_) => "clear_buffer",
            Command::Poison(_) => "poison_buffer",
        }
    }

    fn attribution(&self) -> &Option<Attribution> {
        match self {
            Command::TextureCopy(copy) => &copy.attribution,
            Command::Clear(clear) => &clear.attribution,
            Command::Poison(poison) => &poison.attribution,
        }
    }

    fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        match self {
            Command::TextureCopy(copy) => encode_copy(encoder, copy),
            Command::Clear(clear) => encoder.clear_buffer(&clear.buffer, 0, None),
            Command::Poison(poison) => {
                let size = poison.buffer.size();
                encoder.copy_buffer_to_buffer(&poison.source, 0, &poison.buffer, 0, size);
            }
        }
    }
}

pub(crate) enum Step {
    Dispatch(Dispatch),
    Command(Command),
}

impl Step {
    fn label(&self) -> &str {
        match self {
            Step::Dispatch(dispatch) => &dispatch.pipeline.label,
            Step::Command(command) => command.label(),
        }
    }
}

#[derive(Default)]
pub(crate) struct Batch {
    steps: Vec<Step>,
}

impl Batch {
    pub(crate) fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    pub(crate) fn is_full(&self) -> bool {
        self.steps.len() >= MAX_PENDING_STEPS
    }

    /// Encodes and submits every pending step, leaving the batch empty. A validation error
    /// names the kernel whose label the message mentions, or lists the batch's kernels. With a
    /// profiler, each dispatch is timed (see `profile.rs`); host timing waits for the GPU.
    pub(crate) fn submit(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        uniform_alignment: u64,
        profiler: Option<&mut Profiler>,
    ) -> Result<()> {
        let steps = std::mem::take(&mut self.steps);
        if steps.is_empty() {
            return Ok(());
        }
        // Each step's offset into the parameters buffer (commands have none: 0).
        let mut offsets = Vec::with_capacity(steps.len());
        let mut params = Vec::new();
        for step in &steps {
            offsets.push(params.len() as u64);
            if let Step::Dispatch(dispatch) = step {
                params.extend_from_slice(&dispatch.params);
                params.resize(params.len().next_multiple_of(uniform_alignment as usize), 0);
            }
        }

        let ((submitted, out_of_memory), validation) =
            scoped(device, wgpu::ErrorFilter::Validation, || {
                scoped(device, wgpu::ErrorFilter::OutOfMemory, || {
                    encode_and_submit(device, queue, &steps, &offsets, &params, profiler)
                })
            });
        submitted?;
        if let Some(error) = out_of_memory {
            return Err(Error::OutOfMemory {
                during: format!("running {}: {error}", kernel_names(&steps)),
            });
        }
        if let Some(error) = validation {
            let message = error.to_string();
            let kernel = steps
                .iter()
                .map(Step::label)
                .find(|label| message.contains(label))
                .map(str::to_string)
                .unwrap_or_else(|| kernel_names(&steps));
            return Err(Error::Validation { kernel, message });
        }
        Ok(())
    }
}

/// Uploads the batch's parameters and submits its steps: each run of dispatches between
/// commands in one compute pass, or every step timed alone for the profiler.
fn encode_and_submit(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    steps: &[Step],
    offsets: &[u64],
    params: &[u8],
    profiler: Option<&mut Profiler>,
) -> Result<()> {
    // A batch of commands alone has no parameters; a buffer cannot be empty.
    let params_buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("kernel params"),
        size: (params.len() as u64).max(4),
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    queue.write_buffer(&params_buffer, 0, params);
    let batch = Uploaded {
        device,
        queue,
        steps,
        offsets,
        params_buffer,
    };
    match profiler {
        None => batch.submit_untimed(),
        Some(profiler) => match profiler.source {
            TimingSource::GpuTimestamps => batch.submit_timestamped(profiler),
            TimingSource::HostSynchronised => batch.submit_host_timed(profiler)?,
        },
    }
    Ok(())
}

/// A batch's steps with their parameters uploaded (`offsets[i]` is step i's in
/// `params_buffer`), ready to encode.
struct Uploaded<'a> {
    device: &'a wgpu::Device,
    queue: &'a wgpu::Queue,
    steps: &'a [Step],
    offsets: &'a [u64],
    params_buffer: wgpu::Buffer,
}

/// The copy's whole texture rows in one copy, then the texels left over in a partial row.
fn encode_copy(encoder: &mut wgpu::CommandEncoder, copy: &TextureCopy) {
    let width = copy.texture.width();
    let row_bytes = u64::from(width) * BYTES_PER_TEXEL;
    let (whole_rows, left_over) = (copy.texels / width, copy.texels % width);
    let mut region = |first_row: u32, width: u32, height: u32| {
        encoder.copy_buffer_to_texture(
            wgpu::TexelCopyBufferInfo {
                buffer: &copy.source.buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: copy.source.offset + u64::from(first_row) * row_bytes,
                    // Needed (a multiple of 256) only when several rows are copied.
                    bytes_per_row: (height > 1).then_some(width * BYTES_PER_TEXEL as u32),
                    rows_per_image: None,
                },
            },
            wgpu::TexelCopyTextureInfo {
                texture: &copy.texture,
                mip_level: 0,
                origin: wgpu::Origin3d {
                    x: 0,
                    y: first_row,
                    z: 0,
                },
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
        );
    };
    if whole_rows > 0 {
        region(0, width, whole_rows);
    }
    if left_over > 0 {
        region(whole_rows, left_over, 1);
    }
}

/// What the profiler records of a step: its attribution, its name and its workgroup grid
/// (none for a command).
fn profiled(step: &Step) -> (Attribution, String, [u32; 3]) {
    let (attribution, workgroups) = match step {
        Step::Dispatch(dispatch) => (&dispatch.attribution, dispatch.workgroups),
        Step::Command(command) => (command.attribution(), [0; 3]),
    };
    let attribution = attribution.clone().unwrap_or(Attribution {
        layer: "".into(),
        phase: super::profile::Phase::Forward,
        flops: 0,
        bytes: 0,
    });
    (attribution, step.label().to_string(), workgroups)
}

impl Uploaded<'_> {
    /// Records `dispatch` in `pass`, its parameters at `params_offset`.
    fn encode(&self, pass: &mut wgpu::ComputePass, dispatch: &Dispatch, params_offset: u64) {
        let bind_group = bind_group(self.device, dispatch, &self.params_buffer, params_offset);
        pass.set_pipeline(&dispatch.pipeline.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        let [x, y, z] = dispatch.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }

    /// Each run of dispatches between commands in one compute pass, all in one submission.
    fn submit_untimed(&self) {
        let (device, steps) = (self.device, self.steps);
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("gradlens batch"),
        });
        let mut first = 0;
        while first < steps.len() {
            if let Step::Command(command) = &steps[first] {
                command.encode(&mut encoder);
                first += 1;
                continue;
            }
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gradlens kernels"),
                timestamp_writes: None,
            });
            while let Some(Step::Dispatch(dispatch)) = steps.get(first) {
                self.encode(&mut pass, dispatch, self.offsets[first]);
                first += 1;
            }
        }
        self.queue.submit(Some(encoder.finish()));
    }

    /// Each dispatch in a compute pass of its own whose start and end write a timestamp, each
    /// command between an empty pass that writes the start and one that writes the end; the
    /// timestamps are resolved into a staging buffer that the profiler reads when it finishes.
    fn submit_timestamped(&self, profiler: &mut Profiler) {
        let (device, steps) = (self.device, self.steps);
        let count = 2 * steps.len() as u32;
        let queries = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("gradlens kernel timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let bytes = u64::from(count) * 8;
        let resolved = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps resolved"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps staging"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("gradlens profiled batch"),
        });
        for (index, (step, &offset)) in steps.iter().zip(self.offsets).enumerate() {
            let (start, end) = (2 * index as u32, 2 * index as u32 + 1);
            let label = step.label();
            match step {
                Step::Dispatch(dispatch) => {
                    let mut pass =
                        timed_pass(&mut encoder, label, &queries, Some(start), Some(end));
                    self.encode(&mut pass, dispatch, offset);
                }
                Step::Command(command) => {
                    drop(timed_pass(&mut encoder, label, &queries, Some(start), None));
                    command.encode(&mut encoder);
                    drop(timed_pass(&mut encoder, label, &queries, None, Some(end)));
                }
            }
        }
        encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
        encoder.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes);
        self.queue.submit(Some(encoder.finish()));
        profiler.pending.push(PendingTimestamps {
            staging,
            kernels: steps.iter().map(profiled).collect(),
            period_ns: f64::from(self.queue.get_timestamp_period()),
        });
    }

    /// Each step submitted alone and waited for, timed on the host.
    fn submit_host_timed(&self, profiler: &mut Profiler) -> Result<()> {
        let device = self.device;
        for (step, &offset) in self.steps.iter().zip(self.offsets) {
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some(step.label()),
            });
            match step {
                Step::Dispatch(dispatch) => {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(step.label()),
                        timestamp_writes: None,
                    });
                    self.encode(&mut pass, dispatch, offset);
                }
                Step::Command(command) => command.encode(&mut encoder),
            }
            let command_buffer = encoder.finish();
            let started = Instant::now();
            self.queue.submit(Some(command_buffer));
            wait_idle(device)?;
            let (attribution, kernel, workgroups) = profiled(step);
            profiler.record_host(attribution, kernel, workgroups, started, Instant::now());
        }
        Ok(())
    }
}

/// A compute pass that writes the given timestamps at its start and end.
fn timed_pass<'e>(
    encoder: &'e mut wgpu::CommandEncoder,
    label: &str,
    queries: &wgpu::QuerySet,
    start: Option<u32>,
    end: Option<u32>,
) -> wgpu::ComputePass<'e> {
    encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
            query_set: queries,
            beginning_of_pass_write_index: start,
            end_of_pass_write_index: end,
        }),
    })
}

fn bind_group(
    device: &wgpu::Device,
    dispatch: &Dispatch,
    params_buffer: &wgpu::Buffer,
    params_offset: u64,
) -> wgpu::BindGroup {
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: params_buffer,
            offset: params_offset,
            size: wgpu::BufferSize::new(dispatch.params.len() as u64),
        }),
    }];
    for (binding, range) in &dispatch.storage {
        entries.push(wgpu::BindGroupEntry {
            binding: *binding,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &range.buffer,
                offset: range.offset,
                size: wgpu::BufferSize::new(range.size),
            }),
        });
    }
    for (binding, view) in &dispatch.textures {
        entries.push(wgpu::BindGroupEntry {
            binding: *binding,
            resource: wgpu::BindingResource::TextureView(view),
        });
    }
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(&dispatch.pipeline.label),
        layout: &dispatch.pipeline.layout,
        entries: &entries,
    })
}

/// "the batch of kernels a, b, c" (distinct names, in order of first use).
fn kernel_names(steps: &[Step]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for step in steps {
        let label = step.label();
        if !names.contains(&label) {
            names.push(label);
        }
    }
    format!("the batch of kernels {}", names.join(", "))
}
