//! Models built from the layers of [`crate::nn`].

pub mod lesion_net;
pub mod resnet;

pub use lesion_net::LesionNet;
pub use resnet::ResNet;
