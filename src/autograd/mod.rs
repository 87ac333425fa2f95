//! Reverse-mode automatic differentiation over the GPU kernels.
//!
//! A [`Tape`] records, for every op whose inputs require gradients, the op's inputs and its
//! backward rule (a closure over what the rule needs: the op's input activations, its saved
//! statistics). [`Tape::backward`] runs the rules in reverse order from one output, seeded with
//! 1 for a scalar loss or with a given gradient (saliency seeds one class score), summing the
//! gradients of values used more than once (residual connections, DenseNet's feature reuse) —
//! or, for a rule that can add two gradients in a pass it makes anyway, handing them over
//! apart (see `BackwardRule::Terms`), or handing a rule its inputs' gradients so far to add
//! its own to as it writes them (see `BackwardRule::Accumulating`).
//! Each rule runs once and is then dropped, and with it the activations it held: memory falls
//! as backward proceeds. A tape made with [`Tape::no_grad`] records nothing (inference).
//!
//! The ops themselves, forward and backward side by side, are in `ops.rs`.

mod ops;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::Phase;
use crate::kernels::elementwise;
use crate::kernels::finite::check_finite;
use crate::tensor::Tensor;

pub use ops::BatchNormState;

/// The gradients an op's backward rule returns: one per input, `None` where that input needs
/// none (or receives none).
type InputGrads = Vec<Option<Tensor>>;

type SummedRule = Box<dyn FnOnce(&Tensor) -> Result<InputGrads>>;
type TermsRule = Box<dyn FnOnce(&Tensor, Option<&Tensor>) -> Result<InputGrads>>;
type AccumulatingRule = Box<dyn FnOnce(&Tensor, InputGrads) -> Result<InputGrads>>;

/// An op's backward rule: given its output's gradient, its inputs' gradients.
enum BackwardRule {
    /// Takes the output's gradient as one tensor (two arriving gradients summed first).
    Summed(SummedRule),
    /// Takes the output's gradient as up to two terms, which it adds in its own pass: a value
    /// used twice (a residual block's output) then costs no pass of its own to sum.
    Terms(TermsRule),
    /// Takes the output's gradient and, per input, the gradient that input has received so far
    /// (`None` where it has none), and returns each input's gradient with that included: a
    /// value read by many later ops (a DenseNet feature, by every later layer's norm) then
    /// costs no pass of its own per reader to sum.
    Accumulating(AccumulatingRule),
}

/// The gradient arrived so far at a node: one tensor, or two terms kept apart for a
/// [`BackwardRule::Terms`] rule. A third term is summed in at once, so a node holds at most one
/// tensor more than a running sum would.
struct Incoming {
    first: Tensor,
    second: Option<Tensor>,
}

impl Incoming {
    fn with(self, grad: Tensor, keep_terms_apart: bool) -> Result<Self> {
        Ok(match self.second {
            None if keep_terms_apart => Incoming {
                first: self.first,
                second: Some(grad),
            },
            None => Incoming {
                first: elementwise::add(&self.first, &grad)?,
                second: None,
            },
            Some(second) => Incoming {
                first: elementwise::add(&self.first, &second)?,
                second: Some(grad),
            },
        })
    }

    fn summed(self) -> Result<Tensor> {
        match self.second {
            None => Ok(self.first),
            Some(second) => elementwise::add(&self.first, &second),
        }
    }
}

struct Node {
    /// Indices of the op's inputs (nodes before this one); empty for leaves.
    inputs: Vec<usize>,
    /// `None` for leaves (inputs, parameters): their gradient is a result.
    backward: Option<BackwardRule>,
    /// The layer scope the op was recorded in (only while profiling): its backward kernels are
    /// charged to the same layer.
    scope: Option<Arc<str>>,
}

#[derive(Default)]
struct Recording {
    nodes: Vec<Node>,
    /// Parameters by name, so that one name used twice in a forward is one leaf.
    parameters: HashMap<String, Var>,
    names: Vec<(usize, String)>,
}

/// The record of one forward pass. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct Tape {
    recording: Option<Rc<RefCell<Recording>>>,
    /// Guided backpropagation (Springenberg et al. 2014): ReLU's backward also zeroes negative
    /// incoming gradients.
    guided: bool,
    /// Parameters enter as constants: only gradients to inputs are computed (saliency), so no
    /// weight-gradient product runs.
    constant_parameters: bool,
}

/// A tensor on a tape: `node` is set when it requires a gradient.
#[derive(Clone)]
pub struct Var {
    tensor: Tensor,
    node: Option<usize>,
}

impl Var {
    /// A value that needs no gradient (data, a frozen parameter, anything under no-grad).
    pub fn constant(tensor: Tensor) -> Self {
        Self { tensor, node: None }
    }

    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    pub fn into_tensor(self) -> Tensor {
        self.tensor
    }

