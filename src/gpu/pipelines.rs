//! The pipeline cache: each (shader, entry point, override constants) is compiled once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::error_scope::scoped;
use crate::error::{Error, Result};
use crate::shaders::{Kernel, Shader};

/// A compiled kernel and the layout of its bind group 0 (fetched once: each
/// `get_bind_group_layout` call would create a new layout object).
pub(crate) struct CachedPipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    pub(crate) label: String,
    /// The bindings a dispatch may write (`Shader::writable_bindings`).
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
    pub(crate) fn get(
        &self,
        device: &wgpu::Device,
        kernel: &Kernel,
    ) -> Result<Arc<CachedPipeline>> {
        // f64 is not hashable; its bits are, and equal constants have equal bits.
        let key = (
            kernel.shader,
            kernel.entry,
            kernel
                .overrides
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
            let module = self.module(device, kernel.shader);
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: None,
                module: &module,
                entry_point: Some(kernel.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &kernel.overrides,
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
            writable: kernel.shader.writable_bindings(),
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
