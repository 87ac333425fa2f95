//! The methods by name, each turned into one map per image: what `gradlens saliency` and the
//! browser front offer.

use super::gradcam::guided_grad_cam_on_gpu;
use super::gradient::{
    gradient_on_gpu, gradient_x_input_on_gpu, guided_backprop_on_gpu, host, smoothgrad_on_gpu,
};
use super::integrated_gradients::integrated_gradients_on_gpu;
use super::{
    Attribution, Cam, Explained, ExtremalPerturbation, IntegratedGradients, Occlusion,
    Perturbation, Question, Reduce, Score, ScoreCam, SmoothGrad, class_activation_map,
    class_activation_maps, extremal_perturbation, meaningful_perturbation, occlusion, score_cam,
};
use crate::error::Result;
use crate::kernels::attribution::reduce_channels;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Gradient,
    GradientXInput,
    Smoothgrad,
    IntegratedGradients,
    Gradcam,
    GradcamPlusPlus,
    Hirescam,
    Layercam,
    Scorecam,
    GuidedBackprop,
    GuidedGradcam,
    Occlusion,
    Perturbation,
    ExtremalPerturbation,
}

impl Method {
    pub const ALL: [Method; 14] = [
        Method::Gradient,
        Method::GradientXInput,
        Method::Smoothgrad,
        Method::IntegratedGradients,
        Method::Gradcam,
        Method::GradcamPlusPlus,
        Method::Hirescam,
        Method::Layercam,
        Method::Scorecam,
        Method::GuidedBackprop,
        Method::GuidedGradcam,
        Method::Occlusion,
        Method::Perturbation,
        Method::ExtremalPerturbation,
    ];

    /// The kebab-case name the command line and the page use.
    pub fn name(self) -> &'static str {
        match self {
            Method::Gradient => "gradient",
            Method::GradientXInput => "gradient-x-input",
            Method::Smoothgrad => "smoothgrad",
            Method::IntegratedGradients => "integrated-gradients",
            Method::Gradcam => "gradcam",
            Method::GradcamPlusPlus => "gradcam-plus-plus",
            Method::Hirescam => "hirescam",
            Method::Layercam => "layercam",
            Method::Scorecam => "scorecam",
            Method::GuidedBackprop => "guided-backprop",
            Method::GuidedGradcam => "guided-gradcam",
            Method::Occlusion => "occlusion",
            Method::Perturbation => "perturbation",
            Method::ExtremalPerturbation => "extremal-perturbation",
        }
    }

    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|method| method.name() == name)
    }
}

/// Every method's settings (the command line sets `--layer` and `--occlusion-*`; a run's
/// manifest records them all, seeds included, so that a replay runs the very same methods).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MethodSettings {
    /// The layer of the CAM family and guided Grad-CAM, by its torchvision name (`layer3`,
    /// `features.28`); `None` is the model's last convolutional block.
    pub layer: Option<String>,
    pub occlusion: Occlusion,
    pub score_cam: ScoreCam,
    pub smoothgrad: SmoothGrad,
    pub integrated_gradients: IntegratedGradients,
    pub perturbation: Perturbation,
    pub extremal_perturbation: ExtremalPerturbation,
}

/// One method's maps and what it reports beside them.
#[derive(Clone, Debug)]
pub struct MethodMaps {
    /// [N, H, W] at the input's resolution. Signed for gradient × input and integrated
    /// gradients, non-negative for the others.
    pub maps: Attribution,
    /// One line per image where the method checks itself (integrated gradients'
    /// completeness).
    pub notes: Vec<String>,
}

