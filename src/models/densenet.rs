//! DenseNet-BC (Huang et al. 2016) as torchvision builds it: a 7×7 stem, four dense blocks
//! whose layers (BN → ReLU → 1×1 conv → BN → ReLU → 3×3 conv) each see the concatenation of
//! all earlier features, transitions (BN → ReLU → 1×1 conv → 2×2 average pool), a final BN,
//! ReLU, global average and `classifier`.
//!
//! Concatenation without quadratic copying: each block owns one buffer of its final width,
//! into whose first channels the input goes once and whose next channels take each layer's new
//! features. For a batch of one the 3×3 convolutions write there directly and a layer's input
//! is the buffer's channel prefix, a view; a larger batch, whose channel slices are not
//! contiguous in NCHW, copies each layer's new features in (a copy per layer, not of every
//! earlier one). In every mode a layer's first norm reads its input's channels in the buffer
//! and its backward writes each part's gradient by itself (`Tape::batch_norm_relu_of_parts`):
//! no concatenation and no split. In training mode each part's batch statistics are computed
//! once, as it arrives, and serve every later layer's first norm (`BlockStatistics`).

use super::{Classifier, ModelConfig};
use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::kernels::batchnorm::{BatchStatistics, batch_norm_statistics};
use crate::kernels::concat::copy_channels_into;
use crate::kernels::conv2d::Conv2d as ConvGeometry;
use crate::kernels::fill::copy_into;
use crate::kernels::pool::Pool2d;
use crate::nn::{BatchNorm2d, Conv2d, Forward, Init, Linear, ParamStore};
use crate::tensor::Tensor;

/// (growth rate, layers per block, stem width) by torchvision's function name.
pub fn densenet_config(arch: &str) -> Option<(usize, [usize; 4], usize)> {
    Some(match arch {
        "densenet121" => (32, [6, 12, 24, 16], 64),
        "densenet161" => (48, [6, 12, 36, 24], 96),
        "densenet169" => (32, [6, 12, 32, 32], 64),
        "densenet201" => (32, [6, 12, 48, 32], 64),
        _ => return None,
    })
}

/// BN → ReLU → conv, the unit of dense layers and transitions.
struct NormReluConv {
    norm: BatchNorm2d,
    conv: Conv2d,
}

impl NormReluConv {
    #[allow(clippy::too_many_arguments)]
    fn new(
        store: &mut ParamStore,
        norm: &str,
        conv: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        seed: u64,
    ) -> Result<Self> {
        Ok(Self {
            norm: BatchNorm2d::new(store, norm, in_channels, 1e-5)?,
            conv: Conv2d::new(
                store,
                conv,
                in_channels,
                out_channels,
                [kernel, kernel],
                ConvGeometry::default().padding(kernel / 2),
                false,
                // torchvision's DenseNet: kaiming_normal_ with its default fan_in mode.
                Init::KaimingNormalFanIn,
                seed,
            )?,
        })
    }

    fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        let y = self.norm_relu(f, x)?;
        self.conv.forward(f, &y)
    }

    /// `forward` with the convolution writing into channels `first ..` of `dest`.
    fn forward_into(&self, f: &Forward, x: &Var, dest: &Tensor, first: usize) -> Result<Var> {
        let y = self.norm_relu(f, x)?;
        self.conv.forward_into(f, &y, dest, first)
    }

    /// BN and ReLU in one pass in eval mode.
    fn norm_relu(&self, f: &Forward, x: &Var) -> Result<Var> {
        self.norm.forward_then(f, x, None, true)
    }

    /// `forward` of torch.cat(parts, 1), the parts lying side by side in `buffer`, in training
    /// mode with their batch statistics.
    fn forward_parts(
        &self,
        f: &Forward,
        parts: &[&Var],
        buffer: &Tensor,
        statistics: Option<&BatchStatistics>,
    ) -> Result<Var> {
        let y = self.norm.relu_of_parts(f, parts, buffer, statistics)?;
        self.conv.forward(f, &y)
    }
}

