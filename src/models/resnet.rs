//! ResNet (He et al. 2015) as torchvision builds it: v1.5, with the stride of a bottleneck on
//! its 3×3 convolution; parameter names are torchvision's (`layer2.0.downsample.1.running_var`).

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::kernels::conv2d::Conv2d as ConvGeometry;
use crate::kernels::pool::Pool2d;
use crate::nn::{BatchNorm2d, Conv2d, Forward, Init, Linear, ParamStore};

/// The two block types: BasicBlock (two 3×3 convolutions) and Bottleneck (1×1, 3×3, 1×1 with
/// four times the width at the output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    Basic,
    Bottleneck,
}

impl Block {
    fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

/// The variants by torchvision's function name: (block, blocks per stage).
pub fn resnet_config(arch: &str) -> Option<(Block, [usize; 4])> {
    Some(match arch {
        "resnet18" => (Block::Basic, [2, 2, 2, 2]),
        "resnet34" => (Block::Basic, [3, 4, 6, 3]),
        "resnet50" => (Block::Bottleneck, [3, 4, 6, 3]),
        "resnet101" => (Block::Bottleneck, [3, 4, 23, 3]),
        "resnet152" => (Block::Bottleneck, [3, 8, 36, 3]),
        _ => return None,
    })
}

/// conv + BN, the unit every block is made of.
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn new(
        store: &mut ParamStore,
        conv_name: &str,
        bn_name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        seed: u64,
    ) -> Result<Self> {
        let geometry = ConvGeometry::default().stride(stride).padding(kernel / 2);
        Ok(Self {
            conv: Conv2d::new(
                store,
                conv_name,
                in_channels,
                out_channels,
                [kernel, kernel],
                geometry,
                false,
                Init::KaimingNormalFanOut,
                seed,
            )?,
            bn: BatchNorm2d::new(store, bn_name, out_channels, 1e-5)?,
        })
    }

    /// bn(conv(x)): one op in eval mode (`BatchNorm2d::after_conv`).
    fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        self.bn.after_conv(f, &self.conv, x, None, false)
    }

    /// relu(bn(conv(x)) + residual?): one op in eval mode (`BatchNorm2d::after_conv`).
    fn forward_relu(&self, f: &Forward, x: &Var, residual: Option<&Var>) -> Result<Var> {
        self.bn.after_conv(f, &self.conv, x, residual, true)
    }
}

struct ResidualBlock {
    /// conv1/bn1, conv2/bn2 (and conv3/bn3 in a bottleneck), ReLU between them.
    path: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl ResidualBlock {
    fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        let (last, inner) = self.path.split_last().expect("a block has convolutions");
        let mut out = x.clone();
        for unit in inner {
            out = unit.forward_relu(f, &out, None)?;
        }
        let identity = match &self.downsample {
            Some(downsample) => downsample.forward(f, x)?,
            None => x.clone(),
        };
        // The block's last convolution, BN, the residual add and the ReLU: one op in eval mode.
        last.forward_relu(f, &out, Some(&identity))
    }
}

pub struct ResNet {
    stem: ConvBn,
    /// layer1 .. layer4.
    stages: Vec<Vec<ResidualBlock>>,
    fc: Linear,
}

impl ResNet {
    /// `arch` is torchvision's function name (resnet18 … resnet152).
    pub fn new(
        store: &mut ParamStore,
        arch: &str,
        in_channels: usize,
        classes: usize,
        seed: u64,
    ) -> Result<Self> {
        Self::with_width(store, arch, in_channels, classes, 64, seed)
    }

    /// A ResNet whose stem and first stage have `width` channels instead of 64 (the stages
    /// double it as usual): the same topology and names, a fraction of the cost, for small
    /// data sets (the synthetic lesions) and tests.
    pub fn with_width(
        store: &mut ParamStore,
        arch: &str,
        in_channels: usize,
        classes: usize,
        width: usize,
        seed: u64,
    ) -> Result<Self> {
        let (block, counts) = resnet_config(arch).ok_or_else(|| {
            Error::invalid(
                "ResNet",
                format!(
                    "unknown arch {arch:?}; resnet18, resnet34, resnet50, resnet101, resnet152"
                ),
            )
        })?;
        let stem = ConvBn::new(store, "conv1", "bn1", in_channels, width, 7, 2, seed)?;
        let mut stages = Vec::new();
        let mut inplanes = width;
        for (stage, &count) in counts.iter().enumerate() {
            let mut blocks = Vec::new();
            let planes = width << stage;
            let out = planes * block.expansion();
            for index in 0..count {
                let stride = if stage > 0 && index == 0 { 2 } else { 1 };
                let prefix = format!("layer{}.{index}", stage + 1);
                let name = |part: &str| format!("{prefix}.{part}");
                // (in, out, kernel, stride) of conv1/bn1, conv2/bn2, ... on the block's path.
                let layers: &[[usize; 4]] = match block {
                    Block::Basic => &[[inplanes, planes, 3, stride], [planes, planes, 3, 1]],
                    Block::Bottleneck => &[
                        [inplanes, planes, 1, 1],
                        [planes, planes, 3, stride],
                        [planes, out, 1, 1],
                    ],
                };
                let path = (1..)
                    .zip(layers)
                    .map(|(i, &[cin, cout, kernel, stride])| {
                        let (conv, bn) = (name(&format!("conv{i}")), name(&format!("bn{i}")));
                        ConvBn::new(store, &conv, &bn, cin, cout, kernel, stride, seed)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let downsample = if stride != 1 || inplanes != out {
                    Some(ConvBn::new(
                        store,
                        &name("downsample.0"),
                        &name("downsample.1"),
                        inplanes,
                        out,
                        1,
                        stride,
                        seed,
                    )?)
                } else {
                    None
                };
                blocks.push(ResidualBlock { path, downsample });
                inplanes = out;
            }
            stages.push(blocks);
        }
        let fc = Linear::new(store, "fc", inplanes, classes, None, seed)?;
        Ok(Self { stem, stages, fc })
    }

    /// Logits [N, classes] for images [N, C, H, W].
    pub fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        let mut x = self.stem.forward_relu(f, x, None)?;
        x = {
            let _scope = f.scope("maxpool");
            f.tape
                .max_pool2d(&x, &Pool2d::new(3).stride(2).padding(1))?
        };
        for (i, stage) in self.stages.iter().enumerate() {
            for block in stage {
                x = block.forward(f, &x)?;
            }
            f.mark(&format!("layer{}", i + 1), &x);
        }
        x = {
            let _scope = f.scope("avgpool");
            f.tape.flatten(&f.tape.adaptive_avg_pool2d(&x, [1, 1])?)?
        };
        self.fc.forward(f, &x)
    }
}
