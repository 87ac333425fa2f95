//! Saliency: which pixels of an image drive a classifier's decision. Every method runs on the
//! GPU through the tape, for any [`Classifier`], on batches, with the model in eval mode
//! (BatchNorm on its running statistics, still differentiable in the input).
//!
//! Gradient methods return attributions shaped like the input ([N, C, H, W]); [`to_maps`]
//! reduces them to one map per image. The CAM family, Score-CAM, occlusion, meaningful and
//! extremal perturbation return maps ([N, H, W]) directly.
//!
//! The methods are async because they read values back mid-way (scores, gradients for the
//! host-side steps), and a browser cannot wait for its GPU: the web front awaits them, native
//! code runs them with `pollster::block_on` (where each readback is ready at once).

mod evaluation;
mod extremal;
mod gradcam;
mod gradient;
mod integrated_gradients;
mod method;
mod occlusion;
mod perturbation;
mod score_cam;

/// Which class activation map (computed on the GPU, `kernels::cam`).
pub use crate::kernels::cam::Cam;
pub use evaluation::{
    DeletionInsertion, RandomisationStep, Road, RoadCurves, blocks_in_forward_order,
    cascading_randomisation, deletion_insertion, energy_pointing_game, noisy_linear_imputation,
    pointing_game_hit, rank_correlation, road, ssim,
};
pub use extremal::{ExtremalPerturbation, ExtremalResult, extremal_perturbation};
pub use gradcam::{class_activation_map, class_activation_maps, grad_cam, guided_grad_cam};
pub use gradient::{
    SmoothGrad, gradient, gradient_x_input, guided_backprop, smoothgrad, smoothgrad_inputs,
};
pub use integrated_gradients::{
    IntegratedGradients, IntegratedGradientsResult, Path, integrated_gradients,
};
pub use method::{Method, MethodMaps, MethodSettings, method_maps, methods_maps};
pub use occlusion::{Occlusion, occlusion};
pub use perturbation::{Perturbation, PerturbationResult, Replacement, meaningful_perturbation};
pub use score_cam::{ScoreCam, score_cam};

use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::models::Classifier;
use crate::nn::{Forward, Mode, ParamStore};
use crate::tensor::Tensor;

/// What is explained: a class's logit, or its softmax probability.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Score {
    #[default]
    Logit,
    Probability,
}

impl Score {
    /// This score of each class, from the model's `logits` [N, classes].
    fn of(self, tape: &Tape, logits: Var) -> Result<Var> {
        match self {
            Score::Logit => Ok(logits),
            Score::Probability => tape.softmax(&logits),
        }
    }
}

/// A model and its weights, explained in eval mode.
#[derive(Clone, Copy)]
pub struct Explained<'a> {
    pub model: &'a dyn Classifier,
    pub store: &'a ParamStore,
}

/// What a method explains: `explained`'s `score` of class `classes[i]` for each image i of `x`
/// [N, C, H, W]. [`Question::new`] checks that the two agree, once for every method.
#[derive(Clone, Copy)]
pub struct Question<'a> {
    explained: Explained<'a>,
    x: &'a Tensor,
    classes: &'a [usize],
    score: Score,
    /// x's [N, C, H, W].
    dims: [usize; 4],
}

impl<'a> Question<'a> {
    pub fn new(
        explained: Explained<'a>,
        x: &'a Tensor,
        classes: &'a [usize],
        score: Score,
    ) -> Result<Self> {
        let &[n, c, h, w] = x.dims() else {
            return Err(Error::invalid(
                "saliency",
                format!("needs images [N, C, H, W], got {:?}", x.dims()),
            ));
        };
        if classes.len() != n {
            return Err(Error::invalid(
                "saliency",
                format!("{} classes for {n} images", classes.len()),
            ));
        }
        Ok(Self {
            explained,
            x,
            classes,
            score,
            dims: [n, c, h, w],
        })
    }

    /// The same question of other images (noisy copies, points on a path, blends), each with
    /// its class in `classes`.
    fn about(&self, x: &'a Tensor, classes: &'a [usize]) -> Result<Self> {
        Self::new(self.explained, x, classes, self.score)
    }
}

