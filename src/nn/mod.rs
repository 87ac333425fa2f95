//! Layers on the autograd tape, with torchvision's parameter names kept in a [`ParamStore`].
//!
//! A layer holds only its name and geometry; its tensors live in the store, so one store is a
//! model's whole state (what weights files hold) and freezing, loading and optimising all work
//! by name. A forward pass runs in a [`Forward`] context: the tape, the store and the mode.

mod init;
mod layers;
mod params;

use std::cell::{Cell, RefCell};

pub use init::{Init, SplitMix64};
pub use layers::{BatchNorm2d, Conv2d, Dropout, Linear};
pub use params::ParamStore;

use crate::autograd::{Tape, Var};
use crate::error::Result;
use crate::gpu::ScopeGuard;

/// Train mode: batch statistics in BatchNorm (and running-statistic updates), dropout active.
/// Eval mode: running statistics, dropout off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// What a forward pass runs in.
pub struct Forward<'a> {
    pub tape: &'a Tape,
    pub store: &'a ParamStore,
    pub mode: Mode,
    /// Dropout masks derive from this and a per-call counter: reproducible from the seed,
    /// different at each dropout layer.
    dropout_seed: u32,
    dropout_calls: Cell<u32>,
    /// Named intermediate values the model marked (`layer4`, `Mixed_7c`) when capturing.
    marks: Option<RefCell<Vec<(String, Var)>>>,
}

impl<'a> Forward<'a> {
    pub fn new(tape: &'a Tape, store: &'a ParamStore, mode: Mode) -> Self {
        Self {
            tape,
            store,
            mode,
            dropout_seed: 0,
            dropout_calls: Cell::new(0),
            marks: None,
        }
    }

    /// Keeps the values the model marks with [`Forward::mark`] (for Grad-CAM's layers).
    pub fn capturing(mut self) -> Self {
        self.marks = Some(RefCell::new(Vec::new()));
        self
    }

    /// Models call this with a block's output under torchvision's module name.
    pub fn mark(&self, name: &str, value: &Var) {
        if let Some(marks) = &self.marks {
            marks.borrow_mut().push((name.to_string(), value.clone()));
        }
    }

    /// The value marked under `name` in this pass, if capturing.
    pub fn marked(&self, name: &str) -> Option<Var> {
        let marks = self.marks.as_ref()?.borrow();
        marks
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// The names marked in this pass, in order.
    pub fn marked_names(&self) -> Vec<String> {
        self.marks
            .as_ref()
            .map(|marks| marks.borrow().iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default()
    }

    /// Sets the seed of this pass's dropout masks (vary it per step in training).
    pub fn with_dropout_seed(mut self, seed: u32) -> Self {
        self.dropout_seed = seed;
        self
    }

    /// Charges the kernels run until the guard drops to the module `name` (torchvision's
    /// name) in a profile; free when not profiling.
    pub fn scope(&self, name: &str) -> ScopeGuard {
        self.store.gpu().scope(name)
    }

    pub fn training(&self) -> bool {
        self.mode == Mode::Train
    }

    /// A parameter as a value on the tape: it requires a gradient when trainable (not frozen).
    pub fn parameter(&self, name: &str) -> Result<Var> {
        let tensor = self.store.parameter(name)?;
        Ok(self
            .tape
            .parameter(name, tensor, self.store.is_trainable(name)))
    }

    fn next_dropout_seed(&self) -> u32 {
        let call = self.dropout_calls.get();
        self.dropout_calls.set(call + 1);
        self.dropout_seed
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add(call.wrapping_mul(0x85EB_CA6B))
    }
}
