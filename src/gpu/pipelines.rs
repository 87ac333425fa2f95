//! The pipeline cache: each (shader, entry point, override constants) is compiled once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::error_scope::scoped;
use crate::error::{Error, Result};
use crate::shaders::{Access, BindingKind, Kernel, Shader};

/// A compiled kernel and the layout of its bind group 0 (fetched once: each
/// `get_bind_group_layout` call would create a new layout object).
pub(crate) struct CachedPipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    pub(crate) label: String,
    /// The bindings a dispatch may write: the entry's `read_write` buffers.
    pub(crate) writable: Vec<u32>,
}

type PipelineKey = (Shader, &'static str, Vec<(&'static str, u64)>);

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<Shader, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<CachedPipeline>>>,
}

impl PipelineCache {
    /// The pipeline of `kernel`, compiled on first use. A shader or override error names the
    /// kernel.
    pub(crate) fn get<P>(
        &self,
        device: &wgpu::Device,
        kernel: &Kernel<P>,
    ) -> Result<Arc<CachedPipeline>> {
        let entry = kernel.entry();
        // f64 is not hashable; its bits are, and equal constants have equal bits.
        let key = (
            entry.shader,
            entry.name,
            kernel
                .overrides()
                .iter()
                .map(|&(name, value)| (name, value.to_bits()))
                .collect(),
        );
        let mut pipelines = self.pipelines.lock().expect("pipeline cache lock");
        if let Some(cached) = pipelines.get(&key) {
            return Ok(cached.clone());
        }
        let label = kernel.label();
        let ((pipeline, layout), error) = scoped(device, wgpu::ErrorFilter::Validation, || {
            let module = self.module(device, entry.shader);
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: None,
                module: &module,
                entry_point: Some(entry.name),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: kernel.overrides(),
                    // Every kernel that uses workgroup memory writes it before reading it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
            let layout = pipeline.get_bind_group_layout(0);
            (pipeline, layout)
        });
        if let Some(error) = error {
            return Err(Error::Validation {
                kernel: label,
                message: error.to_string(),
            });
        }
        let cached = Arc::new(CachedPipeline {
            pipeline,
            layout,
            label,
            writable: entry
                .bindings
                .iter()
                .filter(|binding| binding.kind == BindingKind::Buffer(Access::ReadWrite))
                .map(|binding| binding.slot)
                .collect(),
        });
        pipelines.insert(key, cached.clone());
        Ok(cached)
    }

    pub(crate) fn len(&self) -> usize {
        self.pipelines.lock().expect("pipeline cache lock").len()
    }

    fn module(&self, device: &wgpu::Device, shader: Shader) -> wgpu::ShaderModule {
        let mut modules = self.modules.lock().expect("shader module lock");
        modules
            .entry(shader)
            .or_insert_with(|| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(shader.name()),
                    source: wgpu::ShaderSource::Wgsl(shader.source().into()),
                })
            })
            .clone()
    }
}
