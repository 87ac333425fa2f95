//! Models built from the layers of [`crate::nn`]: torchvision's five classic architectures in
//! every variant, under torchvision's parameter names, and LesionNet (a small CNN for the
//! synthetic lesion set). [`build`] makes any of them by torchvision's function name.

pub mod adapt;
mod blocks;
pub mod densenet;
pub mod googlenet;
pub mod inception_v3;
pub mod lesion_net;
pub mod resnet;
pub mod vgg;

pub use densenet::DenseNet;
pub use googlenet::GoogLeNet;
pub use inception_v3::InceptionV3;
pub use lesion_net::LesionNet;
pub use resnet::ResNet;
pub use vgg::Vgg;

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::nn::{Forward, ParamStore};

/// Every architecture [`build`] knows, by torchvision's function name.
pub const ARCHS: &[&str] = &[
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "googlenet",
    "inception_v3",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
];

/// What a model is built for.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// 3 for RGB; 1 for grayscale ([`adapt::grayscale_first_conv`] turns RGB weights into it).
    pub in_channels: usize,
    pub classes: usize,
    /// GoogLeNet and Inception v3: remap ImageNet-normalised input to their original [-1, 1]
    /// normalisation, as torchvision does when it loads their pretrained weights. Needs 3
    /// input channels; ignored by the other architectures.
    pub transform_input: bool,
    /// Seeds the initial weights (each parameter from its own stream).
    pub seed: u64,
    /// The dropout probability of every dropout layer (GoogLeNet's, Inception v3's and VGG's
    /// heads); `None` keeps torchvision's (0.2 and 0.7 in GoogLeNet's aux heads, 0.5).
    pub dropout: Option<f32>,
    /// ResNets only: the stem's and first stage's channels (torchvision: 64); narrower
    /// ResNets suit small data sets (the demo's lesions).
    pub width: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            in_channels: 3,
            classes: 1000,
            transform_input: false,
            seed: 0,
            dropout: None,
            width: 64,
        }
    }
}

/// An image classifier on the tape.
pub trait Classifier {
    /// Logits and, in training mode, the auxiliary heads' logits (GoogLeNet: aux2, aux1;
    /// Inception v3: AuxLogits), as torchvision returns them.
    fn forward_with_aux(&self, f: &Forward, x: &Var) -> Result<(Var, Vec<Var>)>;

    /// Logits [N, classes] for images [N, C, H, W].
    fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        Ok(self.forward_with_aux(f, x)?.0)
    }

    /// The layer Grad-CAM explains by default: the last convolutional block's output, as
    /// marked with [`Forward::mark`].
    fn gradcam_layer(&self) -> String;

    /// Parameter-name prefixes that weights files may omit (aux heads, unused in eval).
    fn optional_prefixes(&self) -> &'static [&'static str] {
        &[]
    }
}

impl Classifier for ResNet {
    fn gradcam_layer(&self) -> String {
        "layer4".to_string()
    }

    fn forward_with_aux(&self, f: &Forward, x: &Var) -> Result<(Var, Vec<Var>)> {
        Ok((ResNet::forward(self, f, x)?, Vec::new()))
    }
}

impl Classifier for LesionNet {
    fn gradcam_layer(&self) -> String {
        "features".to_string()
    }

    fn forward_with_aux(&self, f: &Forward, x: &Var) -> Result<(Var, Vec<Var>)> {
        Ok((LesionNet::forward(self, f, x)?, Vec::new()))
    }
}

/// Builds `arch` (torchvision's function name) with its parameters registered in `store`.
pub fn build(
    arch: &str,
    store: &mut ParamStore,
    config: &ModelConfig,
) -> Result<Box<dyn Classifier>> {
    if config.transform_input && config.in_channels != 3 {
        return Err(Error::invalid(
            "build",
            format!(
                "transform_input needs 3 input channels, not {}",
                config.in_channels
            ),
        ));
    }
    Ok(match arch {
        "googlenet" => Box::new(GoogLeNet::new(store, config)?),
        "inception_v3" => Box::new(InceptionV3::new(store, config)?),
        _ if resnet::resnet_config(arch).is_some() => Box::new(ResNet::with_width(
            store,
            arch,
            config.in_channels,
            config.classes,
            config.width,
            config.seed,
        )?),
        _ if config.width != 64 => {
            return Err(Error::invalid(
                "build",
                format!("width {} is for ResNets only, not {arch}", config.width),
            ));
        }
        _ if densenet::densenet_config(arch).is_some() => {
            Box::new(DenseNet::new(store, arch, config)?)
        }
        _ if vgg::vgg_config(arch).is_some() => Box::new(Vgg::new(store, arch, config)?),
        _ => {
            return Err(Error::invalid(
                "build",
                format!("unknown arch {arch:?}; one of {}", ARCHS.join(", ")),
            ));
        }
    })
}
