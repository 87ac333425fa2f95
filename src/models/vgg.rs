//! VGG (Simonyan & Zisserman 2014) as torchvision builds it: 3×3 convolutions with bias (with
//! BatchNorm in the `_bn` variants) and ReLU, 2×2 max pools, an adaptive average pool to 7×7
//! and the classifier Linear(25088, 4096) → ReLU → Dropout → Linear(4096, 4096) → ReLU →
//! Dropout → Linear(4096, classes), named `classifier.0`, `.3` and `.6`.

use super::{Classifier, ModelConfig};
use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::kernels::conv2d::Conv2d as ConvGeometry;
use crate::kernels::pool::Pool2d;
use crate::nn::{BatchNorm2d, Conv2d, Dropout, Forward, Init, Linear, ParamStore};

/// A layer of `features`: a conv's output width, or a max pool (0).
const POOL: usize = 0;

/// torchvision's configurations "A", "B", "D", "E" and whether BN follows each conv.
pub fn vgg_config(arch: &str) -> Option<(&'static [usize], bool)> {
    const A: &[usize] = &[
        64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL,
    ];
    const B: &[usize] = &[
        64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL,
    ];
    const D: &[usize] = &[
        64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL,
    ];
    const E: &[usize] = &[
        64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL, 512, 512,
        512, 512, POOL,
    ];
    let (layers, bn) = match arch.strip_suffix("_bn") {
        Some(base) => (base, true),
        None => (arch, false),
    };
    let config = match layers {
        "vgg11" => A,
        "vgg13" => B,
        "vgg16" => D,
        "vgg19" => E,
        _ => return None,
    };
    Some((config, bn))
}

/// A layer of `features` and the torchvision index of its last module (the ReLU after a conv,
/// or the pool), under which it is marked for Grad-CAM.
enum Feature {
    Conv(Conv2d, Option<BatchNorm2d>, usize),
    Pool(usize),
}

pub struct Vgg {
    dropout: Dropout,
    features: Vec<Feature>,
    classifier: [Linear; 3],
}

impl Vgg {
    pub fn new(store: &mut ParamStore, arch: &str, config: &ModelConfig) -> Result<Self> {
        let (layers, bn) = vgg_config(arch)
            .ok_or_else(|| Error::invalid("VGG", format!("unknown arch {arch:?}")))?;
        let s = config.seed;
        let mut features = Vec::new();
        // Module indices as in torchvision's nn.Sequential: conv, [bn], relu per conv; one per pool.
        let mut index = 0;
        let mut channels = config.in_channels;
        for &width in layers {
            if width == POOL {
                features.push(Feature::Pool(index));
                index += 1;
                continue;
            }
            let conv = Conv2d::new(
                store,
                &format!("features.{index}"),
                channels,
                width,
                [3, 3],
                ConvGeometry::default().padding(1),
                true,
                Init::KaimingNormalFanOut,
                s,
            )?;
            let norm = match bn {
                true => Some(BatchNorm2d::new(
                    store,
                    &format!("features.{}", index + 1),
                    width,
                    1e-5,
                )?),
                false => None,
            };
            index += if bn { 3 } else { 2 };
            features.push(Feature::Conv(conv, norm, index - 1));
            channels = width;
        }
        let init = Some(Init::Normal { std: 0.01 });
        let classifier = [
            Linear::new(store, "classifier.0", 512 * 7 * 7, 4096, init, s)?,
            Linear::new(store, "classifier.3", 4096, 4096, init, s)?,
            Linear::new(store, "classifier.6", 4096, config.classes, init, s)?,
        ];
        Ok(Self {
            dropout: Dropout {
                p: config.dropout.unwrap_or(0.5),
            },
            features,
            classifier,
        })
    }
}

impl Classifier for Vgg {
    /// The ReLU after the last convolution (before the last max pool).
    fn gradcam_layer(&self) -> String {
        let last_relu = self
            .features
            .iter()
            .rev()
            .find_map(|feature| match feature {
                Feature::Conv(_, _, index) => Some(*index),
                Feature::Pool(_) => None,
            });
        format!("features.{}", last_relu.unwrap_or(0))
    }

    fn forward_with_aux(&self, f: &Forward, x: &Var) -> Result<(Var, Vec<Var>)> {
        let mut x = x.clone();
        for feature in &self.features {
            let index = match feature {
                Feature::Conv(conv, norm, index) => {
                    // The bias, BN in eval mode and the ReLU applied by the convolution's
                    // output pass where it can.
                    x = match norm {
                        Some(norm) => norm.after_conv(f, conv, &x, None, true)?,
                        None => conv.forward_relu(f, &x, &format!("features.{index}"))?,
                    };
                    index
                }
                Feature::Pool(index) => {
                    let _scope = f.scope(&format!("features.{index}"));
                    x = f.tape.max_pool2d(&x, &Pool2d::new(2))?;
                    index
                }
            };
            f.mark(&format!("features.{index}"), &x);
        }
        x = {
            let _scope = f.scope("avgpool");
            f.tape.flatten(&f.tape.adaptive_avg_pool2d(&x, [7, 7])?)?
        };
        for (i, layer) in self.classifier.iter().enumerate() {
            x = layer.forward(f, &x)?;
            if i < 2 {
                // classifier.{3i}: Linear, then ReLU and Dropout.
                let _scope = f.scope(&format!("classifier.{}", 3 * i + 1));
                x = self.dropout.forward(f, &f.tape.relu(&x)?)?;
            }
        }
        Ok((x, Vec::new()))
    }
}
