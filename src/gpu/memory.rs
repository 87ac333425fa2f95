//! The context's memory: pooled buffers, uploads, write generations (what invalidates kept
//! copies) and the textures the matmul reads its operands from.

use std::sync::atomic::Ordering;

use super::error_scope::scoped;
use super::kept_copies::KeptCopyLease;
use super::operand_textures::{OperandTexture, OperandTextureUse};
use super::pool::{self, FirstWrite, PoolStats, PooledBuffer};
use super::textures::{self, ScratchTexture};
use super::{BufferRange, Gpu};
use crate::error::{Error, Result};

/// Staged uploads past this many bytes are handed to the queue (`Gpu::upload`).
const STAGED_UPLOAD_BYTES: u64 = 32 << 20;

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

    /// Leases a storage buffer of at least `bytes` bytes from the pool, to be first written as
    /// `first` says.
    pub(crate) fn allocate(
        &self,
        bytes: u64,
        what: &str,
        first: FirstWrite,
    ) -> Result<PooledBuffer> {
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
        let reused = self
            .inner
            .pool
            .lock()
            .expect("pool lock")
            .take(class, first);
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
    /// copied now and kept where the kept copies' budget has room (see `operand_textures.rs`
    /// and `kept_copies.rs`), else copied into a scratch texture for this product alone. For
    /// operands that stay the same from product to product, such as weights.
    pub(crate) fn operand_texture(
        &self,
        range: &BufferRange,
        width: u32,
        height: u32,
    ) -> Result<OperandTextureUse> {
        let key = (range.buffer.clone(), range.offset, range.size);
        let bytes = textures::bytes_of((width, height));
        let generation = {
            let mut pool = self.inner.pool.lock().expect("pool lock");
            if let Some(kept) = pool.operand_texture(&key) {
                return Ok(OperandTextureUse::Kept(kept));
            }
            if !pool.kept_copies_mut().try_keep(bytes) {
                drop(pool);
                let scratch = self.scratch_texture(width, height)?;
                self.copy_into_texture(range, scratch.texture())?;
                return Ok(OperandTextureUse::Scratch(scratch));
            }
            pool.write_generation(&range.buffer)
        };
        if let Err(error) = self.check_alive() {
            let mut pool = self.inner.pool.lock().expect("pool lock");
            pool.kept_copies_mut().release(bytes);
            return Err(error);
        }
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
            bytes,
        };
        self.inner
            .pool
            .lock()
            .expect("pool lock")
            .keep_operand_texture(key, kept.clone(), generation);
        Ok(OperandTextureUse::Kept(kept))
    }

    /// A place in the kept copies' budget for a copy of `bytes` (see `kept_copies.rs`), held
    /// until the lease drops; `None` when the budget has no room.
    pub(crate) fn keep_copy(&self, bytes: u64) -> Option<KeptCopyLease> {
        let mut pool = self.inner.pool.lock().expect("pool lock");
        pool.kept_copies_mut()
            .try_keep(bytes)
            .then(|| KeptCopyLease::new(bytes, self.inner.pool.clone()))
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

    /// Copies host data into a buffer. Safe for buffers freshly leased for an upload
    /// (`FirstWrite::Upload`) only: the pool never hands out such a buffer while a pending
    /// dispatch still uses it, whereas an existing tensor may be read by a pending dispatch, so
    /// `overwrite` flushes first.
    pub(crate) fn upload(&self, buffer: &wgpu::Buffer, bytes: &[u8]) {
        self.note_written(buffer);
        if !bytes.is_empty() {
            self.inner.queue.write_buffer(buffer, 0, bytes);
            self.start_staged_uploads(bytes.len() as u64);
        }
    }

    /// Counts `bytes` more staged; once the staged uploads reach `STAGED_UPLOAD_BYTES`, hands
    /// them to the queue in an empty submission, the pending batch left pending. The copies
    /// then run while the host goes on (a model's weights, as they are made or read) rather
    /// than all at the next batch's submission, and their staging memory is freed as they
    /// finish. A staged write runs before any batch submitted after it either way, so the
    /// order of work does not change. (The count is a heuristic: racing threads may submit a
    /// little early or late.)
    fn start_staged_uploads(&self, bytes: u64) {
        let staged = self
            .inner
            .staged_upload_bytes
            .fetch_add(bytes, Ordering::Relaxed)
            + bytes;
        if staged >= STAGED_UPLOAD_BYTES {
            self.inner.staged_upload_bytes.store(0, Ordering::Relaxed);
            self.inner.queue.submit(std::iter::empty());
            // Frees the staging of finished copies; never waits.
            let _ = self.inner.device.poll(wgpu::PollType::Poll);
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
