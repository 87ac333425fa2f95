//! One check for an op, forward and backward together (in the spirit of tinygrad's op tests):
//!
//! 1. the inputs go up; every output the GPU allocates is NaN-poisoned by the test context
//!    (`common::gpu`), so an element the kernel never writes fails the comparison;
//! 2. the GPU forward is compared with the plain-Rust reference (run in f64);
//! 3. the reference backward is checked against central finite differences of the reference
//!    forward, in f64, for every input it differentiates — so the oracle is itself checked;
//! 4. the GPU backward (a kernel, or the tape's rule) is compared with the reference backward
//!    for a seeded random output gradient.
//!
//! Forward and backward have separate tolerances (and one input's gradient may have its own):
//! a backward composes more rounding. Finite differences cost two reference forwards per input
//! element, so inputs of more than `GRADCHECK_MAX_ELEMENTS` skip step 3; an op's smaller cases
//! check its reference backward. A kernel with no backward of its own runs steps 1 and 2
//! (`run_forward`).

use gradlens::{Result, Tensor};

use super::{Rng, assert_close, gpu};

/// The largest input step 3 differentiates element by element.
pub const GRADCHECK_MAX_ELEMENTS: usize = 4096;

/// |got - want| <= atol + rtol · |want|, elementwise.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub rtol: f32,
    pub atol: f32,
}

impl Tolerance {
    pub const EXACT: Tolerance = Tolerance {
        rtol: 0.0,
        atol: 0.0,
    };

    pub const fn relative(rtol: f32) -> Tolerance {
        Tolerance { rtol, atol: rtol }
    }
}

/// An op's inputs and what its comparisons allow.
pub struct OpCheck<'a> {
    pub name: &'a str,
    /// Each input's shape and values (test data, never all zeros).
    pub inputs: Vec<(Vec<usize>, Vec<f32>)>,
    pub forward: Tolerance,
    pub backward: Tolerance,
    /// Finite-difference step and the largest relative error allowed there.
    pub gradcheck_eps: f64,
    pub gradcheck_tolerance: f64,
    /// The output's shape, where the op defines one apart from its inputs' (a pooling's);
    /// without it the output must have the first input's shape.
    pub output_shape: Option<Vec<usize>>,
    /// Inputs whose backward tolerance is not `backward` (a bias gradient sums more terms).
    pub backward_by_input: Vec<(usize, Tolerance)>,
    /// Step 3 runs unless the same inputs' reference backward was checked already (one case
    /// run once per algorithm).
    pub gradcheck: bool,
}

impl<'a> OpCheck<'a> {
    /// Seeded random inputs of these shapes, in [-1, 1).
    pub fn random(name: &'a str, shapes: &[&[usize]], seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let inputs = shapes
            .iter()
            .map(|shape| (shape.to_vec(), rng.vec(shape.iter().product())))
            .collect();
        Self::new(name, inputs)
    }

    /// These inputs (shape and values each), with the default tolerances.
    pub fn new(name: &'a str, inputs: Vec<(Vec<usize>, Vec<f32>)>) -> Self {
        Self {
            name,
            inputs,
            forward: Tolerance::relative(1e-5),
            backward: Tolerance::relative(1e-5),
            gradcheck_eps: 1e-6,
            gradcheck_tolerance: 1e-6,
            output_shape: None,
            backward_by_input: Vec::new(),
            gradcheck: true,
        }
    }

    pub fn output_shape(self, shape: &[usize]) -> Self {
        Self {
            output_shape: Some(shape.to_vec()),
            ..self
        }
    }

    /// Input `input`'s gradient compared with this tolerance instead of `backward`'s.
    pub fn backward_tolerance_for(mut self, input: usize, tolerance: Tolerance) -> Self {
        self.backward_by_input.push((input, tolerance));
        self
    }

    /// Skips step 3: these inputs' reference backward was checked by an earlier run.
    pub fn without_gradcheck(self) -> Self {
        Self {
            gradcheck: false,
            ..self
        }
    }

    pub fn tolerances(self, forward: Tolerance, backward: Tolerance) -> Self {
        Self {
            forward,
            backward,
            ..self
        }
    }

    /// Steps 1 and 2 only, for a kernel that has no backward of its own (a matmul variant, a
    /// transpose, a reduction).
    pub fn run_forward(
        &self,
        gpu_forward: impl Fn(&[Tensor]) -> Result<Tensor>,
        reference_forward: impl Fn(&[&[f64]]) -> Vec<f64>,
    ) {
        self.forward(gpu_forward, reference_forward);
    }

