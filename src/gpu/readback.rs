//! Waiting for the device and mapping a staging buffer back to the host: shared by tensor
//! readback (`Gpu::read_async`), the profiler's timestamps and the finite checks' flags.
//!
//! Natively a readback waits for the device, so its future is ready the first time it is
//! polled (`pollster::block_on` runs it). In a browser nothing may block: the future resolves
//! when the browser's `mapAsync` does, and the caller awaits it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};

/// Blocks until the device has finished all submitted work (natively; a browser's device is
/// never waited for, so there this returns at once).
pub(crate) fn wait_idle(device: &wgpu::Device) -> Result<()> {
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map(|_| ())
        .map_err(|error| Error::DeviceLost {
            reason: error.to_string(),
        })
}

/// The contents of `staging` (MAP_READ, its copy already submitted) once the GPU has written
/// them; `what` names the data in errors.
pub(crate) async fn read_staging(
    device: &wgpu::Device,
    staging: &wgpu::Buffer,
    what: &str,
) -> Result<Vec<u8>> {
    let readback_error = |message: String| Error::Readback {
        what: what.to_string(),
        message,
    };
    let mapped = Oneshot::default();
    let sender = mapped.clone();
    let slice = staging.slice(..);
    slice.map_async(wgpu::MapMode::Read, move |result| sender.complete(result));
    let result = if cfg!(target_arch = "wasm32") {
        mapped.await
    } else {
        wait_idle(device)?;
        mapped
            .take()
            .ok_or_else(|| readback_error("the map callback never ran".into()))?
    };
    result.map_err(|error| readback_error(error.to_string()))?;
    let bytes = slice
        .get_mapped_range()
        .map_err(|error| readback_error(error.to_string()))?
        .to_vec();
    staging.unmap();
    Ok(bytes)
}

/// A value delivered once by a callback, awaited as a future.
struct Oneshot<T> {
    state: Arc<Mutex<OneshotState<T>>>,
}

struct OneshotState<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

impl<T> Default for Oneshot<T> {
    fn default() -> Self {
        Self {
            state: Arc::new(Mutex::new(OneshotState {
                value: None,
                waker: None,
            })),
        }
    }
}

impl<T> Clone for Oneshot<T> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<T> Oneshot<T> {
    fn complete(&self, value: T) {
        let mut state = self.state.lock().expect("oneshot lock");
        state.value = Some(value);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// The value, if the callback has run.
    fn take(&self) -> Option<T> {
        self.state.lock().expect("oneshot lock").value.take()
    }
}

impl<T> Future for Oneshot<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<T> {
        let mut state = self.state.lock().expect("oneshot lock");
        match state.value.take() {
            Some(value) => Poll::Ready(value),
            None => {
                state.waker = Some(context.waker().clone());
                Poll::Pending
            }
        }
    }
}
