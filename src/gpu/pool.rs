//! The buffer pool: storage buffers reused by size class.
//!
//! Size classes are 2^k · {1, 1.25, 1.5, 1.75}, so a request never wastes more than a quarter of
//! its buffer, while the steady state of a training loop (the same shapes every step) allocates
//! nothing new. (Serving a request from a free buffer of a larger class, up to 1.5× or 2×, was
//! tried: ResNet-50's forward and backward then held no fewer bytes of buffers, and had up to
//! 19 MB more in use at its peak.)
//!
//! A buffer released while a batch of commands is pending is *quarantined* until that batch is
//! submitted, for uploads: a pending dispatch may still read it, and an upload through
//! `queue.write_buffer` into it would land before that dispatch runs (queue writes are ordered
//! before the next submission). A buffer whose first write is a recorded command (a kernel's
//! output, a clear) may take a quarantined buffer at once: the commands run in the order they
//! were recorded, and wgpu puts a barrier between a dispatch that reads a buffer and a later
//! one that writes it. Without that, no buffer freed during a forward pass could hold a later
//! layer's output before the batch's submission (every 512 steps), and a ResNet-50 forward and
//! backward held 600 MB of buffers to have 240 MB in use at most.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::kept_copies::KeptCopies;
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
    /// High-water mark of `in_use_bytes` less the kept copies: the memory the work itself
    /// needed, without the cache of weight transforms that outlives it (what
    /// `train::fit_batch` holds a batch to).
    pub peak_working_bytes: u64,
    /// Buffers created since the start: a steady loop keeps this constant.
    pub buffers_created: u64,
    /// Bytes of kept copies (Winograd-domain filters, operand textures; see `kept_copies.rs`),
    /// counted in `in_use_bytes` too.
    pub kept_copy_bytes: u64,
    /// The most bytes of kept copies this context keeps.
    pub kept_copy_budget: u64,
}

/// How a newly leased buffer is first written, which decides the buffers it may reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FirstWrite {
    /// By a command recorded into the batch (a kernel's output, a clear): any free buffer,
    /// quarantined ones included.
    Recorded,
    /// By an upload (`queue.write_buffer`): only buffers no pending command uses.
    Upload,
}

pub(crate) struct BufferPool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Buffers released since the pending batch began, by class.
    quarantined: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Texture copies of leased buffers' ranges (counted in the stats as in use).
    operand_textures: OperandTextures,
    /// How many writes each leased buffer asked about (`write_generation`) has seen since.
    generations: HashMap<wgpu::Buffer, u64>,
    kept_copies: KeptCopies,
    stats: PoolStats,
}

impl BufferPool {
    /// An empty pool that keeps at most `kept_copy_budget` bytes of kept copies.
    pub(crate) fn new(kept_copy_budget: u64) -> Self {
        Self {
            free: HashMap::new(),
            quarantined: HashMap::new(),
            operand_textures: OperandTextures::default(),
            generations: HashMap::new(),
            kept_copies: KeptCopies::new(kept_copy_budget),
            stats: PoolStats::default(),
        }
    }

    pub(crate) fn kept_copies_mut(&mut self) -> &mut KeptCopies {
        &mut self.kept_copies
    }

    /// A buffer of this class ready for reuse by a request first written as `first` says: a
    /// free one, else, for a recorded first write, a quarantined one.
    pub(crate) fn take(&mut self, class: u64, first: FirstWrite) -> Option<wgpu::Buffer> {
        let from = |buffers: &mut HashMap<u64, Vec<wgpu::Buffer>>| buffers.get_mut(&class)?.pop();
        let buffer = from(&mut self.free).or_else(|| match first {
            FirstWrite::Recorded => from(&mut self.quarantined),
            FirstWrite::Upload => None,
        })?;
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

    /// Bytes held outside the pool's buffers given back but kept for reuse: allocated still,
    /// no longer in use (as a free buffer of the pool).
    pub(crate) fn note_external_returned(&mut self, bytes: u64) {
        self.stats.in_use_bytes -= bytes;
    }

    /// Bytes leased: a buffer of this class, or a free scratch texture leased again.
    pub(crate) fn note_leased(&mut self, class: u64) {
        self.stats.in_use_bytes += class;
        self.stats.peak_in_use_bytes = self.stats.peak_in_use_bytes.max(self.stats.in_use_bytes);
        self.stats.peak_working_bytes = self.stats.peak_working_bytes.max(self.working_bytes());
    }

    /// Bytes in use that are not kept copies.
    fn working_bytes(&self) -> u64 {
        self.stats
            .in_use_bytes
            .saturating_sub(self.kept_copies.bytes())
    }

    fn release(&mut self, class: u64, buffer: wgpu::Buffer) {
        self.stats.in_use_bytes -= class;
        self.note_written(&buffer);
        self.generations.remove(&buffer);
        self.quarantined.entry(class).or_default().push(buffer);
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

    /// Keeps `texture` as the copy of `key`, its bytes already counted against the kept
    /// copies' budget (`KeptCopies::try_keep`), unless the buffer was written since its
    /// `generation` (another thread's write recorded meanwhile: the copy may predate it).
    pub(crate) fn keep_operand_texture(
        &mut self,
        key: RangeKey,
        texture: OperandTexture,
        generation: u64,
    ) {
        if self.write_generation(&key.0) != generation {
            self.kept_copies.release(texture.bytes);
            return;
        }
        self.stats.allocated_bytes += texture.bytes;
        self.note_leased(texture.bytes);
        let replaced = self.operand_textures.keep(key, texture);
        self.release_operand_textures(replaced);
    }

    /// Kept texture copies of `bytes` in all are gone.
    fn release_operand_textures(&mut self, bytes: u64) {
        self.note_external_released(bytes);
        self.kept_copies.release(bytes);
    }

    /// `buffer` is about to be written (or reused): its texture copies are dropped and its
    /// write generation moves on.
    pub(crate) fn note_written(&mut self, buffer: &wgpu::Buffer) {
        let bytes = self.operand_textures.forget(buffer);
        self.release_operand_textures(bytes);
        if let Some(generation) = self.generations.get_mut(buffer) {
            *generation += 1;
        }
    }

    /// Called once the batch that may still use quarantined buffers has been submitted.
    pub(crate) fn end_quarantine(&mut self) {
        for (class, buffers) in self.quarantined.drain() {
            self.free.entry(class).or_default().extend(buffers);
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
        PoolStats {
            kept_copy_bytes: self.kept_copies.bytes(),
            kept_copy_budget: self.kept_copies.budget(),
            ..self.stats
        }
    }

    pub(crate) fn reset_peak(&mut self) {
        self.stats.peak_in_use_bytes = self.stats.in_use_bytes;
        self.stats.peak_working_bytes = self.working_bytes();
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
