//! Waiting for the device and mapping a staging buffer back to the host: shared by tensor
//! readback (`Gpu::read_async`), the profiler's timestamps and the finite checks' flags.
//!
//! Natively a readback waits for the device, so its future is normally ready the first time it
//! is polled (`pollster::block_on` runs it). In a browser nothing may block: the future
//! resolves when the browser's `mapAsync` does, and the caller awaits it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::Gpu;
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
    let (sender, mapped) = oneshot();
    let slice = staging.slice(..);
    slice.map_async(wgpu::MapMode::Read, move |result| sender.send(result));
    if cfg!(not(target_arch = "wasm32")) {
        // Runs the callback here, or on another thread polling the same device at the same
        // time (the await then waits for that thread).
        wait_idle(device)?;
    }
    mapped
        .await
        .ok_or_else(|| readback_error("wgpu dropped the map callback without running it".into()))?
        .map_err(|error| readback_error(error.to_string()))?;
    let bytes = slice
        .get_mapped_range()
        .map_err(|error| readback_error(error.to_string()))?
        .to_vec();
    staging.unmap();
    Ok(bytes)
}

/// A value sent once by a callback and awaited: `None` when the sender was dropped unsent.
fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let state = Arc::new(Mutex::new(State {
        value: None,
        closed: false,
        waker: None,
    }));
    (
        Sender {
            state: state.clone(),
        },
        Receiver { state },
    )
}

struct State<T> {
    value: Option<T>,
    /// The sender is gone (after sending, or dropped without).
    closed: bool,
    waker: Option<Waker>,
}

struct Sender<T> {
    state: Arc<Mutex<State<T>>>,
}

struct Receiver<T> {
    state: Arc<Mutex<State<T>>>,
}

impl<T> Sender<T> {
    fn send(self, value: T) {
        self.state.lock().expect("oneshot lock").value = Some(value);
        // Dropping self closes the channel and wakes the receiver.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.state.lock().expect("oneshot lock");
        state.closed = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.state.lock().expect("oneshot lock");
        if let Some(value) = state.value.take() {
            return Poll::Ready(Some(value));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        state.waker = Some(context.waker().clone());
        Poll::Pending
    }
}

impl Gpu {
    /// How many times a tensor or buffer was read back to the host (`read`, `read_async`: the
    /// finite checks' flags too) so far: each read waits for the GPU, so a step should read as
    /// few times as it can. The profiler's timestamps, read when it finishes, are not counted.
    pub fn readbacks(&self) -> u64 {
        self.inner.readbacks.load(Ordering::Relaxed)
    }

    /// Blocks until `readback` (of `what`) is done. Natively only: in a browser this is an
    /// error, and the readback is awaited instead.
    pub(crate) fn wait_for<T>(
        &self,
        what: &str,
        readback: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if cfg!(target_arch = "wasm32") {
            return Err(Error::Readback {
                what: what.to_string(),
                message: "a browser cannot wait for the GPU; await the async readback".into(),
            });
        }
        pollster::block_on(readback)
    }

    /// Reads `size` bytes at `offset` of `buffer` back to the host, after all recorded work.
    pub(crate) async fn read_async(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        size: u64,
        what: &str,
    ) -> Result<Vec<u8>> {
        self.flush()?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        inner.readbacks.fetch_add(1, Ordering::Relaxed);
        let staging = inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = inner
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, size);
        inner.queue.submit(Some(encoder.finish()));
        let bytes = read_staging(&inner.device, &staging, what).await?;
        self.check_alive()?;
        Ok(bytes)
    }
}
