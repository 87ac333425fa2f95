//! Headless adapter choice. `GRADLENS_BACKEND` narrows the backends, `GRADLENS_ADAPTER` picks an
//! adapter by part of its name; otherwise a discrete GPU wins over an integrated one, which wins
//! over a virtual one, which wins over a CPU adapter (lavapipe, llvmpipe).

use crate::error::{Error, Result};

pub const BACKEND_VAR: &str = "GRADLENS_BACKEND";
pub const ADAPTER_VAR: &str = "GRADLENS_ADAPTER";

/// What the user asked for, read from the environment (or set by hand in tests and tools).
#[derive(Clone, Debug, Default)]
pub struct AdapterRequest {
    /// None: every backend compiled in.
    pub backend: Option<wgpu::Backends>,
    /// Case-insensitive part of the adapter's name.
    pub name_contains: Option<String>,
}

impl AdapterRequest {
    pub fn from_env() -> Result<Self> {
        let backend = match std::env::var(BACKEND_VAR) {
            Ok(name) if !name.trim().is_empty() => Some(parse_backend(&name)?),
            _ => None,
        };
        let name_contains = std::env::var(ADAPTER_VAR)
            .ok()
            .filter(|name| !name.trim().is_empty());
        Ok(Self {
            backend,
            name_contains,
        })
    }

    /// The backends to look at first: the one asked for, or the native APIs (Vulkan, Metal,
    /// DX12). OpenGL is the fallback when those find nothing: probing it is slow and noisy.
    pub fn backends(&self) -> wgpu::Backends {
        self.backend.unwrap_or(wgpu::Backends::PRIMARY)
    }
}

pub fn parse_backend(name: &str) -> Result<wgpu::Backends> {
    match name.trim().to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
        "metal" => Ok(wgpu::Backends::METAL),
        "dx12" | "d3d12" => Ok(wgpu::Backends::DX12),
        "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
        _ => Err(Error::UnknownBackend(name.to_string())),
    }
}

fn new_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
    descriptor.backends = backends;
    wgpu::Instance::new(descriptor)
}

/// Every adapter of the requested backends, best first (the order `choose` uses); with no
/// backend requested and no native adapter found, the OpenGL ones.
pub fn enumerate_ranked(request: &AdapterRequest) -> Vec<wgpu::Adapter> {
    let mut adapters = enumerate(request.backends());
    if adapters.is_empty() && request.backend.is_none() {
        adapters = enumerate(wgpu::Backends::GL);
    }
    adapters.sort_by_key(|adapter| rank(&adapter.get_info()));
    adapters
}

fn enumerate(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    pollster::block_on(new_instance(backends).enumerate_adapters(backends))
}

/// Lower is better: device type first, then a native API over OpenGL.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (device, backend)
}

/// Picks the adapter: the best-ranked one whose name contains the request's filter, if any.
pub fn choose(adapters: Vec<wgpu::Adapter>, request: &AdapterRequest) -> Result<wgpu::Adapter> {
    if adapters.is_empty() {
        let detail = match request.backend {
            Some(backends) => format!(" for backend {backends:?}"),
            None => String::new(),
        };
        return Err(Error::NoAdapter { detail });
    }
    let Some(wanted) = &request.name_contains else {
        return Ok(adapters.into_iter().next().expect("checked non-empty"));
    };
    let wanted_lower = wanted.to_lowercase();
    let available = adapters
        .iter()
        .map(|adapter| describe(&adapter.get_info()))
        .collect::<Vec<_>>()
        .join("; ");
    adapters
        .into_iter()
        .find(|adapter| {
            adapter
                .get_info()
                .name
                .to_lowercase()
                .contains(&wanted_lower)
        })
        .ok_or_else(|| Error::AdapterNotFound {
            wanted: wanted.clone(),
            available,
        })
}

/// One line: name, device type and backend.
pub fn describe(info: &wgpu::AdapterInfo) -> String {
    // Browsers may withhold the adapter's name.
    let name = match info.name.as_str() {
        "" => "unnamed adapter",
        name => name,
    };
    format!("{name} ({:?}, {:?})", info.device_type, info.backend)
}
