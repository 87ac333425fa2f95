//! Pieces several architectures share.

use super::adapt::{IMAGENET_MEAN, IMAGENET_STD};
use crate::autograd::Var;
use crate::error::Result;
use crate::kernels::conv2d::Conv2d as ConvGeometry;
use crate::nn::{BatchNorm2d, Conv2d, Forward, Init, ParamStore};

/// GoogLeNet's and Inception v3's BasicConv2d: `{name}.conv` (no bias), `{name}.bn` (eps
/// 0.001), ReLU.
pub struct BasicConv2d {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl BasicConv2d {
    /// `kernel`, `stride` and `padding` per axis (height, width); `init` for the weight
    /// (torchvision: truncated normal, std 0.01 in GoogLeNet, 0.1 in Inception v3).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
        init: Init,
        seed: u64,
    ) -> Result<Self> {
        let geometry = ConvGeometry {
            stride: [stride, stride],
            padding,
            ..ConvGeometry::default()
        };
        Ok(Self {
            conv: Conv2d::new(
                store,
                &format!("{name}.conv"),
                in_channels,
                out_channels,
                kernel,
                geometry,
                false,
                init,
                seed,
            )?,
            bn: BatchNorm2d::new(store, &format!("{name}.bn"), out_channels, 1e-3)?,
        })
    }

    /// A square kernel.
    #[allow(clippy::too_many_arguments)]
    pub fn square(
        store: &mut ParamStore,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        init: Init,
        seed: u64,
    ) -> Result<Self> {
        Self::new(
            store,
            name,
            in_channels,
            out_channels,
            [kernel, kernel],
            stride,
            [padding, padding],
            init,
            seed,
        )
    }

    pub fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        // The convolution, BN and ReLU as one op in eval mode.
        self.bn.after_conv(f, &self.conv, x, None, true)
    }
}

/// torchvision's `transform_input` for GoogLeNet and Inception v3: input normalised with
/// ImageNet's mean and std is remapped to the [-1, 1] normalisation (mean 0.5, std 0.5) their
/// original weights were trained with: x_c · (std_c / 0.5) + (mean_c − 0.5) / 0.5.
pub fn transform_input(f: &Forward, x: &Var) -> Result<Var> {
    let scale = IMAGENET_STD.map(|s| s / 0.5);
    let shift = IMAGENET_MEAN.map(|m| (m - 0.5) / 0.5);
    f.tape.channel_affine(x, &scale, &shift)
}
