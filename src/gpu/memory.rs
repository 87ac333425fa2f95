//! The context's memory: pooled buffers, uploads, write generations (what invalidates kept
//! copies) and the textures the matmul reads its operands from.

use super::error_scope::scoped;
use super::operand_textures::OperandTexture;
use super::pool::{self, PoolStats, PooledBuffer};
use super::textures::{self, ScratchTexture};
use super::{BufferRange, Gpu};
use crate::error::{Error, Result};

impl Gpu {
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
    pub(super) fn note_written(&self, buffer: &wgpu::Buffer) {
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
}
