//! Scratch textures: rgba32float textures leased per size and reused, for kernels that read an
//! operand faster as texels than from a storage buffer (the subgroup matmul's B on lavapipe).
//!
//! A lease is held from before the copy that fills the texture (`Gpu::copy_into_texture`)
//! until after the last dispatch that reads it is recorded; another thread recording meanwhile
//! gets another texture. Once given back, a texture may be filled again by any later copy:
//! copies and dispatches run in the order they were recorded, so that writer runs after every
//! reader of the old contents (no quarantine as the buffer pool needs: nothing writes a
//! scratch texture from the host). The bytes count in the pool's statistics as allocated while
//! the texture exists and as in use while it is leased, as the pool's buffers do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::pool::BufferPool;

/// Past this many bytes of scratch textures, textures given back are dropped, not kept (views
/// held by recorded dispatches keep theirs alive until the GPU is done).
const BUDGET_BYTES: u64 = 256 << 20;

/// rgba32float.
pub(crate) const BYTES_PER_TEXEL: u64 = 16;

type Size = (u32, u32);

/// A texture and the view kernels bind.
type Leasable = (wgpu::Texture, wgpu::TextureView);

pub(crate) struct ScratchTextures {
    free: HashMap<Size, Vec<Leasable>>,
    /// Bytes of every scratch texture that exists, leased or free.
    bytes: u64,
    pool: Arc<Mutex<BufferPool>>,
}

pub(crate) fn bytes_of((width, height): Size) -> u64 {
    u64::from(width) * u64::from(height) * BYTES_PER_TEXEL
}

impl ScratchTextures {
    pub(crate) fn new(pool: Arc<Mutex<BufferPool>>) -> Self {
        Self {
            free: HashMap::new(),
            bytes: 0,
            pool,
        }
    }

    fn take(&mut self, device: &wgpu::Device, size: Size) -> Leasable {
        if let Some(leasable) = self.free.get_mut(&size).and_then(Vec::pop) {
            let mut pool = self.pool.lock().expect("pool lock");
            pool.note_leased(bytes_of(size));
            return leasable;
        }
        let (width, height) = size;
        let texture = create(device, "gradlens scratch texture", width, height);
        self.bytes += bytes_of(size);
        self.pool
            .lock()
            .expect("pool lock")
            .note_created(bytes_of(size));
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        (texture, view)
    }

    fn give_back(&mut self, size: Size, leasable: Leasable) {
        if self.bytes <= BUDGET_BYTES {
            self.free.entry(size).or_default().push(leasable);
            let mut pool = self.pool.lock().expect("pool lock");
            pool.note_external_returned(bytes_of(size));
            return;
        }
        self.bytes -= bytes_of(size);
        let mut pool = self.pool.lock().expect("pool lock");
        pool.note_external_released(bytes_of(size));
    }
}

/// An rgba32float texture that copies fill and kernels read as a read-only storage texture.
pub(crate) fn create(device: &wgpu::Device, label: &str, width: u32, height: u32) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Float,
        usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    })
}

/// A scratch texture leased to one caller, given back when dropped.
pub(crate) struct ScratchTexture {
    leased: Option<Leasable>,
    size: Size,
    owner: Arc<Mutex<ScratchTextures>>,
}

impl ScratchTexture {
    pub(crate) fn lease(
        owner: &Arc<Mutex<ScratchTextures>>,
        device: &wgpu::Device,
        width: u32,
        height: u32,
    ) -> Self {
        let size = (width, height);
        let leased = owner.lock().expect("textures lock").take(device, size);
        Self {
            leased: Some(leased),
            size,
            owner: owner.clone(),
        }
    }

    pub(crate) fn view(&self) -> &wgpu::TextureView {
        &self.leased.as_ref().expect("held until dropped").1
    }

    pub(crate) fn texture(&self) -> &wgpu::Texture {
        &self.leased.as_ref().expect("held until dropped").0
    }

    /// Width and height in texels.
    pub(crate) fn size(&self) -> (u32, u32) {
        self.size
    }
}

impl Drop for ScratchTexture {
    fn drop(&mut self) {
        if let (Some(leased), Ok(mut owner)) = (self.leased.take(), self.owner.lock()) {
            owner.give_back(self.size, leased);
        }
    }
}

#[cfg(test)]
mod tests {
    /// Two leases of one size at once are two textures (threads recording products of one shape
    /// concurrently must not fill each other's B); a texture given back is handed out again.
    #[test]
    fn a_leased_texture_is_nobody_elses_until_given_back() {
        let gpu = crate::Gpu::new().expect("a GPU context");
        let first = gpu.scratch_texture(4, 3).unwrap();
        let second = gpu.scratch_texture(4, 3).unwrap();
        assert_ne!(first.view(), second.view());
        let first_view = first.view().clone();
        drop(first);
        let again = gpu.scratch_texture(4, 3).unwrap();
        assert_eq!(again.view(), &first_view);
        let before = gpu.pool_stats().allocated_bytes;
        drop((second, again));
        assert_eq!(
            gpu.pool_stats().allocated_bytes,
            before,
            "kept, not dropped"
        );
        assert!(gpu.scratch_texture(0, 3).is_err());
    }
}
