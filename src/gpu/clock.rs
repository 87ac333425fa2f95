//! The profiler's host clock: `std::time::Instant` natively; in a browser, where it panics,
//! web-time's (performance.now()).

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use std::time::Instant;
#[cfg(target_arch = "wasm32")]
pub(crate) use web_time::Instant;
