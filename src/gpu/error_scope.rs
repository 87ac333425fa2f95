//! wgpu error scopes around object creation and submission, so that a validation or
//! out-of-memory error is tied to the call (and kernel) that caused it.

/// Runs `body` inside an error scope of `filter` and returns what it made and the scope's
/// error, if any.
///
/// In a browser the scope's verdict is a promise that cannot be waited for synchronously, so
/// no scope is opened there: errors reach the device's uncaptured-error handler instead, and
/// the next check of the context reports them.
pub(crate) fn scoped<T>(
    device: &wgpu::Device,
    filter: wgpu::ErrorFilter,
    body: impl FnOnce() -> T,
) -> (T, Option<wgpu::Error>) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let scope = device.push_error_scope(filter);
        let made = body();
        (made, pollster::block_on(scope.pop()))
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = (device, filter);
        (body(), None)
    }
}
