//! Recording and submission: every dispatch and buffer-to-texture copy goes into the batch,
//! which is encoded into one command buffer and submitted when full, on a readback or on
//! `synchronize`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::batch::{Batch, Clear, Command, Dispatch, Poison, Step, TextureCopy};
use super::profile::Attribution;
use super::readback;
use super::textures::BYTES_PER_TEXEL;
use super::{BufferRange, Gpu};
use crate::error::{Error, Result};
use crate::shaders::{BindingKind, Kernel, Uniform};

impl Gpu {
    /// The floating-point operations of every convolution and matrix product recorded so far
    /// (the difference over a forward pass is its FLOPs).
    pub fn flops_recorded(&self) -> u64 {
        self.inner.flops_recorded.load(Ordering::Relaxed)
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
        let attribution = self.command_attribution(source.size);
        self.record_command(Command::TextureCopy(TextureCopy {
            source: source.clone(),
            texture: texture.clone(),
            texels: texels as u32,
            attribution,
        }))
    }

    /// Records setting the whole of `buffer` to zero, in order with the recorded dispatches,
    /// with no host copy of the zeros.
    pub(crate) fn clear(&self, buffer: &wgpu::Buffer) -> Result<()> {
        self.check_alive()?;
        self.note_written(buffer);
        let attribution = self.command_attribution(buffer.size());
        self.record_command(Command::Clear(Clear {
            buffer: buffer.clone(),
            attribution,
        }))
    }

    /// Records filling the whole of `buffer` with NaN, in order with the recorded dispatches
    /// (a fresh allocation when the context poisons them: an upload would run before pending
    /// dispatches that still read the buffer's last tensor). The NaNs are copied from a buffer
    /// made for that, grown as larger buffers need it.
    pub(crate) fn poison(&self, buffer: &wgpu::Buffer) -> Result<()> {
        self.check_alive()?;
        self.note_written(buffer);
        let source = {
            let mut source = self.inner.poison_source.lock().expect("poison lock");
            match source.as_ref() {
                Some(nans) if nans.size() >= buffer.size() => nans.clone(),
                _ => {
                    let nans = nan_buffer(&self.inner.device, buffer.size().next_power_of_two())?;
                    source.insert(nans).clone()
                }
            }
        };
        let attribution = self.command_attribution(buffer.size());
        self.record_command(Command::Poison(Poison {
            buffer: buffer.clone(),
            source,
            attribution,
        }))
    }

    /// What the profiler charges a command moving `bytes` to (while profiling): the current
    /// layer, no FLOPs.
    fn command_attribution(&self, bytes: u64) -> Option<Attribution> {
        self.with_profiler(|profiler| {
            let layer = self.current_scope().unwrap_or_else(|| Arc::from(""));
            profiler.attribution(layer, 0, bytes)
        })
    }

    fn record_command(&self, command: Command) -> Result<()> {
        let mut batch = self.inner.batch.lock().expect("batch lock");
        batch.push(Step::Command(command));
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

    pub(super) fn flush_locked(&self, batch: &mut Batch) -> Result<()> {
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

    pub(super) fn wait(&self) -> Result<()> {
        readback::wait_idle(&self.inner.device)?;
        self.check_alive()
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

/// A buffer of `bytes` bytes of NaN, written while mapped at creation: no queue write, which
/// would run before the pending batch.
fn nan_buffer(device: &wgpu::Device, bytes: u64) -> Result<wgpu::Buffer> {
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("gradlens NaNs for poisoning"),
        size: bytes,
        usage: wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: true,
    });
    {
        let mut mapped =
            buffer
                .slice(..)
                .get_mapped_range_mut()
                .map_err(|error| Error::OutOfMemory {
                    during: format!(
                        "mapping {bytes} bytes of NaN to poison allocations with: {error}"
                    ),
                })?;
        mapped.copy_from_slice(&f32::NAN.to_le_bytes().repeat(bytes as usize / 4));
    }
    buffer.unmap();
    Ok(buffer)
}