    /// Steps 1 and 2: the uploaded inputs, the GPU output, the inputs in f64 and the
    /// reference output.
    fn forward(
        &self,
        gpu_forward: impl Fn(&[Tensor]) -> Result<Tensor>,
        reference_forward: impl Fn(&[&[f64]]) -> Vec<f64>,
    ) -> (Vec<Tensor>, Tensor, Vec<Vec<f64>>, Vec<f64>) {
        let name = self.name;
        let tensors: Vec<Tensor> = self
            .inputs
            .iter()
            .map(|(shape, values)| Tensor::from_slice(gpu(), shape.clone(), values).unwrap())
            .collect();
        let inputs: Vec<Vec<f64>> = self
            .inputs
            .iter()
            .map(|(_, values)| values.iter().map(|&v| f64::from(v)).collect())
            .collect();
        let out = gpu_forward(&tensors).unwrap_or_else(|e| panic!("{name} forward: {e}"));
        let want_shape = self.output_shape.as_ref().unwrap_or(&self.inputs[0].0);
        assert_eq!(out.dims(), want_shape.as_slice(), "{name}: output shape");
        let want = reference_forward(&slices(&inputs));
        assert_close(
            &format!("{name} forward"),
            &out.to_vec().unwrap(),
            &to_f32(&want),
            self.forward.rtol,
            self.forward.atol,
        );
        (tensors, out, inputs, want)
    }

    /// Runs steps 1–4. `gpu_backward` returns one gradient per input (`None` for an input
    /// the op does not differentiate, which the reference then skips too); `reference_backward`
    /// returns one per input likewise.
    pub fn run(
        &self,
        gpu_forward: impl Fn(&[Tensor]) -> Result<Tensor>,
        gpu_backward: impl Fn(&[Tensor], &Tensor) -> Result<Vec<Option<Tensor>>>,
        reference_forward: impl Fn(&[&[f64]]) -> Vec<f64>,
        reference_backward: impl Fn(&[&[f64]], &[f64]) -> Vec<Option<Vec<f64>>>,
    ) {
        let name = self.name;
        let (tensors, out, inputs, want) = self.forward(gpu_forward, &reference_forward);

        // 3. The reference backward against finite differences of the reference forward.
        let grad_out_values = Rng::new(0x5eed).vec(want.len());
        let grad_out: Vec<f64> = grad_out_values.iter().map(|&v| f64::from(v)).collect();
        let want_grads = reference_backward(&slices(&inputs), &grad_out);
        assert_eq!(
            want_grads.len(),
            inputs.len(),
            "{name}: one gradient per input"
        );
        for (i, want_grad) in want_grads.iter().enumerate() {
            if !self.gradcheck || want_grad.is_none() || inputs[i].len() > GRADCHECK_MAX_ELEMENTS {
                continue;
            }
            let with_input = |x: &[f64]| {
                let mut all = inputs.clone();
                all[i] = x.to_vec();
                all
            };
            gradlens::reference::gradcheck::check(
                &inputs[i],
                &grad_out,
                |x| reference_forward(&slices(&with_input(x))),
                |x, g| {
                    reference_backward(&slices(&with_input(x)), g)[i]
                        .clone()
                        .expect("the same inputs are differentiated")
                },
                self.gradcheck_eps,
                self.gradcheck_tolerance,
            )
            .unwrap_or_else(|e| panic!("{name}: reference backward to input {i}: {e}"));
        }

        // 4. The GPU backward against the reference backward.
        let grad_out_tensor =
            Tensor::from_slice(gpu(), out.dims().to_vec(), &grad_out_values).unwrap();
        let grads = gpu_backward(&tensors, &grad_out_tensor)
            .unwrap_or_else(|e| panic!("{name} backward: {e}"));
        assert_eq!(
            grads.len(),
            inputs.len(),
            "{name}: one GPU gradient per input"
        );
        for (i, (got, want)) in grads.iter().zip(&want_grads).enumerate() {
            match (got, want) {
                (Some(got), Some(want)) => {
                    let what = format!("{name} backward to input {i}");
                    assert_eq!(got.dims(), self.inputs[i].0.as_slice(), "{what}: shape");
                    let tolerance = self
                        .backward_by_input
                        .iter()
                        .find(|(input, _)| *input == i)
                        .map_or(self.backward, |&(_, tolerance)| tolerance);
                    assert_close(
                        &what,
                        &got.to_vec().unwrap(),
                        &to_f32(want),
                        tolerance.rtol,
                        tolerance.atol,
                    );
                }
                (None, None) => {}
                _ => panic!("{name}: the GPU and the reference differentiate different inputs"),
            }
        }
    }
}

fn slices(inputs: &[Vec<f64>]) -> Vec<&[f64]> {
    inputs.iter().map(Vec::as_slice).collect()
}

fn to_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}
