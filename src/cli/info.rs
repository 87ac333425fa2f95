//! `gradlens info`: every adapter found, the one chosen, its backend, driver, features and the
//! limits that decide what fits (buffer and binding sizes, workgroup counts).

use gradlens::gpu::{AdapterRequest, adapter};
use gradlens::{Gpu, GpuOptions, Result};

pub fn run() -> Result<()> {
    let request = AdapterRequest::from_env()?;
    let adapters = adapter::enumerate_ranked(&request);
    println!("Adapters found (best first):");
    if adapters.is_empty() {
        println!("  (none)");
    }
    for found in &adapters {
        let info = found.get_info();
        println!(
            "  {}  driver: {} {}",
            adapter::describe(&info),
            info.driver,
            info.driver_info
        );
    }

    let gpu = Gpu::with_options(GpuOptions {
        request,
        ..GpuOptions::default()
    })?;
    let info = gpu.adapter_info();
    let limits = gpu.limits();
    println!();
    println!("Chosen: {}", info.name);
    println!("  device type:     {:?}", info.device_type);
    println!("  backend:         {:?}", info.backend);
    println!("  driver:          {} ({})", info.driver, info.driver_info);
    println!(
        "  vendor / device: {:#06x} / {:#06x}",
        info.vendor, info.device
    );
    let features: Vec<String> = gpu
        .features()
        .iter_names()
        .map(|(name, _)| name.to_lowercase())
        .collect();
    println!(
        "  features used:   {}",
        if features.is_empty() {
            "(none of timestamp queries, shader-f16, subgroups)".to_string()
        } else {
            features.join(", ")
        }
    );
    println!("  limits:");
    println!(
        "    max buffer size:              {}",
        bytes(limits.max_buffer_size)
    );
    println!(
        "    max storage binding size:     {}",
        bytes(limits.max_storage_buffer_binding_size)
    );
    println!(
        "    max uniform binding size:     {}",
        bytes(limits.max_uniform_buffer_binding_size)
    );
    println!(
        "    storage buffers per stage:    {}",
        limits.max_storage_buffers_per_shader_stage
    );
    println!(
        "    workgroups per dimension:     {}",
        limits.max_compute_workgroups_per_dimension
    );
    println!(
        "    invocations per workgroup:    {}",
        limits.max_compute_invocations_per_workgroup
    );
    println!(
        "    workgroup size (x, y, z):     ({}, {}, {})",
        limits.max_compute_workgroup_size_x,
        limits.max_compute_workgroup_size_y,
        limits.max_compute_workgroup_size_z
    );
    println!(
        "    workgroup storage:            {}",
        bytes(u64::from(limits.max_compute_workgroup_storage_size))
    );
    if gpu.features().contains(wgpu::Features::SUBGROUP) {
        println!(
            "    subgroup size:                {}..={}",
            info.subgroup_min_size, info.subgroup_max_size
        );
    }
    Ok(())
}

fn bytes(count: u64) -> String {
    const KIB: f64 = 1024.0;
    const MIB: f64 = KIB * KIB;
    if count as f64 >= MIB {
        format!("{count} bytes ({:.1} MiB)", count as f64 / MIB)
    } else {
        format!("{count} bytes ({:.1} KiB)", count as f64 / KIB)
    }
}