/// `method`'s map of each image for its class with its `settings` (by default each method's
/// usual ones: SmoothGrad's, integrated gradients from a black baseline, extremal
/// perturbation's areas of 5, 10 and 20%), explaining the logit, and the probability with
/// meaningful perturbation, as its paper does.
pub async fn method_maps(
    explained: Explained<'_>,
    x: &Tensor,
    classes: &[usize],
    method: Method,
    settings: &MethodSettings,
) -> Result<MethodMaps> {
    let logit = Question::new(explained, x, classes, Score::Logit)?;
    let cam = |kind| class_activation_map(logit, settings.layer.as_deref(), kind);
    let mut notes = Vec::new();
    let maps = match method {
        Method::Gradient => maps_on_gpu(&gradient_on_gpu(logit).await?, Reduce::AbsMax).await?,
        Method::GradientXInput => {
            maps_on_gpu(&gradient_x_input_on_gpu(logit).await?, Reduce::Sum).await?
        }
        Method::Smoothgrad => {
            let sum = smoothgrad_on_gpu(logit, &settings.smoothgrad).await?;
            maps_on_gpu(&sum, Reduce::AbsMax).await?
        }
        Method::IntegratedGradients => {
            let result = integrated_gradients_on_gpu(logit, &settings.integrated_gradients).await?;
            for (error, difference) in result
                .completeness_error
                .iter()
                .zip(&result.score_difference)
            {
                notes.push(format!(
                    "integrated gradients: attributions sum to F(x) − F(baseline) = {difference:.4} within {error:.4}"
                ));
            }
            maps_on_gpu(&result.attribution, Reduce::Sum).await?
        }
        Method::Gradcam => cam(Cam::GradCam).await?.1,
        Method::GradcamPlusPlus => cam(Cam::GradCamPlusPlus).await?.1,
        Method::Hirescam => cam(Cam::HiResCam).await?.1,
        Method::Layercam => cam(Cam::LayerCam).await?.1,
        Method::Scorecam => {
            score_cam(logit, settings.layer.as_deref(), &settings.score_cam)
                .await?
                .1
        }
        Method::GuidedBackprop => {
            maps_on_gpu(&guided_backprop_on_gpu(logit).await?, Reduce::AbsMax).await?
        }
        Method::GuidedGradcam => {
            let attribution = guided_grad_cam_on_gpu(logit, settings.layer.as_deref()).await?;
            maps_on_gpu(&attribution, Reduce::AbsMax).await?
        }
        Method::Occlusion => occlusion(logit, &settings.occlusion).await?,
        Method::Perturbation => {
            let probability = Question::new(explained, x, classes, Score::Probability)?;
            meaningful_perturbation(probability, &settings.perturbation)
                .await?
                .saliency
        }
        Method::ExtremalPerturbation => {
            extremal_perturbation(logit, &settings.extremal_perturbation)
                .await?
                .saliency
        }
    };
    Ok(MethodMaps { maps, notes })
}

/// The maps of several methods, in the order of `methods`, sharing what they can: gradient
/// and gradient × input come from one forward and one backward pass, and so do the CAMs
/// (Grad-CAM, Grad-CAM++, HiResCAM, LayerCAM); every other method runs on its own.
pub async fn methods_maps(
    explained: Explained<'_>,
    x: &Tensor,
    classes: &[usize],
    methods: &[Method],
    settings: &MethodSettings,
) -> Result<Vec<MethodMaps>> {
    let logit = Question::new(explained, x, classes, Score::Logit)?;
    let mut shared: Vec<(Method, Attribution)> = Vec::new();
    if methods.contains(&Method::Gradient) || methods.contains(&Method::GradientXInput) {
        let gradient = gradient_on_gpu(logit).await?;
        shared.push((
            Method::Gradient,
            maps_on_gpu(&gradient, Reduce::AbsMax).await?,
        ));
        let times_input = crate::kernels::elementwise::mul(&gradient, x)?;
        shared.push((
            Method::GradientXInput,
            maps_on_gpu(&times_input, Reduce::Sum).await?,
        ));
    }
    let cams: Vec<(Method, Cam)> = [
        (Method::Gradcam, Cam::GradCam),
        (Method::GradcamPlusPlus, Cam::GradCamPlusPlus),
        (Method::Hirescam, Cam::HiResCam),
        (Method::Layercam, Cam::LayerCam),
    ]
    .into_iter()
    .filter(|(method, _)| methods.contains(method))
    .collect();
    if !cams.is_empty() {
        let kinds: Vec<Cam> = cams.iter().map(|&(_, kind)| kind).collect();
        let maps = class_activation_maps(logit, settings.layer.as_deref(), &kinds).await?;
        shared.extend(
            cams.iter()
                .zip(maps)
                .map(|(&(method, _), (_, high))| (method, high)),
        );
    }
    let mut all = Vec::with_capacity(methods.len());
    for &method in methods {
        match shared.iter().find(|(m, _)| *m == method) {
            Some((_, maps)) => all.push(MethodMaps {
                maps: maps.clone(),
                notes: Vec::new(),
            }),
            None => all.push(method_maps(explained, x, classes, method, settings).await?),
        }
    }
    Ok(all)
}

/// Attributions [N, C, H, W] reduced to maps on the GPU, and only the maps read back.
async fn maps_on_gpu(attribution: &Tensor, reduce: Reduce) -> Result<Attribution> {
    host(&reduce_channels(attribution, reduce)?).await
}
