//! The batch of recorded dispatches and its submission as one command buffer.
//!
//! Dispatches are kept as plain data until submission, so that all their uniform parameters go
//! to the GPU in one write (one buffer, each block at the device's uniform offset alignment) and
//! all of them are encoded into one compute pass.

use std::sync::Arc;

use super::BufferRange;
use super::clock::Instant;
use super::error_scope::scoped;
use super::pipelines::CachedPipeline;
use super::profile::{Attribution, PendingTimestamps, Profiler, TimingSource};
use super::readback::wait_idle;
use crate::error::{Error, Result};

/// Submit once this many dispatches are pending: bounds the memory the batch holds on to while
/// keeping per-submission overhead negligible.
const MAX_PENDING_DISPATCHES: usize = 512;

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

#[derive(Default)]
pub(crate) struct Batch {
    dispatches: Vec<Dispatch>,
}

impl Batch {
    pub(crate) fn push(&mut self, dispatch: Dispatch) {
        self.dispatches.push(dispatch);
    }

    pub(crate) fn is_full(&self) -> bool {
        self.dispatches.len() >= MAX_PENDING_DISPATCHES
    }

    /// Encodes and submits every pending dispatch, leaving the batch empty. A validation error
    /// names the kernel whose label the message mentions, or lists the batch's kernels. With a
    /// profiler, each dispatch is timed (see `profile.rs`); host timing waits for the GPU.
    pub(crate) fn submit(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        uniform_alignment: u64,
        profiler: Option<&mut Profiler>,
    ) -> Result<()> {
        let dispatches = std::mem::take(&mut self.dispatches);
        if dispatches.is_empty() {
            return Ok(());
        }
        let mut offsets = Vec::with_capacity(dispatches.len());
        let mut params = Vec::new();
        for dispatch in &dispatches {
            offsets.push(params.len() as u64);
            params.extend_from_slice(&dispatch.params);
            params.resize(params.len().next_multiple_of(uniform_alignment as usize), 0);
        }

        let ((submitted, out_of_memory), validation) =
            scoped(device, wgpu::ErrorFilter::Validation, || {
                scoped(device, wgpu::ErrorFilter::OutOfMemory, || {
                    encode_and_submit(device, queue, &dispatches, &offsets, &params, profiler)
                })
            });
        submitted?;
        if let Some(error) = out_of_memory {
            return Err(Error::OutOfMemory {
                during: format!("running {}: {error}", kernel_names(&dispatches)),
            });
        }
        if let Some(error) = validation {
            let message = error.to_string();
            let kernel = dispatches
                .iter()
                .map(|dispatch| dispatch.pipeline.label.as_str())
                .find(|label| message.contains(label))
                .map(str::to_string)
                .unwrap_or_else(|| kernel_names(&dispatches));
            return Err(Error::Validation { kernel, message });
        }
        Ok(())
    }
}

/// Uploads the batch's parameters and submits its dispatches: all in one compute pass, or
/// timed one by one for the profiler.
fn encode_and_submit(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    dispatches: &[Dispatch],
    offsets: &[u64],
    params: &[u8],
    profiler: Option<&mut Profiler>,
) -> Result<()> {
    let params_buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("kernel params"),
        size: params.len() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    queue.write_buffer(&params_buffer, 0, params);
    match profiler {
        None => {
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gradlens batch"),
            });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("gradlens kernels"),
                    timestamp_writes: None,
                });
                for (dispatch, &offset) in dispatches.iter().zip(offsets) {
                    encode(device, &mut pass, dispatch, &params_buffer, offset);
                }
            }
            queue.submit(Some(encoder.finish()));
        }
        Some(profiler) => match profiler.source {
            TimingSource::GpuTimestamps => {
                submit_timestamped(device, queue, dispatches, offsets, &params_buffer, profiler)
            }
            TimingSource::HostSynchronised => {
                submit_host_timed(device, queue, dispatches, offsets, &params_buffer, profiler)?
            }
        },
    }
    Ok(())
}

fn encode(
    device: &wgpu::Device,
    pass: &mut wgpu::ComputePass,
    dispatch: &Dispatch,
    params_buffer: &wgpu::Buffer,
    params_offset: u64,
) {
    let bind_group = bind_group(device, dispatch, params_buffer, params_offset);
    pass.set_pipeline(&dispatch.pipeline.pipeline);
    pass.set_bind_group(0, &bind_group, &[]);
    let [x, y, z] = dispatch.workgroups;
    pass.dispatch_workgroups(x, y, z);
}

fn profiled(dispatch: &Dispatch) -> (Attribution, String, [u32; 3]) {
    let attribution = dispatch.attribution.clone().unwrap_or(Attribution {
        layer: "".into(),
        phase: super::profile::Phase::Forward,
        flops: 0,
        bytes: 0,
    });
    (
        attribution,
        dispatch.pipeline.label.clone(),
        dispatch.workgroups,
    )
}

/// Each dispatch in a compute pass of its own whose start and end write a timestamp; the
/// timestamps are resolved into a staging buffer that the profiler reads when it finishes.
fn submit_timestamped(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    dispatches: &[Dispatch],
    offsets: &[u64],
    params_buffer: &wgpu::Buffer,
    profiler: &mut Profiler,
) {
    let count = 2 * dispatches.len() as u32;
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
    for (index, (dispatch, &offset)) in dispatches.iter().zip(offsets).enumerate() {
        let first = 2 * index as u32;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(&dispatch.pipeline.label),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &queries,
                beginning_of_pass_write_index: Some(first),
                end_of_pass_write_index: Some(first + 1),
            }),
        });
        encode(device, &mut pass, dispatch, params_buffer, offset);
    }
    encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
    encoder.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes);
    queue.submit(Some(encoder.finish()));
    profiler.pending.push(PendingTimestamps {
        staging,
        kernels: dispatches.iter().map(profiled).collect(),
        period_ns: f64::from(queue.get_timestamp_period()),
    });
}

/// Each dispatch submitted alone and waited for, timed on the host.
fn submit_host_timed(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    dispatches: &[Dispatch],
    offsets: &[u64],
    params_buffer: &wgpu::Buffer,
    profiler: &mut Profiler,
) -> Result<()> {
    for (dispatch, &offset) in dispatches.iter().zip(offsets) {
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some(&dispatch.pipeline.label),
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&dispatch.pipeline.label),
                timestamp_writes: None,
            });
            encode(device, &mut pass, dispatch, params_buffer, offset);
        }
        let command_buffer = encoder.finish();
        let started = Instant::now();
        queue.submit(Some(command_buffer));
        wait_idle(device)?;
        let (attribution, kernel, workgroups) = profiled(dispatch);
        profiler.record_host(attribution, kernel, workgroups, started, Instant::now());
    }
    Ok(())
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
fn kernel_names(dispatches: &[Dispatch]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for dispatch in dispatches {
        let label = dispatch.pipeline.label.as_str();
        if !names.contains(&label) {
            names.push(label);
        }
    }
    format!("the batch of kernels {}", names.join(", "))
}
