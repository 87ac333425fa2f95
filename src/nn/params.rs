//! The parameter store: every trainable parameter and every buffer (BatchNorm's running
//! statistics) of a model, under torchvision's state_dict names (`layer1.0.conv1.weight`).
//! Parameters and buffers are kept apart: optimisers see only the former; both are saved.

use std::collections::BTreeMap;

use super::Init;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

pub struct ParamStore {
    gpu: Gpu,
    /// False for a shape-only store: names and shapes, no GPU memory, no values.
    allocate: bool,
    /// Every parameter's and buffer's shape, and whether it is a parameter.
    shapes: BTreeMap<String, (Vec<usize>, bool)>,
    parameters: BTreeMap<String, Tensor>,
    buffers: BTreeMap<String, Tensor>,
    /// Name prefixes whose parameters are frozen (receive no gradient, are not updated).
    frozen: Vec<String>,
}

impl ParamStore {
    pub fn new(gpu: &Gpu) -> Self {
        Self {
            gpu: gpu.clone(),
            allocate: true,
            shapes: BTreeMap::new(),
            parameters: BTreeMap::new(),
            buffers: BTreeMap::new(),
            frozen: Vec::new(),
        }
    }

    /// A store that records the names and shapes a model declares and allocates nothing: for
    /// checking a model's layout or a weights file without the memory (VGG's 550 MB).
    pub fn shapes_only(gpu: &Gpu) -> Self {
        Self {
            allocate: false,
            ..Self::new(gpu)
        }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Declares a trainable parameter, initialised from `init` (a name is declared once).
    pub fn declare_parameter(
        &mut self,
        name: &str,
        dims: &[usize],
        init: Init,
        seed: u64,
    ) -> Result<()> {
        self.declare(name, dims, init, seed, true)
    }

    /// Declares a buffer: state saved with the model that no optimiser touches.
    pub fn declare_buffer(&mut self, name: &str, dims: &[usize], init: Init) -> Result<()> {
        self.declare(name, dims, init, 0, false)
    }

    fn declare(
        &mut self,
        name: &str,
        dims: &[usize],
        init: Init,
        seed: u64,
        parameter: bool,
    ) -> Result<()> {
        if self.shapes.contains_key(name) {
            return Err(Error::invalid(
                "ParamStore",
                format!("{name} is registered twice"),
            ));
        }
        self.shapes
            .insert(name.to_string(), (dims.to_vec(), parameter));
        if self.allocate {
            let tensor = init.tensor(&self.gpu, dims, seed, name)?;
            match parameter {
                true => self.parameters.insert(name.to_string(), tensor),
                false => self.buffers.insert(name.to_string(), tensor),
            };
        }
        Ok(())
    }

    pub fn parameter(&self, name: &str) -> Result<&Tensor> {
        self.parameters
            .get(name)
            .ok_or_else(|| self.absent(name, "parameter"))
    }

    pub fn buffer(&self, name: &str) -> Result<&Tensor> {
        self.buffers
            .get(name)
            .ok_or_else(|| self.absent(name, "buffer"))
    }

    fn absent(&self, name: &str, kind: &str) -> Error {
        match self.allocate {
            true => Error::invalid("ParamStore", format!("no {kind} named {name}")),
            false => Error::invalid(
                "ParamStore",
                format!("{name}: a shape-only store holds no values"),
            ),
        }
    }

    /// Every parameter's and buffer's (name, shape, is a parameter), in name order; also in a
    /// shape-only store.
    pub fn shapes(&self) -> impl Iterator<Item = (&str, &[usize], bool)> {
        self.shapes
            .iter()
            .map(|(name, (dims, parameter))| (name.as_str(), dims.as_slice(), *parameter))
    }

    /// Whether a parameter or buffer of that name is declared (also in a shape-only store).
    pub fn contains(&self, name: &str) -> bool {
        self.shapes.contains_key(name)
    }

    /// A parameter or a buffer by name.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.parameters.get(name).or_else(|| self.buffers.get(name))
    }

    /// Replaces the values of a parameter or buffer (loading weights); the shape must match.
    pub fn set(&mut self, name: &str, tensor: Tensor) -> Result<()> {
        if self.get(name).is_none() {
            return Err(self.absent(name, "parameter or buffer"));
        }
        let slot = self
            .parameters
            .get_mut(name)
            .or_else(|| self.buffers.get_mut(name))
            .expect("checked above");
        if slot.dims() != tensor.dims() {
            return Err(Error::invalid(
                "ParamStore::set",
                format!(
                    "{name} has shape {:?}, the new value {:?}",
                    slot.dims(),
                    tensor.dims()
                ),
            ));
        }
        *slot = tensor;
        Ok(())
    }

