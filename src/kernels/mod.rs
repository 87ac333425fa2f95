//! Kernel launchers: one file per shader file. Each validates its arguments, allocates its
//! output, and records the dispatch; none waits for the GPU.

/// Builder methods for geometry fields that hold one value per axis, [height, width]: each sets
/// both axes to the value given (PyTorch's `stride=2` for `stride=(2, 2)`).
macro_rules! per_axis_setters {
    ($($field:ident),*) => {$(
        pub fn $field(mut self, $field: usize) -> Self {
            self.$field = [$field, $field];
            self
        }
    )*};
}

pub mod attribution;
pub mod batchnorm;
pub mod cam;
pub mod concat;
pub mod conv2d;
pub mod elementwise;
pub mod fill;
pub mod finite;
mod launch;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod occlusion;
pub mod optim;
pub mod perturbation;
pub mod pool;
pub mod reduce;
pub mod roofline;
pub mod score_cam;
pub mod softmax;
pub mod transpose;
pub mod tuning;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::shaders::EntryInterface;
use crate::tensor::Tensor;

pub(crate) use launch::Launch;

/// Every entry point the launchers declare, with its uniform layout and bindings: what the
/// interface test (`tests/kernel_interface.rs`) holds to naga's reading of the shaders.
pub fn catalogue() -> Vec<EntryInterface> {
    [
        attribution::entries(),
        batchnorm::entries(),
        cam::entries(),
        concat::entries(),
        conv2d::entries(),
        elementwise::entries(),
        fill::entries(),
        finite::entries(),
        loss::entries(),
        matmul::entries(),
        matmul::subgroup_entries(),
        occlusion::entries(),
        optim::entries(),
        perturbation::entries(),
        pool::entries(),
        reduce::entries(),
        roofline::entries(),
        score_cam::entries(),
        softmax::entries(),
        transpose::entries(),
    ]
    .concat()
}

/// Workgroup counts for `count` workgroups of a 1-D kernel: a single row while the device's
/// per-dimension limit allows, otherwise a 2-D grid of full rows (the shaders compute the linear
/// index as wid.y · num_workgroups.x + wid.x and skip the surplus).
pub(crate) fn grid_1d(gpu: &Gpu, count: u64) -> [u32; 3] {
    let max = u64::from(gpu.max_workgroups_per_dimension());
    if count <= max {
        return [count as u32, 1, 1];
    }
    [max as u32, count.div_ceil(max) as u32, 1]
}

/// How many f32 elements one piece of a tensor larger than a storage binding holds: as many
/// as one binding covers, a multiple of the alignment a binding's offset needs.
fn binding_piece_len(gpu: &Gpu) -> usize {
    let limits = gpu.limits();
    let alignment = (limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
    (limits.max_storage_buffer_binding_size as usize / 4) / alignment * alignment
}

/// `t` as flat views that each fit one storage binding (`binding_piece_len` elements, the last
/// fewer), in order: the whole tensor, flat, when it fits. Passes that treat every element
/// alike record one dispatch per piece, so that a tensor larger than a binding (VGG's 411 MB
/// classifier.0.weight over lavapipe's 128 MiB) still runs.
pub(crate) fn binding_pieces(t: &Tensor) -> Result<Vec<Tensor>> {
    let count = t.numel();
    let flat = t.reshape([count])?;
    if t.byte_size() <= t.gpu().limits().max_storage_buffer_binding_size {
        return Ok(vec![flat]);
    }
    let piece = binding_piece_len(t.gpu());
    (0..count)
        .step_by(piece)
        .map(|start| flat.rows(start, piece.min(count - start)))
        .collect()
}

/// About this many workgroups make a pass over 8×8-position grids (`plane_grid`): enough to
/// keep every thread of a CPU adapter busy, few enough that lavapipe's fixed cost per workgroup
/// stays small beside the work (ResNet-50's col2im and max-pool backward ran 1.5–2× faster
/// with several small planes per workgroup than with one; BENCHMARKS.md).
const PLANE_GRID_WORKGROUPS: u32 = 512;

/// Workgroups for a pass over 8×8 positions of [width, height] of each of `planes` planes,
/// whose shader loops over planes from wid.z in steps of num_workgroups.z: one plane per
/// workgroup where planes are large, several where they are small.
pub(crate) fn plane_grid(gpu: &Gpu, [width, height]: [u32; 2], planes: u32) -> [u32; 3] {
    let per_plane = width.div_ceil(8) * height.div_ceil(8);
    let plane_groups = PLANE_GRID_WORKGROUPS
        .div_ceil(per_plane.max(1))
        .clamp(1, planes.max(1))
        .min(gpu.max_workgroups_per_dimension());
    [width.div_ceil(8), height.div_ceil(8), plane_groups]
}

/// An element count as the u32 the shaders index with.
pub(crate) fn as_u32(op: &'static str, what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| {
        Error::invalid(
            op,
            format!("{what} = {value} exceeds the 32-bit index range"),
        )
    })
}