/// A block's output buffer [N, C_final, H, W], and whether its layers write their features
/// there in place: at batch 1 (where channel slices are contiguous) with every layer's slice
/// at an offset the adapter can bind. Otherwise each layer's features are copied there.
fn block_buffer(x: &Var, layers: usize, growth: usize) -> Result<(Tensor, bool)> {
    let &[n, first, h, w] = x.dims() else {
        return Err(Error::invalid(
            "densenet block",
            format!("needs an NCHW input, got shape {:?}", x.dims()),
        ));
    };
    let gpu = x.tensor().gpu();
    let alignment = gpu.limits().min_storage_buffer_offset_alignment as usize;
    let in_place = n == 1
        && (0..=layers).all(|l| ((first + l * growth) * h * w * 4).is_multiple_of(alignment));
    let buffer = Tensor::empty(gpu, [n, first + layers * growth, h, w])?;
    Ok((buffer, in_place))
}

/// A block's batch statistics per channel of its buffer, in training mode: each part's are
/// computed once, as it arrives, for every later layer's first norm, which would otherwise
/// reduce all the channels before it again (quadratic work in the block's depth).
struct BlockStatistics {
    mean: Tensor,
    variance: Tensor,
}

impl BlockStatistics {
    fn new(buffer: &Tensor) -> Result<Self> {
        let channels = [buffer.dims()[1]];
        Ok(Self {
            mean: Tensor::empty(buffer.gpu(), channels)?,
            variance: Tensor::empty(buffer.gpu(), channels)?,
        })
    }

    /// Takes in the statistics of `part` [N, k, H, W], the buffer's channels first .. first + k.
    fn add(&self, part: &Tensor, first: usize) -> Result<()> {
        let statistics = batch_norm_statistics(part)?;
        let k = part.dims()[1];
        copy_into(&statistics.mean, 0, &self.mean, first, k)?;
        copy_into(&statistics.variance, 0, &self.variance, first, k)
    }

    /// The statistics of channels 0 .. channels.
    fn prefix(&self, channels: usize) -> Result<BatchStatistics> {
        Ok(BatchStatistics {
            mean: self.mean.rows(0, channels)?,
            variance: self.variance.rows(0, channels)?,
        })
    }
}

enum Stage {
    Block(Vec<[NormReluConv; 2]>, String),
    Transition(NormReluConv, String),
}

pub struct DenseNet {
    growth: usize,
    conv0: Conv2d,
    norm0: BatchNorm2d,
    stages: Vec<Stage>,
    norm5: BatchNorm2d,
    classifier: Linear,
}

impl DenseNet {
    pub fn new(store: &mut ParamStore, arch: &str, config: &ModelConfig) -> Result<Self> {
        let (growth, blocks, stem) = densenet_config(arch)
            .ok_or_else(|| crate::Error::invalid("DenseNet", format!("unknown arch {arch:?}")))?;
        let s = config.seed;
        let conv0 = Conv2d::new(
            store,
            "features.conv0",
            config.in_channels,
            stem,
            [7, 7],
            ConvGeometry::default().stride(2).padding(3),
            false,
            Init::KaimingNormalFanIn,
            s,
        )?;
        let norm0 = BatchNorm2d::new(store, "features.norm0", stem, 1e-5)?;
        let mut stages = Vec::new();
        let mut channels = stem;
        for (b, &layers) in blocks.iter().enumerate() {
            let mut block = Vec::new();
            for l in 0..layers {
                let p = format!("features.denseblock{}.denselayer{}", b + 1, l + 1);
                let inputs = channels + l * growth;
                block.push([
                    NormReluConv::new(
                        store,
                        &format!("{p}.norm1"),
                        &format!("{p}.conv1"),
                        inputs,
                        4 * growth,
                        1,
                        s,
                    )?,
                    NormReluConv::new(
                        store,
                        &format!("{p}.norm2"),
                        &format!("{p}.conv2"),
                        4 * growth,
                        growth,
                        3,
                        s,
                    )?,
                ]);
            }
            stages.push(Stage::Block(block, format!("features.denseblock{}", b + 1)));
            channels += layers * growth;
            if b + 1 < blocks.len() {
                let p = format!("features.transition{}", b + 1);
                let unit = NormReluConv::new(
                    store,
                    &format!("{p}.norm"),
                    &format!("{p}.conv"),
                    channels,
                    channels / 2,
                    1,
                    s,
                )?;
                stages.push(Stage::Transition(unit, p));
                channels /= 2;
            }
        }
        let norm5 = BatchNorm2d::new(store, "features.norm5", channels, 1e-5)?;
        // nn.Linear's default weight, and a zero bias as torchvision sets it.
        let init = Init::DefaultFanIn { fan_in: channels };
        let classifier = Linear::new(store, "classifier", channels, config.classes, Some(init), s)?;
        Ok(Self {
            growth,
            conv0,
            norm0,
            stages,
            norm5,
            classifier,
        })
    }
}

