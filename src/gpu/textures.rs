//! Scratch textures: rgba32float textures kept per size and reused, for kernels that read an
//! operand faster as texels than from a storage buffer (the subgroup matmul's B on lavapipe).
//!
//! Reuse needs no quarantine, unlike the buffer pool's: a scratch texture is only ever written
//! by dispatches (never by a queue upload), and dispatches run in the order they were recorded,
//! so the next writer of a texture runs after every reader of its previous contents. The bytes
//! count in the pool's statistics as allocated and in use for as long as the texture is kept.

use std::collections::HashMap;

/// Past this many bytes of scratch textures, the kept ones are dropped before a new one is
/// made (views held by recorded dispatches keep theirs alive until the GPU is done).
const BUDGET_BYTES: u64 = 256 << 20;

const BYTES_PER_TEXEL: u64 = 16;

#[derive(Default)]
pub(crate) struct ScratchTextures {
    by_size: HashMap<(u32, u32), wgpu::TextureView>,
    bytes: u64,
}

/// What `ScratchTextures::get` did to the bytes held: the pool's statistics follow it.
pub(crate) struct Change {
    pub(crate) created: u64,
    pub(crate) dropped: u64,
}

impl ScratchTextures {
    /// The texture of exactly `width` × `height` texels, made on first use.
    pub(crate) fn get(
        &mut self,
        device: &wgpu::Device,
        width: u32,
        height: u32,
    ) -> (wgpu::TextureView, Change) {
        let mut change = Change {
            created: 0,
            dropped: 0,
        };
        if let Some(view) = self.by_size.get(&(width, height)) {
            return (view.clone(), change);
        }
        let bytes = u64::from(width) * u64::from(height) * BYTES_PER_TEXEL;
        if self.bytes + bytes > BUDGET_BYTES {
            change.dropped = self.bytes;
            self.by_size.clear();
            self.bytes = 0;
        }
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("gradlens scratch texture"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::STORAGE_BINDING,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        self.by_size.insert((width, height), view.clone());
        self.bytes += bytes;
        change.created = bytes;
        (view, change)
    }
}
