//! The one launch path. Every launcher states what is particular to its dispatch: the kernel
//! (an [`Entry`], with overrides where it has them), its parameters, the tensors at each slot,
//! the FLOPs it does and the workgroup grid. [`Launch`] does the rest once:
//! - a dispatch with nothing to compute, because a bound tensor has no elements, records
//!   nothing (a launcher whose output must still be written, e.g. zeros from an empty sum,
//!   says so before launching);
//! - a 1-D count of invocations becomes workgroups, folded into a 2-D grid past the device's
//!   per-dimension limit ([`Launch::over`]);
//! - the context ([`Gpu::dispatch`]) checks the bound slots against the entry's declaration
//!   and each binding against the device limits, uploads the parameters, builds the bind
//!   group, labels the dispatch for the profiler and error messages, and batches it.

use super::grid_1d;
use crate::error::Result;
use crate::gpu::{BufferRange, Gpu};
use crate::shaders::{Entry, Kernel, Uniform};
use crate::tensor::Tensor;

/// One dispatch being described; recorded by [`Launch::over`] or [`Launch::on`].
#[must_use = "a launch records nothing until `over` or `on`"]
pub(crate) struct Launch<'g, P: 'static> {
    gpu: &'g Gpu,
    kernel: Kernel<P>,
    params: P,
    buffers: Vec<(u32, Option<BufferRange>)>,
    textures: Vec<(u32, wgpu::TextureView)>,
    flops: u64,
}

impl<'g, P: Uniform> Launch<'g, P> {
    /// A launch of `entry` with its default overrides.
    pub(crate) fn new(gpu: &'g Gpu, entry: &'static Entry<P>, params: P) -> Self {
        Self::of(gpu, entry.kernel(), params)
    }

    /// A launch of a kernel whose overrides the launcher set.
    pub(crate) fn of(gpu: &'g Gpu, kernel: Kernel<P>, params: P) -> Self {
        Self {
            gpu,
            kernel,
            params,
            buffers: Vec::new(),
            textures: Vec::new(),
            flops: 0,
        }
    }

    /// Binds `tensor` at `slot` (read or written, as the entry declares).
    pub(crate) fn bind(self, slot: u32, tensor: &Tensor) -> Self {
        self.bind_range(slot, tensor.binding())
    }

    /// Binds a buffer range at `slot`; `None` is an empty tensor's.
    pub(crate) fn bind_range(mut self, slot: u32, range: Option<BufferRange>) -> Self {
        self.buffers.push((slot, range));
        self
    }

    pub(crate) fn bind_texture(mut self, slot: u32, view: wgpu::TextureView) -> Self {
        self.textures.push((slot, view));
        self
    }

    /// The floating-point operations the dispatch does (the profiler's GFLOP/s).
    pub(crate) fn flops(mut self, flops: u64) -> Self {
        self.flops = flops;
        self
    }

    /// Records one invocation per item of `invocations` (the kernel's workgroup size per
    /// workgroup; the shader recovers the linear index as wid.y · num_workgroups.x + wid.x).
    pub(crate) fn over(self, invocations: u64) -> Result<()> {
        let per_workgroup = u64::from(self.kernel.invocations());
        let workgroups = grid_1d(self.gpu, invocations.div_ceil(per_workgroup));
        self.on(workgroups)
    }

    /// Records the dispatch on an explicit grid of workgroups.
    pub(crate) fn on(self, workgroups: [u32; 3]) -> Result<()> {
        let Some(buffers) = self
            .buffers
            .into_iter()
            .map(|(slot, range)| range.map(|range| (slot, range)))
            .collect::<Option<Vec<_>>>()
        else {
            return Ok(()); // a bound tensor has no elements: nothing to compute
        };
        self.gpu.dispatch(
            &self.kernel,
            &self.params,
            &buffers,
            &self.textures,
            workgroups,
            self.flops,
        )
    }
}