    pub fn dims(&self) -> &[usize] {
        self.tensor.dims()
    }

    pub fn requires_grad(&self) -> bool {
        self.node.is_some()
    }
}

/// What every op's output goes through: its shapes noted for the profiler, its values checked
/// for NaN and Inf when the context checks (a check that cannot be recorded, its flags buffer
/// not allocated, fails the op).
fn observe(output: &Tensor, inputs: &[&Var]) -> Result<()> {
    if let Some(first) = inputs.first() {
        output.gpu().note_shapes(first.dims(), output.dims());
    }
    check_finite(output, "output")
}

/// Gradients from one backward pass: for the leaves that required them and were reached.
pub struct Gradients {
    by_node: HashMap<usize, Tensor>,
    by_name: BTreeMap<String, Tensor>,
}

impl std::fmt::Debug for Gradients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gradients")
            .field("leaves", &self.by_node.len())
            .field("parameters", &self.by_name.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Gradients {
    /// The gradient of a leaf made on the tape (`Tape::input`, `Tape::parameter`) or of a value
    /// kept by `backward_keeping`; `None` when it needed none or the output does not depend
    /// on it.
    pub fn get(&self, var: &Var) -> Option<&Tensor> {
        var.node.and_then(|node| self.by_node.get(&node))
    }

    /// The gradient of a parameter by its name (`layer1.0.conv1.weight`).
    pub fn named(&self, name: &str) -> Option<&Tensor> {
        self.by_name.get(name)
    }

    /// All parameter gradients, by name, in name order.
    pub fn parameters(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.by_name
            .iter()
            .map(|(name, grad)| (name.as_str(), grad))
    }

    /// Replaces a parameter's gradient (gradient clipping scales them in place this way).
    pub(crate) fn set_named(&mut self, name: &str, grad: Tensor) {
        self.by_name.insert(name.to_string(), grad);
    }
}

impl Default for Tape {
    fn default() -> Self {
        Self::new()
    }
}

impl Tape {
    /// A tape that records: for training and for gradients to the input.
    pub fn new() -> Self {
        Self {
            recording: Some(Rc::default()),
            guided: false,
            constant_parameters: false,
        }
    }

    /// This tape with every parameter a constant: backward computes gradients to the inputs
    /// only (saliency's workload), skipping every weight gradient.
    pub fn input_gradients_only(self) -> Self {
        Self {
            constant_parameters: true,
            ..self
        }
    }

    /// A recording tape whose ReLUs pass back only positive gradients where their input was
    /// positive: guided backpropagation, a saliency method, not a true gradient.
    pub fn guided() -> Self {
        Self {
            guided: true,
            ..Self::new()
        }
    }

    /// A tape that records nothing: every value it makes is a constant.
    pub fn no_grad() -> Self {
        Self {
            recording: None,
            guided: false,
            constant_parameters: false,
        }
    }

    pub(crate) fn is_guided(&self) -> bool {
        self.guided
    }

    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// A leaf whose gradient is wanted (the input image, for saliency); a constant under no-grad.
    pub fn input(&self, tensor: Tensor) -> Var {
        let node = self.push(Vec::new(), None, None);
        Var { tensor, node }
    }

    /// A named parameter: a leaf whose gradient is reported under `name` when `trainable`, a
    /// constant otherwise. Asking again for the same name in one forward returns the same leaf,
    /// so a shared weight's gradients are summed.
    pub fn parameter(&self, name: &str, tensor: &Tensor, trainable: bool) -> Var {
        let wanted = trainable && !self.constant_parameters;
        let Some(recording) = self.recording.as_ref().filter(|_| wanted) else {
            return Var::constant(tensor.clone());
        };
        if let Some(var) = recording.borrow().parameters.get(name) {
            return var.clone();
        }
        let var = self.input(tensor.clone());
        let mut recording = recording.borrow_mut();
        if let Some(node) = var.node {
            recording.names.push((node, name.to_string()));
        }
        recording.parameters.insert(name.to_string(), var.clone());
        var
    }

    /// The names of the trainable parameters this tape has recorded, in the order the forward
    /// pass first used them (none on a no-grad tape or with `input_gradients_only`).
    pub fn parameter_names_in_use_order(&self) -> Vec<String> {
        self.recording.as_ref().map_or_else(Vec::new, |recording| {
            recording
                .borrow()
                .names
                .iter()
                .map(|(_, name)| name.clone())
                .collect()
        })
    }

    /// The result of an op: records `backward` when some input requires a gradient. The rule
    /// receives the output's gradient and returns one gradient per input, in order.
    pub(crate) fn record(
        &self,
        output: Tensor,
        inputs: &[&Var],
        backward: impl FnOnce(&Tensor) -> Result<InputGrads> + 'static,
    ) -> Result<Var> {
        self.record_rule(output, inputs, BackwardRule::Summed(Box::new(backward)))
    }

    /// `record` for a rule that takes its output's gradient as up to two terms and adds them in
    /// its own pass (see [`BackwardRule::Terms`]).
    pub(crate) fn record_summing(
        &self,
        output: Tensor,
        inputs: &[&Var],
        backward: impl FnOnce(&Tensor, Option<&Tensor>) -> Result<InputGrads> + 'static,
    ) -> Result<Var> {
        self.record_rule(output, inputs, BackwardRule::Terms(Box::new(backward)))
    }

    /// `record` for a rule that adds its inputs' gradients so far into the ones it returns (see
    /// [`BackwardRule::Accumulating`]).
    pub(crate) fn record_accumulating(
        &self,
        output: Tensor,
        inputs: &[&Var],
        backward: impl FnOnce(&Tensor, InputGrads) -> Result<InputGrads> + 'static,
    ) -> Result<Var> {
        self.record_rule(
            output,
            inputs,
            BackwardRule::Accumulating(Box::new(backward)),
        )
    }

    /// Whether an op on `inputs` records a backward rule: the tape records and some input
    /// requires a gradient. An op whose forward can keep something for its backward asks first.
    pub(crate) fn records_backward(&self, inputs: &[&Var]) -> bool {
        self.is_recording() && inputs.iter().any(|var| var.requires_grad())
    }

    /// The result of an op that records no backward rule (`records_backward` said so), noted
    /// and checked like every op's output.
    pub(crate) fn untracked(&self, output: Tensor, inputs: &[&Var]) -> Result<Var> {
        observe(&output, inputs)?;
        Ok(Var::constant(output))
    }

    fn record_rule(&self, output: Tensor, inputs: &[&Var], backward: BackwardRule) -> Result<Var> {
        observe(&output, inputs)?;
        if !inputs.iter().any(|var| var.requires_grad()) {
            return Ok(Var::constant(output));
        }
        // Inputs that need no gradient still take a slot, so the rule's results line up; their
        // gradients are dropped.
        let inputs = inputs
            .iter()
            .map(|var| var.node.unwrap_or(usize::MAX))
            .collect();
        let scope = output.gpu().current_scope();
        let node = self.push(inputs, Some(backward), scope);
        Ok(Var {
            tensor: output,
            node,
        })
    }

    fn push(
        &self,
        inputs: Vec<usize>,
        backward: Option<BackwardRule>,
        scope: Option<Arc<str>>,
    ) -> Option<usize> {
        let recording = self.recording.as_ref()?;
        let mut recording = recording.borrow_mut();
        recording.nodes.push(Node {
            inputs,
            backward,
            scope,
        });
        Some(recording.nodes.len() - 1)
    }

    /// Runs the recorded backward rules from `output` and returns the leaves' gradients. `seed`
    /// is the gradient of `output` (same shape); `None` means 1 and needs a one-element output.
    /// The tape is used up: its rules, and the activations they held, are released.
    pub fn backward(&self, output: &Var, seed: Option<Tensor>) -> Result<Gradients> {
        self.backward_keeping(output, seed, &[])
    }

    /// `backward`, also returning the gradients of the intermediate values in `keep` (Grad-CAM
    /// needs a layer's activation gradient); read them with [`Gradients::get`].
    pub fn backward_keeping(
        &self,
        output: &Var,
        seed: Option<Tensor>,
        keep: &[&Var],
    ) -> Result<Gradients> {
        const OP: &str = "backward";
        let keep: Vec<usize> = keep.iter().filter_map(|var| var.node).collect();
        let Some(recording) = &self.recording else {
            return Err(Error::invalid(OP, "the tape was made with no_grad"));
        };
        let Some(start) = output.node else {
            return Err(Error::invalid(
                OP,
                "the output does not depend on anything that requires a gradient",
            ));
        };
        let seed = match seed {
            Some(seed) => {
                output.tensor.expect_same_shape(&seed, OP)?;
                seed
            }
            None if output.tensor.numel() == 1 => {
                Tensor::full(output.tensor.gpu(), output.tensor.shape().clone(), 1.0)?
            }
            None => {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "an output of shape {:?} needs a seed gradient (only a one-element \
                         output is seeded with 1)",
                        output.dims()
                    ),
                ));
            }
        };
        let Recording {
            mut nodes, names, ..
        } = std::mem::take(&mut *recording.borrow_mut());
        // Nodes after the output cannot contribute to it.
        nodes.truncate(start + 1);
        let mut pending: Vec<Option<Incoming>> = (0..nodes.len()).map(|_| None).collect();
        pending[start] = Some(Incoming {
            first: seed,
            second: None,
        });
        let mut by_node = HashMap::new();
        let gpu = output.tensor.gpu().clone();
        let _phase = gpu.phase(Phase::Backward);
        while let Some(node) = nodes.pop() {
            let index = nodes.len();
            let Some(incoming) = pending[index].take() else {
                continue;
            };
            let _scope = node.scope.map(|scope| gpu.scope_shared(scope));
            let grads = match node.backward {
                None => {
                    by_node.insert(index, incoming.summed()?);
                    continue;
                }
                Some(BackwardRule::Terms(backward)) if !keep.contains(&index) => {
                    backward(&incoming.first, incoming.second.as_ref())?
                }
                Some(BackwardRule::Terms(backward)) => {
                    let grad = incoming.summed()?;
                    by_node.insert(index, grad.clone());
                    backward(&grad, None)?
                }
                Some(BackwardRule::Summed(backward)) => {
                    let grad = incoming.summed()?;
                    if keep.contains(&index) {
                        by_node.insert(index, grad.clone());
                    }
                    backward(&grad)?
                }
                Some(BackwardRule::Accumulating(backward)) => {
                    let grad = incoming.summed()?;
                    if keep.contains(&index) {
                        by_node.insert(index, grad.clone());
                    }
                    // The inputs' gradients so far leave `pending`: the rule returns them with
                    // its own added (an input listed twice gets them at its first place only),
                    // and any it leaves out go back unchanged.
                    let so_far = node
                        .inputs
                        .iter()
                        .map(
                            |&input| match pending.get_mut(input).and_then(Option::take) {
                                Some(incoming) => incoming.summed().map(Some),
                                None => Ok(None),
                            },
                        )
                        .collect::<Result<InputGrads>>()?;
                    let mut grads = backward(&grad, so_far.clone())?;
                    grads.resize(so_far.len(), None);
                    for (grad, so_far) in grads.iter_mut().zip(so_far) {
                        if grad.is_none() {
                            *grad = so_far;
                        }
                    }
                    grads
                }
            };
            for grad in grads.iter().flatten() {
                check_finite(grad, "gradient")?;
            }
            for (input, input_grad) in node.inputs.into_iter().zip(grads) {
                let Some(input_grad) = input_grad else {
                    continue;
                };
                if input == usize::MAX {
                    continue;
                }
                let keep_terms_apart =
                    matches!(nodes[input].backward, Some(BackwardRule::Terms(_)));
                pending[input] = Some(match pending[input].take() {
                    Some(incoming) => incoming.with(input_grad, keep_terms_apart)?,
                    None => Incoming {
                        first: input_grad,
                        second: None,
                    },
                });
            }
        }
        let by_name = names
            .into_iter()
            .filter_map(|(node, name)| by_node.get(&node).map(|grad| (name, grad.clone())))
            .collect();
        Ok(Gradients { by_node, by_name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Gpu;

    /// An accumulating rule receives each input's gradient so far, once per input (an input
    /// listed twice gets it at its first place); a gradient it leaves out goes back unchanged,
    /// and one it returns for the second place is added.
    #[test]
    fn an_accumulating_rule_sees_the_gradients_so_far_and_loses_none() {
        let gpu = Gpu::new().expect("a GPU context");
        let tape = Tape::new();
        let values = |v: [f32; 4]| Tensor::from_slice(&gpu, [4], &v).unwrap();
        let a = tape.input(values([1.0, 2.0, 3.0, 4.0]));
        let b = tape.input(values([5.0, 6.0, 7.0, 8.0]));
        let seen = Rc::new(RefCell::new(Vec::new()));
        let seen_by_rule = seen.clone();
        let y = tape
            .record_accumulating(values([0.5; 4]), &[&a, &b, &a], move |grad, so_far| {
                let read = |t: &Option<Tensor>| t.as_ref().map(|t| t.to_vec().unwrap());
                *seen_by_rule.borrow_mut() = so_far.iter().map(read).collect::<Vec<_>>();
                // a's first place left out (its 2 must come back), b's and a's second given.
                Ok(vec![None, Some(grad.clone()), Some(grad.clone())])
            })
            .unwrap();
        // Recorded after y, so its backward runs first: a has 2 when y's rule runs.
        let z = tape.scale(&a, 2.0).unwrap();
        let out = tape.add(&y, &z).unwrap();
        let grads = tape.backward(&out, Some(values([1.0; 4]))).unwrap();
        assert_eq!(*seen.borrow(), vec![Some(vec![2.0; 4]), None, None]);
        assert_eq!(grads.get(&a).unwrap().to_vec().unwrap(), vec![3.0; 4]);
        assert_eq!(grads.get(&b).unwrap().to_vec().unwrap(), vec![1.0; 4]);
    }
}
