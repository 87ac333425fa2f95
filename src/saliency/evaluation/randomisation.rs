//! The cascading model-parameter randomisation test, MPRT (Adebayo et al. 2018, "Sanity
//! Checks for Saliency Maps"): re-initialise the model's blocks one after another from the
//! output towards the input and compare each map of the damaged model with the trained
//! model's. A method that explains the model must lose its map as the model loses its
//! weights (similarity falling towards 0); one that keeps its map (guided backprop is the
//! paper's example) shows the image, not the model.
//!
//! A block is a module path's first two parts (`layer4.1`, `features.28`, `fc`,
//! `features.denseblock4`), in the order the forward pass first uses its parameters; the
//! maps are compared as absolute values (a sign flip is not a new explanation) by Spearman's
//! rank correlation and SSIM.

use super::similarity::{rank_correlation, ssim};
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::nn::{Forward, Mode};
use crate::saliency::{Attribution, Explained, Method, MethodSettings, method_maps};
use crate::tensor::Tensor;

/// The maps after one more block was re-initialised, against the trained model's.
#[derive(Clone, Debug)]
pub struct RandomisationStep {
    /// The block re-initialised at this step (every block of earlier steps stays so).
    pub block: String,
    /// Per image: Spearman's rank correlation with the trained model's map.
    pub rank_correlation: Vec<f32>,
    /// Per image: SSIM with the trained model's map (None for maps under 11 pixels a side).
    pub ssim: Vec<Option<f32>>,
}

/// The model's blocks in the order its forward pass on `x` first uses their parameters.
pub fn blocks_in_forward_order(explained: Explained<'_>, x: &Tensor) -> Result<Vec<String>> {
    let tape = Tape::new();
    let f = Forward::new(&tape, explained.store, Mode::Eval);
    explained.model.forward(&f, &Var::constant(x.clone()))?;
    let mut blocks: Vec<String> = Vec::new();
    for name in tape.parameter_names_in_use_order() {
        let module = name
            .rsplit_once('.')
            .map_or(name.as_str(), |(module, _)| module);
        let block = module.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
        if !blocks.contains(&block) {
            blocks.push(block);
        }
    }
    if blocks.is_empty() {
        return Err(Error::invalid(
            "cascading randomisation",
            "the model uses no trainable parameter: nothing to randomise",
        ));
    }
    Ok(blocks)
}

/// The trained model's `method` maps of `x` for `classes`, and one step per block, last block
/// first, each with the maps of the model whose blocks up to it are re-initialised from `seed`.
pub async fn cascading_randomisation(
    explained: Explained<'_>,
    x: &Tensor,
    classes: &[usize],
    method: Method,
    settings: &MethodSettings,
    seed: u64,
) -> Result<(Attribution, Vec<RandomisationStep>)> {
    let original = method_maps(explained, x, classes, method, settings)
        .await?
        .maps;
    let (n, h, w) = (original.dims[0], original.dims[1], original.dims[2]);
    let plane = h * w;
    let absolute = |maps: &Attribution| -> Vec<f32> { maps.data.iter().map(|v| v.abs()).collect() };
    let trained = absolute(&original);
    let mut blocks = blocks_in_forward_order(explained, x)?;
    blocks.reverse();
    let mut steps = Vec::with_capacity(blocks.len());
    for k in 0..blocks.len() {
        let reset: Vec<&str> = blocks[..=k].iter().map(String::as_str).collect();
        let store = explained.store.with_blocks_reset(&reset, seed)?;
        let damaged = Explained {
            model: explained.model,
            store: &store,
        };
        let maps = absolute(
            &method_maps(damaged, x, classes, method, settings)
                .await?
                .maps,
        );
        let image = |values: &[f32], i: usize| values[i * plane..(i + 1) * plane].to_vec();
        steps.push(RandomisationStep {
            block: blocks[k].clone(),
            rank_correlation: (0..n)
                .map(|i| rank_correlation(&image(&trained, i), &image(&maps, i)))
                .collect(),
            ssim: (0..n)
                .map(|i| ssim(&image(&trained, i), &image(&maps, i), h, w))
                .collect(),
        });
    }
    Ok((original, steps))
}
