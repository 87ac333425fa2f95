//! The parameter store: every trainable parameter and every buffer (BatchNorm's running
//! statistics) of a model, under torchvision's state_dict names (`layer1.0.conv1.weight`).
//! Parameters and buffers are kept apart: optimisers see only the former; both are saved.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

pub struct ParamStore {
    gpu: Gpu,
    parameters: BTreeMap<String, Tensor>,
    buffers: BTreeMap<String, Tensor>,
    /// Name prefixes whose parameters are frozen (receive no gradient, are not updated).
    frozen: Vec<String>,
}

impl ParamStore {
    pub fn new(gpu: &Gpu) -> Self {
        Self {
            gpu: gpu.clone(),
            parameters: BTreeMap::new(),
            buffers: BTreeMap::new(),
            frozen: Vec::new(),
        }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Registers a trainable parameter; a name may be registered once.
    pub fn add_parameter(&mut self, name: &str, tensor: Tensor) -> Result<()> {
        self.check_new(name)?;
        self.parameters.insert(name.to_string(), tensor);
        Ok(())
    }

    /// Registers a buffer: state saved with the model that no optimiser touches.
    pub fn add_buffer(&mut self, name: &str, tensor: Tensor) -> Result<()> {
        self.check_new(name)?;
        self.buffers.insert(name.to_string(), tensor);
        Ok(())
    }

    fn check_new(&self, name: &str) -> Result<()> {
        if self.parameters.contains_key(name) || self.buffers.contains_key(name) {
            return Err(Error::invalid(
                "ParamStore",
                format!("{name} is registered twice"),
            ));
        }
        Ok(())
    }

    pub fn parameter(&self, name: &str) -> Result<&Tensor> {
        self.parameters
            .get(name)
            .ok_or_else(|| Error::invalid("ParamStore", format!("no parameter named {name}")))
    }

    pub fn buffer(&self, name: &str) -> Result<&Tensor> {
        self.buffers
            .get(name)
            .ok_or_else(|| Error::invalid("ParamStore", format!("no buffer named {name}")))
    }

    /// A parameter or a buffer by name.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.parameters.get(name).or_else(|| self.buffers.get(name))
    }

    /// Replaces the values of a parameter or buffer (loading weights); the shape must match.
    pub fn set(&mut self, name: &str, tensor: Tensor) -> Result<()> {
        let slot = self
            .parameters
            .get_mut(name)
            .or_else(|| self.buffers.get_mut(name))
            .ok_or_else(|| Error::invalid("ParamStore::set", format!("no tensor named {name}")))?;
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
        self.parameters.values().map(Tensor::numel).sum()
    }

    /// Freezes every parameter whose name starts with `prefix` (`features` freezes a VGG's
    /// convolutions; `layer1.` a ResNet stage). An error when no parameter matches: a typo
    /// would otherwise train everything silently.
    pub fn freeze(&mut self, prefix: &str) -> Result<()> {
        if !self.parameters.keys().any(|name| name.starts_with(prefix)) {
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
            if !self.parameters.keys().any(|name| name.starts_with(prefix)) {
                return Err(Error::invalid(
                    "freeze_all_except",
                    format!("no parameter name starts with {prefix:?}"),
                ));
            }
        }
        let frozen: Vec<String> = self
            .parameters
            .keys()
            .filter(|name| !trainable_prefixes.iter().any(|p| name.starts_with(p)))
            .cloned()
            .collect();
        self.frozen.extend(frozen);
        Ok(())
    }

    pub fn unfreeze_all(&mut self) {
        self.frozen.clear();
    }

    pub fn is_trainable(&self, name: &str) -> bool {
        self.parameters.contains_key(name) && !self.frozen.iter().any(|p| name.starts_with(p))
    }
}
