//! `gradlens run`: the tensor-level interface for comparing with other frameworks and for
//! scripting. Reads the tensor `input` [N, C, H, W] from a safetensors file, runs the model in
//! eval mode, and writes `logits` [N, K] and, with --grad-class C, `input_grad` =
//! ∂(Σₙ logits[n, C]) / ∂input.

use std::collections::HashMap;
use std::path::Path;

use gradlens::autograd::Tape;
use gradlens::models::build;
use gradlens::nn::{Forward, Mode, ParamStore};
use gradlens::validate;
use gradlens::weights::{self, WeightsFile};
use gradlens::{Error, Gpu, Result, Tensor};

pub struct Request<'a> {
    pub arch: &'a str,
    pub weights: &'a Path,
    pub input: &'a Path,
    pub out: &'a Path,
    pub grad_class: Option<usize>,
    /// None: what the weights file records, else torchvision's choice with its pretrained
    /// weights (on for googlenet and inception_v3).
    pub transform_input: Option<bool>,
    pub check_finite: bool,
}

pub fn run(request: &Request) -> Result<()> {
    let input_file = WeightsFile::open(request.input)?;
    let input = validate::run_input(&input_file)?;
    let gpu = Gpu::new()?;
    let file = WeightsFile::open(request.weights)?;
    let mut info = validate::model_info(&gpu, &file, Some(request.arch))?;
    validate::run_input_fits(&request.input.display().to_string(), input, &info)?;
    validate::model_fits(&gpu, &file, &info)?;
    // The flag, else what the file records, else torchvision's choice for its pretrained
    // weights.
    let recorded = file.metadata().contains_key("transform_input");
    info.config.transform_input = request.transform_input.unwrap_or(if recorded {
        info.config.transform_input
    } else {
        matches!(request.arch, "googlenet" | "inception_v3") && info.config.in_channels == 3
    });
    let mut store = ParamStore::new(&gpu);
    let model = build(&info.arch, &mut store, &info.config)?;
    file.load_into(&mut store, model.optional_prefixes())?;
    let classes = info.config.classes;
    if let Some(class) = request.grad_class
        && class >= classes
    {
        return Err(Error::InvalidArgument {
            op: "--grad-class",
            message: format!("class {class} is out of range: the model has {classes} classes"),
        });
    }

    super::model::start_finite_checks(&gpu, request.check_finite);
    let tape = match request.grad_class {
        Some(_) => Tape::new().input_gradients_only(),
        None => Tape::no_grad(),
    };
    let f = Forward::new(&tape, &store, Mode::Eval);
    let x = tape.input(Tensor::from_slice(&gpu, input.dims.clone(), &input.data)?);
    let logits = model.forward(&f, &x)?;
    let mut outputs = vec![("logits", logits.dims().to_vec(), logits.tensor().to_vec()?)];
    if let Some(class) = request.grad_class {
        let n = input.dims[0];
        let mut seed = vec![0.0; n * classes];
        for row in 0..n {
            seed[row * classes + class] = 1.0;
        }
        let grads = tape.backward(
            &logits,
            Some(Tensor::from_slice(&gpu, [n, classes], &seed)?),
        )?;
        let grad = grads
            .get(&x)
            .expect("the input is a leaf on a recording tape");
        outputs.push(("input_grad", grad.dims().to_vec(), grad.to_vec()?));
    }
    super::model::end_finite_checks(&gpu, request.check_finite)?;
    write(request.out, &outputs, &info.arch)
}

fn write(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)], arch: &str) -> Result<()> {
    let views: Vec<(&str, &[usize], &[f32])> = tensors
        .iter()
        .map(|(name, dims, values)| (*name, dims.as_slice(), values.as_slice()))
        .collect();
    let metadata = HashMap::from([("arch".to_string(), arch.to_string())]);
    weights::save_f32(path, &views, &metadata)
}
