//! `gradlens run`: the tensor-level interface for comparing with other frameworks and for
//! scripting. Reads the tensor `input` [N, C, H, W] from a safetensors file, runs the model in
//! eval mode, and writes `logits` [N, K] and, with --grad-class C, `input_grad` =
//! ∂(Σₙ logits[n, C]) / ∂input. With --train and --labels, one training step's forward and
//! backward instead: batch statistics, the running statistics updated as torchvision updates
//! them, and the mean cross-entropy `loss`, `logits`, every parameter's gradient
//! `grad.<name>` and every updated buffer under its own name (and, with --input-grad,
//! `input_grad` = ∂loss/∂input).

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
    /// Train mode on these labels (a safetensors file holding `labels` [N]).
    pub train_labels: Option<&'a Path>,
    /// With `train_labels`: also write ∂loss/∂input.
    pub input_grad: bool,
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

    if let Some(labels) = request.train_labels {
        if request.grad_class.is_some() {
            return Err(Error::InvalidArgument {
                op: "--grad-class",
                message: "explains a logit in eval mode; with --train pass --input-grad for \
                          the gradient of the loss"
                    .to_string(),
            });
        }
        let bytes = std::fs::read(labels).map_err(|error| Error::Weights {
            path: labels.display().to_string(),
            message: format!("cannot read: {error}"),
        })?;
        let shown = labels.display().to_string();
        let labels = validate::run_labels(&shown, &bytes, input.dims[0], classes)?;
        super::model::start_finite_checks(&gpu, request.check_finite);
        let outputs = train_step(&gpu, &store, model.as_ref(), input, &labels, request)?;
        super::model::end_finite_checks(&gpu, request.check_finite)?;
        return write(request.out, &outputs, &info.arch);
    }
    if request.input_grad {
        return Err(Error::InvalidArgument {
            op: "--input-grad",
            message: "is the gradient of the training loss: it needs --train and --labels"
                .to_string(),
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

/// A named tensor to write: its name, shape and values.
type Output = (String, Vec<usize>, Vec<f32>);

/// One train-mode forward and backward of the mean cross-entropy over `labels`: what
/// `--train` writes (the main head's loss only: aux heads are run but not in the loss).
fn train_step(
    gpu: &Gpu,
    store: &ParamStore,
    model: &dyn gradlens::models::Classifier,
    input: &gradlens::weights::HostTensor,
    labels: &[usize],
    request: &Request,
) -> Result<Vec<Output>> {
    let tape = Tape::new();
    let f = Forward::new(&tape, store, Mode::Train);
    let x = tape.input(Tensor::from_slice(gpu, input.dims.clone(), &input.data)?);
    let logits = model.forward(&f, &x)?;
    let loss = tape.cross_entropy(&logits, labels, None)?;
    let grads = tape.backward(&loss, None)?;
    let mut outputs: Vec<Output> = vec![
        ("loss".into(), Vec::new(), loss.tensor().to_vec()?),
        (
            "logits".into(),
            logits.dims().to_vec(),
            logits.tensor().to_vec()?,
        ),
    ];
    for (name, _) in store.parameters() {
        // A parameter the loss does not reach (an aux head's) has no gradient to write.
        if let Some(grad) = grads.named(name) {
            outputs.push((format!("grad.{name}"), grad.dims().to_vec(), grad.to_vec()?));
        }
    }
    for (name, buffer) in store.buffers() {
        outputs.push((name.to_string(), buffer.dims().to_vec(), buffer.to_vec()?));
    }
    if request.input_grad {
        let grad = grads
            .get(&x)
            .expect("the input is a leaf on a recording tape");
        outputs.push(("input_grad".into(), grad.dims().to_vec(), grad.to_vec()?));
    }
    Ok(outputs)
}

fn write<S: AsRef<str>>(
    path: &Path,
    tensors: &[(S, Vec<usize>, Vec<f32>)],
    arch: &str,
) -> Result<()> {
    let views: Vec<(&str, &[usize], &[f32])> = tensors
        .iter()
        .map(|(name, dims, values)| (name.as_ref(), dims.as_slice(), values.as_slice()))
        .collect();
    let metadata = HashMap::from([("arch".to_string(), arch.to_string())]);
    weights::save_f32(path, &views, &metadata)
}