    /// Parameters in name order.
    pub fn parameters(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.parameters.iter().map(|(name, t)| (name.as_str(), t))
    }

    /// Buffers in name order.
    pub fn buffers(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.buffers.iter().map(|(name, t)| (name.as_str(), t))
    }

    /// Number of parameter values (trainable or frozen).
    pub fn parameter_count(&self) -> usize {
        self.shapes
            .values()
            .filter(|(_, parameter)| *parameter)
            .map(|(dims, _)| dims.iter().product::<usize>())
            .sum()
    }

    /// A copy of this store in which every parameter and buffer of the modules under `blocks`
    /// (a name starting with `block.`) takes a fresh value, as PyTorch's `reset_parameters`
    /// gives a new layer: weights and biases U(-1/√fan_in, 1/√fan_in), BatchNorm's weight 1,
    /// bias 0, running mean 0 and variance 1, drawn from `seed` and each name. The other
    /// tensors are shared with this store, not copied: the randomisation sanity check's models.
    pub fn with_blocks_reset(&self, blocks: &[&str], seed: u64) -> Result<ParamStore> {
        let mut copy = Self {
            gpu: self.gpu.clone(),
            allocate: self.allocate,
            shapes: self.shapes.clone(),
            parameters: self.parameters.clone(),
            buffers: self.buffers.clone(),
            frozen: self.frozen.clone(),
        };
        let reset = |name: &str| blocks.iter().any(|b| name.starts_with(&format!("{b}.")));
        for (name, (dims, _)) in &self.shapes {
            if !reset(name) || !self.allocate {
                continue;
            }
            let (module, leaf) = name.rsplit_once('.').unwrap_or(("", name));
            let batch_norm = self.shapes.contains_key(&format!("{module}.running_mean"));
            let fan_in = |weight: &[usize]| weight.iter().skip(1).product::<usize>().max(1);
            let init = match leaf {
                "running_var" => Init::Constant(1.0),
                "weight" if batch_norm => Init::Constant(1.0),
                "weight" if dims.len() > 1 => Init::DefaultFanIn {
                    fan_in: fan_in(dims),
                },
                "bias" if !batch_norm => {
                    let weight = self.shapes.get(&format!("{module}.weight"));
                    Init::DefaultFanIn {
                        fan_in: weight.map_or(1, |(w, _)| fan_in(w)),
                    }
                }
                _ => Init::Constant(0.0),
            };
            copy.set(name, init.tensor(&self.gpu, dims, seed, name)?)?;
        }
        Ok(copy)
    }

    /// Freezes every parameter whose name starts with `prefix` (`features` freezes a VGG's
    /// convolutions; `layer1.` a ResNet stage). An error when no parameter matches: a typo
    /// would otherwise train everything silently.
    pub fn freeze(&mut self, prefix: &str) -> Result<()> {
        if !self.parameter_names().any(|name| name.starts_with(prefix)) {
            return Err(Error::invalid(
                "freeze",
                format!("no parameter name starts with {prefix:?}"),
            ));
        }
        self.frozen.push(prefix.to_string());
        Ok(())
    }

    /// Freezes every parameter except those under the given prefixes (fine-tune the head only).
    pub fn freeze_all_except(&mut self, trainable_prefixes: &[&str]) -> Result<()> {
        for prefix in trainable_prefixes {
            if !self.parameter_names().any(|name| name.starts_with(prefix)) {
                return Err(Error::invalid(
                    "freeze_all_except",
                    format!("no parameter name starts with {prefix:?}"),
                ));
            }
        }
        let frozen: Vec<String> = self
            .parameter_names()
            .filter(|name| !trainable_prefixes.iter().any(|p| name.starts_with(p)))
            .map(str::to_string)
            .collect();
        self.frozen.extend(frozen);
        Ok(())
    }

    pub fn unfreeze_all(&mut self) {
        self.frozen.clear();
    }

    pub fn is_trainable(&self, name: &str) -> bool {
        self.shapes
            .get(name)
            .is_some_and(|(_, parameter)| *parameter)
            && !self.frozen.iter().any(|p| name.starts_with(p))
    }

    fn parameter_names(&self) -> impl Iterator<Item = &str> {
        self.shapes()
            .filter(|(_, _, parameter)| *parameter)
            .map(|(name, _, _)| name)
    }
}
