//! gradlens: a from-scratch GPU compute engine for convolutional networks on wgpu, with
//! hand-written WGSL kernels, each checked against a plain-Rust reference.
//!
//! Data flows one way: tensors (GPU buffers with shapes) go into kernel launchers
//! ([`kernels`]), which validate their arguments and record dispatches into the context's batch
//! ([`gpu::Gpu`]); nothing waits for the GPU until a tensor is read back.

// In the browser wgpu's objects are neither Send nor Sync, so the context's Arcs could be Rcs
// there; natively they must be Arcs.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

pub mod autograd;
pub mod checkpoint;
pub mod error;
pub mod gpu;
pub mod imaging;
pub mod kernels;
pub mod models;
pub mod nn;
pub mod profiling;
pub mod reference;
pub mod roofline;
pub mod saliency;
pub mod shaders;
pub mod tensor;
pub mod train;
pub mod validate;
pub mod weights;

pub use error::{Error, Result};
pub use gpu::{Gpu, GpuOptions, LimitCaps};
pub use tensor::{Shape, Tensor};
