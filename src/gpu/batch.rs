//! The batch of recorded dispatches and its submission as one command buffer.
//!
//! Dispatches are kept as plain data until submission, so that all their uniform parameters go
//! to the GPU in one write (one buffer, each block at the device's uniform offset alignment) and
//! all of them are encoded into one compute pass.

use std::sync::Arc;

use super::BufferRange;
use super::pipelines::CachedPipeline;
use crate::error::{Error, Result};

/// Submit once this many dispatches are pending: bounds the memory the batch holds on to while
/// keeping per-submission overhead negligible.
const MAX_PENDING_DISPATCHES: usize = 512;

pub(crate) struct Dispatch {
    pub(crate) pipeline: Arc<CachedPipeline>,
    pub(crate) params: Vec<u8>,
    pub(crate) storage: Vec<(u32, BufferRange)>,
    pub(crate) workgroups: [u32; 3],
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
    /// names the kernel whose label the message mentions, or lists the batch's kernels.
    pub(crate) fn submit(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        uniform_alignment: u64,
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

        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out_of_memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let params_buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernel params"),
            size: params.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        queue.write_buffer(&params_buffer, 0, &params);
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("gradlens batch"),
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gradlens kernels"),
                timestamp_writes: None,
            });
            for (dispatch, &offset) in dispatches.iter().zip(&offsets) {
                let bind_group = bind_group(device, dispatch, &params_buffer, offset);
                pass.set_pipeline(&dispatch.pipeline.pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                let [x, y, z] = dispatch.workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
        queue.submit(Some(encoder.finish()));
        let out_of_memory = pollster::block_on(out_of_memory.pop());
        let validation = pollster::block_on(validation.pop());

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
