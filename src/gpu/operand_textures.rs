//! Textures that hold copies of matmul operands which stay the same from product to product (a
//! layer's weights): each buffer range is copied into a texture once, and the copy is kept
//! until a dispatch or an upload writes that buffer or its tensor is dropped.
//!
//! The pool owns this cache, so that a buffer returning to the pool forgets its textures at
//! once. Writes are noticed where they are recorded: `Gpu::dispatch` reports every buffer
//! bound at a binding its entry declares `read_write`, and `Gpu::upload` and
//! `Gpu::overwrite` report theirs. A texture dropped while a recorded dispatch still binds
//! it lives on until that dispatch has run (the dispatch holds its view).

use std::collections::HashMap;

use super::textures::ScratchTexture;

/// A buffer range: the buffer, the byte offset and the byte size.
pub(crate) type RangeKey = (wgpu::Buffer, u64, u64);

/// A kept copy: the view kernels bind, its width in texels and its bytes.
#[derive(Clone)]
pub(crate) struct OperandTexture {
    pub(crate) view: wgpu::TextureView,
    pub(crate) width: u32,
    pub(crate) bytes: u64,
}

/// The texture one product reads an operand from: a kept copy, or a scratch texture leased for
/// this product alone (the kept copies' budget had no room); hold it until the product's
/// dispatch is recorded.
pub(crate) enum OperandTextureUse {
    Kept(OperandTexture),
    Scratch(ScratchTexture),
}

impl OperandTextureUse {
    pub(crate) fn view(&self) -> &wgpu::TextureView {
        match self {
            Self::Kept(kept) => &kept.view,
            Self::Scratch(scratch) => scratch.view(),
        }
    }

    /// The width in texels.
    pub(crate) fn width(&self) -> u32 {
        match self {
            Self::Kept(kept) => kept.width,
            Self::Scratch(scratch) => scratch.size().0,
        }
    }
}

#[derive(Default)]
pub(crate) struct OperandTextures {
    kept: HashMap<RangeKey, OperandTexture>,
    /// How many kept copies each buffer has (a write to any other buffer costs one lookup).
    copies_of: HashMap<wgpu::Buffer, usize>,
}

impl OperandTextures {
    pub(crate) fn get(&self, key: &RangeKey) -> Option<OperandTexture> {
        self.kept.get(key).cloned()
    }

    /// Keeps `texture` as the copy of `key`; returns the bytes of a copy it replaces.
    pub(crate) fn keep(&mut self, key: RangeKey, texture: OperandTexture) -> u64 {
        let buffer = key.0.clone();
        match self.kept.insert(key, texture) {
            Some(replaced) => replaced.bytes,
            None => {
                *self.copies_of.entry(buffer).or_default() += 1;
                0
            }
        }
    }

    /// Drops every copy of `buffer`'s ranges (it was written or released); returns their bytes.
    pub(crate) fn forget(&mut self, buffer: &wgpu::Buffer) -> u64 {
        if self.copies_of.remove(buffer).is_none() {
            return 0;
        }
        let mut bytes = 0;
        self.kept.retain(|(kept_buffer, _, _), texture| {
            let stale = kept_buffer == buffer;
            if stale {
                bytes += texture.bytes;
            }
            !stale
        });
        bytes
    }
}

#[cfg(test)]
mod tests {
    use crate::kernels::fill::fill_into;
    use crate::kernels::matmul::{
        MatmulOptions, MatmulVariant, SubgroupTile, matmul, subgroup_kernel_available,
    };
    use crate::{Gpu, Tensor};

    /// A [4, 8] · B [8, 4] on the host.
    fn product(a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0; 16];
        for i in 0..4 {
            for j in 0..4 {
                c[4 * i + j] = (0..8).map(|k| a[8 * i + k] * b[4 * k + j]).sum();
            }
        }
        c
    }

    /// A's kept texture copy never outlives A's contents: a product after a host write, after
    /// a kernel's write and after A's buffer is reused reads the new values; dropping A gives
    /// the copy's bytes back.
    #[test]
    fn a_kept_copy_goes_when_its_buffer_is_written_or_released() {
        let gpu = Gpu::new().expect("a GPU context");
        if !subgroup_kernel_available(&gpu) {
            return;
        }
        let options = MatmulOptions {
            variant: MatmulVariant::SubgroupTexture(SubgroupTile::DEFAULT),
            ..MatmulOptions::default()
        };
        let b_values: Vec<f32> = (0..32).map(|i| (i % 7) as f32 - 3.0).collect();
        let b = Tensor::from_slice(&gpu, [8, 4], &b_values).unwrap();
        // B's scratch texture, once created, stays (allocated, not in use). The warm-up's A
        // is of another size class, so that A below gets another buffer.
        let warm_up = Tensor::full(&gpu, [64, 8], 1.0).unwrap();
        drop(matmul(&warm_up, &b, options).unwrap());
        drop(warm_up);
        gpu.synchronize().unwrap();
        let in_use_before_a = gpu.pool_stats().in_use_bytes;
        let first: Vec<f32> = (0..32).map(|i| (i % 5) as f32 + 1.0).collect();
        let a = Tensor::from_slice(&gpu, [4, 8], &first).unwrap();
        let c = matmul(&a, &b, options).unwrap().to_vec().unwrap();
        assert_eq!(c, product(&first, &b_values), "first product");

        let written: Vec<f32> = first.iter().map(|v| 10.0 - v).collect();
        a.write(&written).unwrap();
        let c = matmul(&a, &b, options).unwrap().to_vec().unwrap();
        assert_eq!(c, product(&written, &b_values), "after a host write");

        fill_into(&a, 2.0).unwrap();
        let c = matmul(&a, &b, options).unwrap().to_vec().unwrap();
        assert_eq!(c, product(&[2.0; 32], &b_values), "after a kernel's write");

        drop(a);
        gpu.synchronize().unwrap();
        assert_eq!(
            gpu.pool_stats().in_use_bytes,
            in_use_before_a,
            "A's buffer and its copy given back"
        );
        let reused = Tensor::from_slice(&gpu, [4, 8], &first).unwrap();
        let c = matmul(&reused, &b, options).unwrap().to_vec().unwrap();
        assert_eq!(c, product(&first, &b_values), "a new tensor in A's buffer");
    }
}