impl DenseNet {
    /// A dense block: each layer sees torch.cat of the block's input and every earlier
    /// layer's new features; the result is the concatenation of them all. The features lie
    /// side by side in one buffer, which the layers' first norms read in place: nothing is
    /// concatenated per layer (the memory-efficient DenseNet layout).
    fn block(&self, f: &Forward, x: Var, layers: &[[NormReluConv; 2]]) -> Result<Var> {
        let (buffer, in_place) = block_buffer(&x, layers.len(), self.growth)?;
        let mut first = x.dims()[1];
        let input = match in_place {
            true => f.tape.copy_into_channels(&x, &buffer, 0)?,
            false => {
                copy_channels_into(x.tensor(), &buffer, 0)?;
                x
            }
        };
        let statistics = match f.training() {
            true => Some(BlockStatistics::new(&buffer)?),
            false => None,
        };
        let add_statistics = |part: &Var, at: usize| match &statistics {
            Some(block) => block.add(part.tensor(), at),
            None => Ok(()),
        };
        add_statistics(&input, 0)?;
        let mut features = vec![input];
        for [bottleneck, conv] in layers {
            let known = statistics.as_ref().map(|s| s.prefix(first)).transpose()?;
            let parts: Vec<&Var> = features.iter().collect();
            let y = bottleneck.forward_parts(f, &parts, &buffer, known.as_ref())?;
            let new = match in_place {
                true => conv.forward_into(f, &y, &buffer, first)?,
                false => {
                    let new = conv.forward(f, &y)?;
                    copy_channels_into(new.tensor(), &buffer, first)?;
                    new
                }
            };
            add_statistics(&new, first)?;
            first += self.growth;
            features.push(new);
        }
        let parts: Vec<&Var> = features.iter().collect();
        f.tape.join_channel_slices(&parts, &buffer)
    }
}

impl Classifier for DenseNet {
    fn gradcam_layer(&self) -> String {
        "features.norm5".to_string()
    }

    fn forward_with_aux(&self, f: &Forward, x: &Var) -> Result<(Var, Vec<Var>)> {
        let mut x = self.norm0.after_conv(f, &self.conv0, x, None, true)?;
        x = {
            let _scope = f.scope("features.pool0");
            f.tape
                .max_pool2d(&x, &Pool2d::new(3).stride(2).padding(1))?
        };
        for stage in &self.stages {
            let _scope = f.scope(match stage {
                Stage::Block(_, name) | Stage::Transition(_, name) => name,
            });
            let (output, name) = match stage {
                Stage::Block(layers, name) => (self.block(f, x, layers)?, name),
                Stage::Transition(unit, name) => {
                    let y = unit.forward(f, &x)?;
                    (f.tape.avg_pool2d(&y, &Pool2d::new(2), true)?, name)
                }
            };
            f.mark(name, &output);
            x = output;
        }
        let features = self.norm5.forward(f, &x)?;
        f.mark("features.norm5", &features);
        x = {
            let _scope = f.scope("features.relu5");
            f.tape.relu(&features)?
        };
        x = {
            // torchvision's DenseNet pools functionally, not in a named module.
            let _scope = f.scope("adaptive_avg_pool2d");
            f.tape.flatten(&f.tape.adaptive_avg_pool2d(&x, [1, 1])?)?
        };
        Ok((self.classifier.forward(f, &x)?, Vec::new()))
    }
}
