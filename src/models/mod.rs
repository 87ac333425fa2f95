//! Models built from the layers of [`crate::nn`].

pub mod lesion_net;

pub use lesion_net::LesionNet;
