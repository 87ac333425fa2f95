//! Waiting for the device and mapping a staging buffer back to the host: shared by tensor
//! readback (`Gpu::read`) and the profiler's timestamps.

use crate::error::{Error, Result};

/// Blocks until the device has finished all submitted work.
pub(crate) fn wait_idle(device: &wgpu::Device) -> Result<()> {
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map(|_| ())
        .map_err(|error| Error::DeviceLost {
            reason: error.to_string(),
        })
}

/// The contents of `staging` (MAP_READ, its copy already submitted), after waiting for the
/// device; `what` names the data in errors.
pub(crate) fn read_staging(
    device: &wgpu::Device,
    staging: &wgpu::Buffer,
    what: &str,
) -> Result<Vec<u8>> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let slice = staging.slice(..);
    slice.map_async(wgpu::MapMode::Read, move |result| {
        let _ = sender.send(result);
    });
    wait_idle(device)?;
    let readback_error = |message: String| Error::Readback {
        what: what.to_string(),
        message,
    };
    receiver
        .recv()
        .map_err(|_| readback_error("the map callback never ran".into()))?
        .map_err(|error| readback_error(error.to_string()))?;
    let bytes = slice
        .get_mapped_range()
        .map_err(|error| readback_error(error.to_string()))?
        .to_vec();
    staging.unmap();
    Ok(bytes)
}
