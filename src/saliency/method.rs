//! The methods by name, each turned into one map per image: what `gradlens saliency` and the
//! browser front offer.

use super::{
    Attribution, Explained, IntegratedGradients, Perturbation, Reduce, Score, SmoothGrad, grad_cam,
    gradient, gradient_x_input, guided_backprop, integrated_gradients, meaningful_perturbation,
    smoothgrad, to_maps,
};
use crate::error::Result;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Gradient,
    GradientXInput,
    Smoothgrad,
    IntegratedGradients,
    Gradcam,
    GuidedBackprop,
    Perturbation,
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::Gradient,
        Method::GradientXInput,
        Method::Smoothgrad,
        Method::IntegratedGradients,
        Method::Gradcam,
        Method::GuidedBackprop,
        Method::Perturbation,
    ];

    /// The kebab-case name the command line and the page use.
    pub fn name(self) -> &'static str {
        match self {
            Method::Gradient => "gradient",
            Method::GradientXInput => "gradient-x-input",
            Method::Smoothgrad => "smoothgrad",
            Method::IntegratedGradients => "integrated-gradients",
            Method::Gradcam => "gradcam",
            Method::GuidedBackprop => "guided-backprop",
            Method::Perturbation => "perturbation",
        }
    }

    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|method| method.name() == name)
    }
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

/// `method`'s map of each image for its class, explaining the logit with each method's usual
/// settings (SmoothGrad's and meaningful perturbation's defaults, integrated gradients from a
/// black baseline).
pub async fn method_maps(
    explained: Explained<'_>,
    x: &Tensor,
    classes: &[usize],
    method: Method,
) -> Result<MethodMaps> {
    let score = Score::Logit;
    let mut notes = Vec::new();
    let maps = match method {
        Method::Gradient => to_maps(
            &gradient(explained, x, classes, score).await?,
            Reduce::AbsMax,
        )?,
        Method::GradientXInput => to_maps(
            &gradient_x_input(explained, x, classes, score).await?,
            Reduce::Sum,
        )?,
        Method::Smoothgrad => to_maps(
            &smoothgrad(explained, x, classes, score, &SmoothGrad::default()).await?,
            Reduce::AbsMax,
        )?,
        Method::IntegratedGradients => {
            let settings = IntegratedGradients::default();
            let result = integrated_gradients(explained, x, classes, score, &settings).await?;
            for (error, difference) in result
                .completeness_error
                .iter()
                .zip(&result.score_difference)
            {
                notes.push(format!(
                    "integrated gradients: attributions sum to F(x) − F(baseline) = {difference:.4} within {error:.4}"
                ));
            }
            to_maps(&result.attribution, Reduce::Sum)?
        }
        Method::Gradcam => grad_cam(explained, x, classes, score, None).await?.1,
        Method::GuidedBackprop => to_maps(
            &guided_backprop(explained, x, classes, score).await?,
            Reduce::AbsMax,
        )?,
        Method::Perturbation => {
            meaningful_perturbation(explained, x, classes, &Perturbation::default())
                .await?
                .saliency
        }
    };
    Ok(MethodMaps { maps, notes })
}
