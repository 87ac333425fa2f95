//! Adapting ImageNet weights to medical images: a grayscale first convolution and a fresh
//! classification head. Both edit a [`WeightsFile`] before it is loaded into a model built for
//! the new input channels and classes.

use crate::error::{Error, Result};
use crate::weights::{HostTensor, WeightsFile};

/// ImageNet's normalisation, which torchvision's pretrained weights expect.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The normalisation a grayscale model built by [`grayscale_first_conv`] expects its single
/// channel in: the averages of ImageNet's.
pub const GRAY_MEAN: f32 = (0.485 + 0.456 + 0.406) / 3.0;
pub const GRAY_STD: f32 = (0.229 + 0.224 + 0.225) / 3.0;

/// The first convolution's weight and where a per-output-channel constant can be folded: the
/// running mean of the BatchNorm that follows it, or the conv's own bias (VGG).
fn first_conv(arch: &str) -> Option<(&'static str, Fold)> {
    Some(match arch {
        _ if arch.starts_with("resnet") => ("conv1.weight", Fold::RunningMean("bn1.running_mean")),
        _ if arch.starts_with("densenet") => (
            "features.conv0.weight",
            Fold::RunningMean("features.norm0.running_mean"),
        ),
        _ if arch.starts_with("vgg") => ("features.0.weight", Fold::Bias("features.0.bias")),
        "googlenet" => (
            "conv1.conv.weight",
            Fold::RunningMean("conv1.bn.running_mean"),
        ),
        "inception_v3" => (
            "Conv2d_1a_3x3.conv.weight",
            Fold::RunningMean("Conv2d_1a_3x3.bn.running_mean"),
        ),
        _ => return None,
    })
}

enum Fold {
    /// BN(y + b) = BN'(y) with running_mean' = running_mean − b (eval mode; in training the
    /// batch mean absorbs any constant anyway).
    RunningMean(&'static str),
    /// conv(x) + bias + b.
    Bias(&'static str),
}

/// The classification head's tensors of each architecture, aux heads included.
pub fn head_prefixes(arch: &str) -> &'static [&'static str] {
    match arch {
        _ if arch.starts_with("resnet") => &["fc."],
        _ if arch.starts_with("densenet") => &["classifier."],
        _ if arch.starts_with("vgg") => &["classifier.6."],
        "googlenet" => &["fc.", "aux1.fc2.", "aux2.fc2."],
        "inception_v3" => &["fc.", "AuxLogits.fc."],
        _ => &[],
    }
}

/// The number of classes of the weights in `file`: the rows of the head's weight.
pub fn classes_in(arch: &str, file: &WeightsFile) -> Option<usize> {
    let head = head_prefixes(arch).first()?;
    file.get(&format!("{head}weight"))
        .and_then(|t| t.dims.first().copied())
}

/// Drops the head's tensors so that a model built for another number of classes loads
/// everything else and keeps its freshly initialised head (transfer learning).
pub fn drop_head(arch: &str, file: &mut WeightsFile) -> usize {
    head_prefixes(arch)
        .iter()
        .map(|prefix| file.remove_prefix(prefix))
        .sum()
}

/// Turns RGB weights into single-channel ones. The RGB model saw gray g replicated into
/// x_c = (g − mean_c) / std_c; the gray model sees x = (g − GRAY_MEAN) / GRAY_STD. So the new
/// weight is W' = Σ_c W_c · GRAY_STD / std_c (the RGB axis summed after folding the
/// normalisation in), and the remaining per-output-channel constant
/// b_o = Σ_c (GRAY_MEAN − mean_c) / std_c · Σ_taps W_oc is folded into the BatchNorm after the
/// conv (or its bias). The result equals the RGB model on replicated gray input exactly, up to
/// rounding, except within the first conv's padding reach of the border, where zero padding
/// means different grays in the two normalisations.
///
/// `mean` and `std` are the RGB normalisation the weights expect: ImageNet's, or (0.5, 0.5)
/// for GoogLeNet and Inception v3 weights that relied on transform_input (build the gray model
/// without it).
pub fn grayscale_first_conv(
    arch: &str,
    file: &mut WeightsFile,
    mean: [f32; 3],
    std: [f32; 3],
) -> Result<()> {
    const OP: &str = "grayscale_first_conv";
    let (conv_name, fold) =
        first_conv(arch).ok_or_else(|| Error::invalid(OP, format!("unknown arch {arch:?}")))?;
    let conv = file
        .get(conv_name)
        .cloned()
        .ok_or_else(|| Error::invalid(OP, format!("{} has no {conv_name}", file.path())))?;
    let &[out_channels, 3, kh, kw] = conv.dims.as_slice() else {
        return Err(Error::invalid(
            OP,
            format!("{conv_name} is {:?}, not an RGB convolution", conv.dims),
        ));
    };
    let taps = kh * kw;
    let mut weight = vec![0.0f32; out_channels * taps];
    let mut constant = vec![0.0f64; out_channels];
    for o in 0..out_channels {
        for c in 0..3 {
            let kernel = &conv.data[(o * 3 + c) * taps..(o * 3 + c + 1) * taps];
            let gain = f64::from(GRAY_STD) / f64::from(std[c]);
            let offset = (f64::from(GRAY_MEAN) - f64::from(mean[c])) / f64::from(std[c]);
            for (t, &w) in kernel.iter().enumerate() {
                weight[o * taps + t] += (f64::from(w) * gain) as f32;
                constant[o] += f64::from(w) * offset;
            }
        }
    }
    let (target, sign) = match fold {
        Fold::RunningMean(name) => (name, -1.0),
        Fold::Bias(name) => (name, 1.0),
    };
    let mut folded = file
        .get(target)
        .cloned()
        .ok_or_else(|| Error::invalid(OP, format!("{} has no {target}", file.path())))?;
    for (value, b) in folded.data.iter_mut().zip(&constant) {
        *value = (f64::from(*value) + sign * b) as f32;
    }
    file.insert(target, folded);
    file.insert(
        conv_name,
        HostTensor {
            dims: vec![out_channels, 1, kh, kw],
            data: weight,
        },
    );
    Ok(())
}