/// Values on the host with their shape: attributions [N, C, H, W] or maps [N, H, W].
#[derive(Clone, Debug, PartialEq)]
pub struct Attribution {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// How attributions [N, C, H, W] become maps [N, H, W]: on the host ([`to_maps`]) or on the
/// GPU (`kernels::attribution::reduce_channels`).
pub use crate::kernels::attribution::ChannelReduction as Reduce;

/// One map per image from attributions on the host (the methods' own maps are reduced on the
/// GPU, `kernels::attribution::reduce_channels`; this is its plain-Rust definition).
pub fn to_maps(attribution: &Attribution, reduce: Reduce) -> Result<Attribution> {
    let &[n, c, h, w] = attribution.dims.as_slice() else {
        return Err(Error::invalid(
            "to_maps",
            format!(
                "needs attributions [N, C, H, W], got {:?}",
                attribution.dims
            ),
        ));
    };
    if c * h * w == 0 || attribution.data.len() != n * c * h * w {
        return Err(Error::invalid(
            "to_maps",
            format!(
                "{} values for attributions {:?}",
                attribution.data.len(),
                attribution.dims
            ),
        ));
    }
    Ok(Attribution {
        dims: vec![n, h, w],
        data: crate::reference::attribution::reduce_channels(&attribution.data, c, h * w, reduce),
    })
}

/// The gradient of the scores `question` asks about (summed) with respect to its images, left
/// on the GPU (nothing is read back): the core of every gradient method. `tape` decides plain
/// or guided backprop.
pub(crate) fn input_gradient(question: Question<'_>, tape: Tape) -> Result<Tensor> {
    // Only the input's gradient is wanted: no weight gradients are computed.
    let tape = tape.input_gradients_only();
    let f = Forward::new(&tape, question.explained.store, Mode::Eval);
    let input = tape.input(question.x.clone());
    let output = question
        .score
        .of(&tape, question.explained.model.forward(&f, &input)?)?;
    let seed = one_hot_seed(&output, question.classes)?;
    let grads = tape.backward(&output, Some(seed))?;
    grads
        .get(&input)
        .cloned()
        .ok_or_else(|| Error::invalid("saliency", "the score does not depend on the input"))
}

/// The one-hot seed selecting `classes[b]` in row b of `output` [N, classes].
pub(crate) fn one_hot_seed(output: &Var, classes: &[usize]) -> Result<Tensor> {
    let count = class_count(output, classes)?;
    let mut seed = vec![0.0; classes.len() * count];
    for (b, &class) in classes.iter().enumerate() {
        seed[b * count + class] = 1.0;
    }
    Tensor::from_slice(output.tensor().gpu(), [classes.len(), count], &seed)
}

/// The number of classes of `output` [N, classes], checked to hold one of `classes` per row.
fn class_count(output: &Var, classes: &[usize]) -> Result<usize> {
    let &[n, count] = output.dims() else {
        return Err(Error::invalid(
            "saliency",
            format!("the model's output {:?} is not [N, classes]", output.dims()),
        ));
    };
    if classes.len() != n {
        return Err(Error::invalid(
            "saliency",
            format!("{} target classes for {n} images", classes.len()),
        ));
    }
    if let Some(&bad) = classes.iter().find(|&&c| c >= count) {
        return Err(Error::invalid(
            "saliency",
            format!("class {bad} is out of range: the model has {count} classes"),
        ));
    }
    Ok(count)
}

/// Row b's value at `classes[b]` of `output` [N, classes] (checked by [`class_count`]), read
/// back.
async fn picked_scores(output: &Tensor, classes: &[usize]) -> Result<Vec<f32>> {
    let count = output.dims()[1];
    let values = output.read().await?;
    Ok(classes
        .iter()
        .enumerate()
        .map(|(b, &class)| values[b * count + class])
        .collect())
}

/// The eval-mode scores that `question` asks about, without a tape.
pub async fn scores(question: Question<'_>) -> Result<Vec<f32>> {
    let tape = Tape::no_grad();
    let f = Forward::new(&tape, question.explained.store, Mode::Eval);
    let input = Var::constant(question.x.clone());
    let output = question
        .score
        .of(&tape, question.explained.model.forward(&f, &input)?)?;
    class_count(&output, question.classes)?;
    picked_scores(output.tensor(), question.classes).await
}

/// Eval-mode logits for a batch (no tape).
pub async fn logits(explained: Explained<'_>, x: &Tensor) -> Result<Attribution> {
    let tape = Tape::no_grad();
    let f = Forward::new(&tape, explained.store, Mode::Eval);
    let logits = explained.model.forward(&f, &Var::constant(x.clone()))?;
    Ok(Attribution {
        dims: logits.dims().to_vec(),
        data: logits.tensor().read().await?,
    })
}

/// The `top` most probable classes of one image's logits, with their softmax probabilities,
/// most probable first.
pub fn top_probabilities(logits: &[f32], top: usize) -> Vec<(usize, f64)> {
    let peak = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&v| f64::from(v - peak).exp()).collect();
    let total: f64 = exps.iter().sum();
    let mut ranked: Vec<(usize, f64)> = exps.iter().map(|e| e / total).enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(top.max(1));
    ranked
}

/// The class with the highest logit of each image.
pub async fn top_classes(explained: Explained<'_>, x: &Tensor) -> Result<Vec<usize>> {
    let logits = logits(explained, x).await?;
    let classes = logits.dims[1];
    Ok(logits
        .data
        .chunks(classes)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                })
                .0
        })
        .collect())
}
