//! Weights in safetensors files, under torchvision's state_dict names: load into a model's
//! [`ParamStore`] (every problem reported at once), and save a store back.
//!
//! Accepted: f32, f16, bf16 and f64 tensors (converted to f32); `num_batches_tracked` (an
//! integer counter in every torchvision BatchNorm) is accepted and ignored; DenseNet's
//! old-style keys (`denselayer1.norm.1.weight`, still in the original checkpoint files) are
//! renamed as torchvision renames them (`denselayer1.norm1.weight`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};
use crate::nn::ParamStore;
use crate::tensor::Tensor;

/// A tensor in host memory, as read from a file.
#[derive(Clone, Debug)]
pub struct HostTensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// A parsed weights file.
pub struct WeightsFile {
    path: String,
    tensors: BTreeMap<String, HostTensor>,
    metadata: HashMap<String, String>,
}

impl WeightsFile {
    /// Reads and parses `path`; every malformed header, offset, dtype or size is an error
    /// naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| Error::Weights {
            path: shown.clone(),
            message: format!("cannot read: {error}"),
        })?;
        Self::from_bytes(&bytes, &shown)
    }

    /// Parses safetensors bytes; `path` names them in errors.
    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<Self> {
        let fail = |message: String| Error::Weights {
            path: path.to_string(),
            message,
        };
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|error| fail(format!("not a valid safetensors file: {error}")))?;
        let parsed = SafeTensors::deserialize(bytes)
            .map_err(|error| fail(format!("not a valid safetensors file: {error}")))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in parsed.tensors() {
            if name.ends_with("num_batches_tracked") {
                continue;
            }
            let data = to_f32(&view).ok_or_else(|| {
                fail(format!(
                    "tensor {name} has dtype {:?}; gradlens reads F32, F16, BF16 and F64",
                    view.dtype()
                ))
            })?;
            let key = legacy_densenet_name(&name).unwrap_or(name);
            let tensor = HostTensor {
                dims: view.shape().to_vec(),
                data,
            };
            // A legacy DenseNet key and its new-style twin would otherwise overwrite each
            // other silently, the survivor chosen by the header's order.
            if tensors.insert(key.clone(), tensor).is_some() {
                return Err(fail(format!(
                    "tensor {key} appears twice (once under its legacy DenseNet name)"
                )));
            }
        }
        Ok(Self {
            path: path.to_string(),
            tensors,
            metadata: header.metadata().clone().unwrap_or_default(),
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.tensors.get(name)
    }

    /// Replaces or adds a tensor (model adaptations edit a file's tensors before loading).
    pub fn insert(&mut self, name: &str, tensor: HostTensor) {
        self.tensors.insert(name.to_string(), tensor);
    }

    /// Removes every tensor whose name starts with `prefix`; returns how many.
    pub fn remove_prefix(&mut self, prefix: &str) -> usize {
        let before = self.tensors.len();
        self.tensors.retain(|name, _| !name.starts_with(prefix));
        before - self.tensors.len()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Whether the file fits the model declared in `store` (also a shape-only store: no GPU
    /// memory is touched): every tensor the model declares is present (except under
    /// `optional_prefixes`) with the model's shape and only finite values, and the file holds
    /// nothing else. The error names a few problems of each kind and counts the rest; its
    /// `details` list them all.
    pub fn check_fits(&self, store: &ParamStore, optional_prefixes: &[&str]) -> Result<()> {
        let mut missing = Vec::new();
        let mut misshaped = Vec::new();
        let mut non_finite = Vec::new();
        for (name, dims, _) in store.shapes() {
            match self.tensors.get(name) {
                None if optional_prefixes.iter().any(|p| name.starts_with(p)) => {}
                None => missing.push(name.to_string()),
                Some(found) if found.dims != dims => misshaped.push(format!(
                    "{name} is {:?} in the file, {dims:?} in the model",
                    found.dims
                )),
                // A NaN or an infinity in a weight turns every logit into NaN: refused here,
                // where the file and the tensor can still be named.
                Some(found) => {
                    if let Some((index, value)) = first_non_finite(&found.data) {
                        non_finite.push(format!("{name} holds {value} at index {index}"));
                    }
                }
            }
        }
        let unexpected: Vec<String> = self
            .names()
            .filter(|name| !store.contains(name))
            .map(str::to_string)
            .collect();
        // Shapes hold commas: those problems are separated by semicolons.
        let kinds = [
            ("missing", ", ", missing),
            ("unexpected", ", ", unexpected),
            ("wrong shape:", "; ", misshaped),
            ("not finite:", "; ", non_finite),
        ];
        if kinds.iter().all(|(_, _, problems)| problems.is_empty()) {
            return Ok(());
        }
        let summary = kinds
            .iter()
            .filter(|(_, _, problems)| !problems.is_empty())
            .map(|(kind, separator, problems)| format!("{kind} {}", examples(problems, separator)))
            .collect::<Vec<_>>()
            .join("; ");
        let details = kinds
            .iter()
            .flat_map(|(kind, _, problems)| problems.iter().map(move |p| format!("{kind} {p}")))
            .collect();
        let truncated = kinds
            .iter()
            .any(|(_, _, problems)| problems.len() > MISMATCH_EXAMPLES);
        let more = if truncated {
            " (--full-errors lists all)"
        } else {
            ""
        };
        Err(Error::WeightsMismatch {
            path: self.path.clone(),
            summary: format!("does not fit the model: {summary}{more}"),
            details,
        })
    }

    /// Loads every tensor of the model (parameters and buffers) from the file. Tensors under
    /// `optional_prefixes` (aux heads in eval) may be absent. Missing, unexpected, mis-shaped
    /// and non-finite tensors are all named in one error ([`WeightsFile::check_fits`]);
    /// nothing is loaded unless all fit.
    pub fn load_into(&self, store: &mut ParamStore, optional_prefixes: &[&str]) -> Result<()> {
        self.check_fits(store, optional_prefixes)?;
        let wanted: Vec<String> = store
            .shapes()
            .map(|(name, _, _)| name.to_string())
            .collect();
        for name in wanted {
            if let Some(found) = self.tensors.get(&name) {
                let tensor = Tensor::from_slice(store.gpu(), found.dims.clone(), &found.data)?;
                store.set(&name, tensor)?;
            }
        }
        Ok(())
    }
}

/// At most `MISMATCH_EXAMPLES` of `problems`, and how many more there are: an error line stays
/// readable when a file holds another architecture's hundreds of tensors.
fn examples(problems: &[String], separator: &str) -> String {
    let shown = problems[..problems.len().min(MISMATCH_EXAMPLES)].join(separator);
    match problems.len().checked_sub(MISMATCH_EXAMPLES) {
        Some(more) if more > 0 => format!("{shown} and {more} more"),
        _ => shown,
    }
}

/// How many problems of each kind a mismatch names (`--full-errors` prints them all).
const MISMATCH_EXAMPLES: usize = 3;

/// Writes every parameter and buffer of `store` as f32, plus a zero `num_batches_tracked` per
/// BatchNorm so that torchvision's strict `load_state_dict` accepts the file. Written to a
/// temporary file first and renamed: a failed save leaves no partial file.
pub fn save(store: &ParamStore, path: &Path, metadata: &HashMap<String, String>) -> Result<()> {
    save_with(store, &[], path, metadata)
}

/// `save`, with `extra` tensors beside the model's (a resumable checkpoint's optimiser state).
pub fn save_with(
    store: &ParamStore,
    extra: &[(String, Tensor)],
    path: &Path,
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let name = path.display().to_string();
    let bytes = store.gpu().wait_for(
        "a checkpoint",
        checkpoint_bytes(store, extra, metadata, &name),
    )?;
    write_atomically(path, &bytes).map_err(|error| Error::Weights {
        path: name,
        message: format!("cannot write: {error}"),
    })
}

/// The bytes `save_with` writes, every tensor's readback awaited: the browser page exports a
/// fine-tuned model with this. `name` names the checkpoint in errors.
pub async fn checkpoint_bytes(
    store: &ParamStore,
    extra: &[(String, Tensor)],
    metadata: &HashMap<String, String>,
    name: &str,
) -> Result<Vec<u8>> {
    let mut host: Vec<(String, Vec<usize>, Vec<u8>, Dtype)> = Vec::new();
    for (tensor_name, tensor) in extra {
        let bytes = bytemuck::cast_slice(&tensor.read().await?).to_vec();
        host.push((
            tensor_name.clone(),
            tensor.dims().to_vec(),
            bytes,
            Dtype::F32,
        ));
    }
    for (tensor_name, tensor) in store.parameters().chain(store.buffers()) {
        let bytes = bytemuck::cast_slice(&tensor.read().await?).to_vec();
        host.push((
            tensor_name.to_string(),
            tensor.dims().to_vec(),
            bytes,
            Dtype::F32,
        ));
        if let Some(prefix) = tensor_name.strip_suffix(".running_mean") {
            host.push((
                format!("{prefix}.num_batches_tracked"),
                Vec::new(),
                0i64.to_le_bytes().to_vec(),
                Dtype::I64,
            ));
        }
    }
    encode_safetensors(name, &host, metadata)
}

/// Writes f32 tensors (name, shape, values) with `metadata`, as `save` does: the raw outputs
/// of `gradlens run` and `gradlens saliency`.
pub fn save_f32(
    path: &Path,
    tensors: &[(&str, &[usize], &[f32])],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let host: Vec<(String, Vec<usize>, Vec<u8>, Dtype)> = tensors
        .iter()
        .map(|&(name, dims, values)| {
            let bytes = bytemuck::cast_slice(values).to_vec();
            (name.to_string(), dims.to_vec(), bytes, Dtype::F32)
        })
        .collect();
    write_safetensors(path, &host, metadata)
}

/// Encodes (name, shape, bytes, dtype) tensors and writes them with `write_atomically`.
fn write_safetensors(
    path: &Path,
    host: &[(String, Vec<usize>, Vec<u8>, Dtype)],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let name = path.display().to_string();
    let bytes = encode_safetensors(&name, host, metadata)?;
    write_atomically(path, &bytes).map_err(|error| Error::Weights {
        path: name,
        message: format!("cannot write: {error}"),
    })
}

/// (name, shape, bytes, dtype) tensors and `metadata` as safetensors bytes; `file` names the
/// output in errors.
fn encode_safetensors(
    file: &str,
    host: &[(String, Vec<usize>, Vec<u8>, Dtype)],
    metadata: &HashMap<String, String>,
) -> Result<Vec<u8>> {
    let fail = |message: String| Error::Weights {
        path: file.to_string(),
        message,
    };
    let views: Vec<(String, TensorView)> = host
        .iter()
        .map(|(name, dims, bytes, dtype)| {
            TensorView::new(*dtype, dims.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|error| fail(format!("cannot encode {name}: {error}")))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, Some(metadata.clone()))
        .map_err(|error| fail(format!("cannot encode: {error}")))
}

/// Writes `bytes` to `<file name>.partial` beside `path` and renames it into place: a failed
/// write leaves no partial output behind.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    let partial = path.with_file_name(name);
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        })
}

