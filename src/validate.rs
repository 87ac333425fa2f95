//! Checks on what a user hands the command line, done before anything is built or sent to the
//! GPU, as library functions so that the subcommands, the property tests and the fuzz targets
//! (fuzz/) run the very same code.
//!
//! The rule they share: no allocation may be sized by a field of a file before that field has
//! been checked against the bytes the file really holds, and every refusal names the file.

use crate::checkpoint::ModelInfo;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::models::{ARCHS, build};
use crate::nn::ParamStore;
use crate::weights::{HostTensor, WeightsFile, first_non_finite};

/// The tensor `input` of a `gradlens run` input file: present, [N, C, H, W] with no zero
/// dimension, and only finite values (a NaN would come out as NaN logits with exit code 0).
pub fn run_input(file: &WeightsFile) -> Result<&HostTensor> {
    let fail = |message: String| Error::Weights {
        path: file.path().to_string(),
        message,
    };
    let input = file
        .get("input")
        .ok_or_else(|| fail("has no tensor named input".to_string()))?;
    if input.dims.len() != 4 || input.dims.contains(&0) {
        return Err(fail(format!(
            "input must be a non-empty [N, C, H, W], got {:?}",
            input.dims
        )));
    }
    if let Some((index, value)) = first_non_finite(&input.data) {
        return Err(fail(format!("input holds {value} at index {index}")));
    }
    Ok(input)
}

/// The class labels of a `gradlens run --train` labels file at `path`: the tensor `labels`
/// [N] of an integer dtype, or of a float dtype holding whole numbers, one per input image and
/// each a class of the model's `classes`.
pub fn run_labels(path: &str, bytes: &[u8], batch: usize, classes: usize) -> Result<Vec<usize>> {
    let fail = |message: String| Error::Weights {
        path: path.to_string(),
        message,
    };
    let parsed = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|error| fail(format!("not a valid safetensors file: {error}")))?;
    let view = parsed
        .tensor("labels")
        .map_err(|_| fail("has no tensor named labels".to_string()))?;
    if view.shape() != [batch] {
        return Err(fail(format!(
            "labels must be [{batch}], one per input image, got {:?}",
            view.shape()
        )));
    }
    let values = label_values(&view).ok_or_else(|| {
        fail(format!(
            "labels have dtype {:?}; an integer or float dtype is needed",
            view.dtype()
        ))
    })?;
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let whole = value.fract() == 0.0 && value >= 0.0 && value < classes as f64;
            match whole {
                true => Ok(value as usize),
                false => Err(fail(format!(
                    "label {i} is {value}; the model's classes are 0 to {}",
                    classes - 1
                ))),
            }
        })
        .collect()
}

/// A labels tensor's values as f64 (exact for every integer a label can be).
fn label_values(view: &safetensors::tensor::TensorView) -> Option<Vec<f64>> {
    use safetensors::Dtype;
    let bytes = view.data();
    let each = |size: usize, read: fn(&[u8]) -> f64| bytes.chunks_exact(size).map(read).collect();
    Some(match view.dtype() {
        Dtype::U8 => each(1, |b| f64::from(b[0])),
        Dtype::I8 => each(1, |b| f64::from(b[0] as i8)),
        Dtype::I16 => each(2, |b| f64::from(i16::from_le_bytes([b[0], b[1]]))),
        Dtype::I32 => each(4, |b| f64::from(i32::from_le_bytes(b.try_into().unwrap()))),
        Dtype::I64 => each(8, |b| i64::from_le_bytes(b.try_into().unwrap()) as f64),
        Dtype::F16 => each(2, |b| half::f16::from_le_bytes([b[0], b[1]]).to_f64()),
        Dtype::BF16 => each(2, |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f64()),
        Dtype::F32 => each(4, |b| f64::from(f32::from_le_bytes(b.try_into().unwrap()))),
        Dtype::F64 => each(8, |b| f64::from_le_bytes(b.try_into().unwrap())),
        _ => return None,
    })
}

/// Whether a `gradlens run` input (as [`run_input`] returned it, from the file at `path`) has
/// the channels the model reads: otherwise the first convolution would refuse it with a
/// message about groups and weights that names neither the file nor the model.
pub fn run_input_fits(path: &str, input: &HostTensor, info: &ModelInfo) -> Result<()> {
    let channels = input.dims.get(1).copied();
    let wanted = info.config.in_channels;
    match channels == Some(wanted) {
        true => Ok(()),
        false => Err(Error::Weights {
            path: path.to_string(),
            message: format!(
                "input {:?} has {} channels; the {} reads {wanted}",
                input.dims,
                channels.map_or("no".to_string(), |c| c.to_string()),
                info.arch
            ),
        }),
    }
}

/// Whether the weights in `file` fit the model `info` describes, checked on a shape-only
/// store: nothing is allocated, so a file whose metadata or head claims a huge model is
/// refused before that model is built for real (ParamStore::new initialises every parameter
/// on the GPU as it is declared, before `load_into` can compare shapes).
pub fn model_fits(gpu: &Gpu, file: &WeightsFile, info: &ModelInfo) -> Result<()> {
    fits(gpu, file, info).map_err(|error| with_arch_hint(gpu, file, &info.arch, error))
}

fn fits(gpu: &Gpu, file: &WeightsFile, info: &ModelInfo) -> Result<()> {
    let mut shapes = ParamStore::shapes_only(gpu);
    let model = build(&info.arch, &mut shapes, &info.config)?;
    file.check_fits(&shapes, model.optional_prefixes())
}

/// The model `file` describes when read as `arch` (the flag, else the file's own record),
/// with the architecture its tensors do fit named in the error when it is another.
pub fn model_info(gpu: &Gpu, file: &WeightsFile, arch: Option<&str>) -> Result<ModelInfo> {
    ModelInfo::from_file(file, arch).map_err(|error| match arch {
        Some(arch) => with_arch_hint(gpu, file, arch, error),
        None => error,
    })
}

/// `error` (the file does not fit `arch`) led by the architecture whose every tensor the file
/// does hold, when there is one: "holds a resnet18, not a resnet50: pass --arch resnet18".
/// Each candidate is built shape-only, so nothing is allocated.
fn with_arch_hint(gpu: &Gpu, file: &WeightsFile, arch: &str, error: Error) -> Error {
    let fitting = ARCHS.iter().find(|&&candidate| {
        candidate != arch
            && ModelInfo::from_file(file, Some(candidate))
                .is_ok_and(|info| fits(gpu, file, &info).is_ok())
    });
    let Some(fitting) = fitting else {
        return error;
    };
    let hint = format!("holds a {fitting}, not a {arch}: pass --arch {fitting}");
    match error {
        Error::WeightsMismatch { path, details, .. } => Error::WeightsMismatch {
            path,
            summary: format!(
                "{hint} ({} problems as a {arch}; --full-errors lists them)",
                details.len()
            ),
            details,
        },
        Error::Weights { path, message } => Error::Weights {
            path,
            message: format!("{hint} ({message})"),
        },
        other => other,
    }
}
