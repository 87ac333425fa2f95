//! A classifier on held-out images: softmax probabilities in eval mode, batch by batch, each
//! batch's readback awaited (so the browser page evaluates on WebGPU with the same code).

use crate::autograd::{Tape, Var};
use crate::error::Result;
use crate::imaging::Preprocess;
use crate::nn::{Forward, Mode};
use crate::saliency::Explained;
use crate::tensor::Tensor;

use super::data::LabelledImages;

/// Softmax probabilities [N, classes] of `data`'s images (sized by `preprocess`), `batch` at a
/// time.
pub async fn probabilities(
    model: Explained<'_>,
    data: &LabelledImages,
    preprocess: &Preprocess,
    batch: usize,
) -> Result<Vec<f32>> {
    let gpu = model.store.gpu();
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut probabilities = Vec::new();
    for chunk in indices.chunks(batch.max(1)) {
        let (images, dims) = data.stacked(chunk, preprocess);
        let x = Tensor::from_slice(gpu, dims, &images)?;
        let tape = Tape::no_grad();
        let f = Forward::new(&tape, model.store, Mode::Eval);
        let logits = model.model.forward(&f, &Var::constant(x))?;
        probabilities.extend(tape.softmax(&logits)?.tensor().read().await?);
    }
    Ok(probabilities)
}
