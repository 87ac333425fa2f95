//! The buffer pool: storage buffers reused by size class.
//!
//! Size classes are 2^k · {1, 1.25, 1.5, 1.75}, so a request never wastes more than a quarter of
//! its buffer, while the steady state of a training loop (the same shapes every step) allocates
//! nothing new.
//!
//! A released buffer is *quarantined* until the pending batch of commands is submitted: a pending
//! dispatch may still read it, and an upload through `queue.write_buffer` into a reused buffer
//! would land before that dispatch runs (queue writes are ordered before the next submission).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::operand_textures::{OperandTexture, OperandTextures, RangeKey};

/// Every buffer the pool hands out can be bound as storage, copied from and copied into.
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// The smallest class: tiny tensors share one class instead of one class per byte count.
const MIN_CLASS_BYTES: u64 = 256;

/// The size class a request of `bytes` is served from.
pub(crate) fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(MIN_CLASS_BYTES);
    let power = bytes.next_power_of_two();
    let quarter = power / 8; // classes between power/2 and power step by power/8
    let base = power / 2;
    if bytes <= base {
        return base;
    }
    base + (bytes - base).div_ceil(quarter) * quarter
}

/// Byte counts the pool reports (tests and `bench` read them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes of all buffers the pool has created and still owns (in use, free or quarantined).
    pub allocated_bytes: u64,
    /// Bytes of buffers currently leased to tensors.
    pub in_use_bytes: u64,
    /// High-water mark of `in_use_bytes`.
    pub peak_in_use_bytes: u64,
    /// Buffers created since the start: a steady loop keeps this constant.
    pub buffers_created: u64,
}

#[derive(Default)]
pub(crate) struct BufferPool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    quarantined: Vec<(u64, wgpu::Buffer)>,
    /// Texture copies of leased buffers' ranges (counted in the stats as in use).
    operand_textures: OperandTextures,
    /// How many writes each leased buffer asked about (`write_generation`) has seen since.
    generations: HashMap<wgpu::Buffer, u64>,
    stats: PoolStats,
}

impl BufferPool {
    /// A free buffer of this class, if one is ready for reuse.
    pub(crate) fn take(&mut self, class: u64) -> Option<wgpu::Buffer> {
        let buffer = self.free.get_mut(&class)?.pop()?;
        self.note_leased(class);
        Some(buffer)
    }

    pub(crate) fn note_created(&mut self, class: u64) {
        self.stats.allocated_bytes += class;
        self.stats.buffers_created += 1;
        self.note_leased(class);
    }

    /// Bytes held outside the pool's buffers (textures) given back.
    pub(crate) fn note_external_released(&mut self, bytes: u64) {
        self.stats.allocated_bytes -= bytes;
        self.stats.in_use_bytes -= bytes;
    }

    fn note_leased(&mut self, class: u64) {
        self.stats.in_use_bytes += class;
        self.stats.peak_in_use_bytes = self.stats.peak_in_use_bytes.max(self.stats.in_use_bytes);
    }

    fn release(&mut self, class: u64, buffer: wgpu::Buffer) {
        self.stats.in_use_bytes -= class;
        self.note_written(&buffer);
        self.generations.remove(&buffer);
        self.quarantined.push((class, buffer));
    }

    /// The count of writes to `buffer` since it was first asked about: results computed from
    /// its contents stay valid while this stays the same (`Tensor::derived`).
    pub(crate) fn write_generation(&mut self, buffer: &wgpu::Buffer) -> u64 {
        *self.generations.entry(buffer.clone()).or_default()
    }

    /// The kept texture copy of a buffer range, if it has one.
    pub(crate) fn operand_texture(&self, key: &RangeKey) -> Option<OperandTexture> {
        self.operand_textures.get(key)
    }

    /// Keeps `texture` as the copy of `key`, unless the buffer was written since its
    /// `generation` (another thread's write recorded meanwhile: the copy may predate it).
    pub(crate) fn keep_operand_texture(
        &mut self,
        key: RangeKey,
        texture: OperandTexture,
        generation: u64,
    ) {
        if self.write_generation(&key.0) != generation {
            return;
        }
        self.stats.allocated_bytes += texture.bytes;
        self.note_leased(texture.bytes);
        let replaced = self.operand_textures.keep(key, texture);
        self.note_external_released(replaced);
    }

    /// `buffer` is about to be written (or reused): its texture copies are dropped and its
    /// write generation moves on.
    pub(crate) fn note_written(&mut self, buffer: &wgpu::Buffer) {
        let bytes = self.operand_textures.forget(buffer);
        self.note_external_released(bytes);
        if let Some(generation) = self.generations.get_mut(buffer) {
            *generation += 1;
        }
    }

    /// Called once the batch that may still use quarantined buffers has been submitted.
    pub(crate) fn end_quarantine(&mut self) {
        for (class, buffer) in self.quarantined.drain(..) {
            self.free.entry(class).or_default().push(buffer);
        }
    }

    /// Destroys every free buffer (for example before a memory-hungry model loads).
    pub(crate) fn trim(&mut self) {
        for (class, buffers) in self.free.drain() {
            self.stats.allocated_bytes -= class * buffers.len() as u64;
            for buffer in buffers {
                buffer.destroy();
            }
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        self.stats
    }

    pub(crate) fn reset_peak(&mut self) {
        self.stats.peak_in_use_bytes = self.stats.in_use_bytes;
    }
}

/// A buffer leased from the pool; dropping the lease returns the buffer.
pub(crate) struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    class: u64,
    pool: Arc<Mutex<BufferPool>>,
}

impl PooledBuffer {
    pub(crate) fn new(buffer: wgpu::Buffer, class: u64, pool: Arc<Mutex<BufferPool>>) -> Self {
        Self {
            buffer: Some(buffer),
            class,
            pool,
        }
    }

    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            // A poisoned lock means another thread panicked mid-update; the buffer is then
            // simply freed by wgpu instead of being reused.
            if let Ok(mut pool) = self.pool.lock() {
                pool.release(self.class, buffer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_cover_the_request_and_waste_at_most_a_quarter() {
        for bytes in (1..5000u64).chain([65_537, 1 << 20, (1 << 20) + 1, 411_041_792]) {
            let class = size_class(bytes);
            assert!(class >= bytes, "class {class} < request {bytes}");
            if bytes > 256 {
                assert!(
                    class as f64 <= bytes as f64 * 1.25 + 1.0,
                    "{bytes} -> {class}"
                );
            }
            assert_eq!(size_class(class), class, "a class maps to itself");
        }
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(1025), 1280);
    }
}