/// The first NaN or infinity in `values`, with its index.
pub fn first_non_finite(values: &[f32]) -> Option<(usize, f32)> {
    values
        .iter()
        .copied()
        .enumerate()
        .find(|(_, value)| !value.is_finite())
}

fn to_f32(view: &TensorView) -> Option<Vec<f32>> {
    let bytes = view.data();
    Some(match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        _ => return None,
    })
}

/// torchvision's rename of the original DenseNet checkpoints' keys:
/// `…denselayerN.(norm|relu|conv).(1|2).(weight|bias|running_mean|running_var)` →
/// `…denselayerN.(norm|relu|conv)(1|2).…`.
fn legacy_densenet_name(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('.').collect();
    let n = parts.len();
    if n < 4 {
        return None;
    }
    let (layer, kind, index, leaf) = (parts[n - 4], parts[n - 3], parts[n - 2], parts[n - 1]);
    let is_layer = layer
        .strip_prefix("denselayer")
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    if is_layer
        && ["norm", "relu", "conv"].contains(&kind)
        && ["1", "2"].contains(&index)
        && ["weight", "bias", "running_mean", "running_var"].contains(&leaf)
    {
        let head = parts[..n - 3].join(".");
        return Some(format!("{head}.{kind}{index}.{leaf}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::legacy_densenet_name;

    #[test]
    fn densenet_legacy_keys_are_renamed_like_torchvision() {
        assert_eq!(
            legacy_densenet_name("features.denseblock1.denselayer12.norm.1.running_var").as_deref(),
            Some("features.denseblock1.denselayer12.norm1.running_var")
        );
        assert_eq!(
            legacy_densenet_name("features.denseblock1.denselayer1.conv.2.weight").as_deref(),
            Some("features.denseblock1.denselayer1.conv2.weight")
        );
        assert_eq!(
            legacy_densenet_name("features.denseblock1.denselayer1.conv1.weight"),
            None
        );
        assert_eq!(
            legacy_densenet_name("features.transition1.norm.weight"),
            None
        );
        assert_eq!(legacy_densenet_name("layer1.0.conv.1.weight"), None);
    }
}
