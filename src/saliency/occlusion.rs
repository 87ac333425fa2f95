//! Occlusion (Zeiler & Fergus 2014): slide a square patch of a baseline value over the image and
//! ask how much the score falls with each window hidden. A pixel's attribution is the mean fall
//! over the windows that cover it, as Captum's `Occlusion` computes it (its window spanning
//! every channel). No gradient is involved, so a network's saturations and its gradients'
//! noise do not reach the map; the price is one forward pass per window, which run here as
//! batches of occluded copies made on the GPU (`kernels::occlusion`).

use super::{Attribution, Question, scores};
use crate::error::Result;
use crate::kernels::occlusion::{Windows, occluded_copies};
use serde::{Deserialize, Serialize};

/// Occlusion's settings.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Occlusion {
    /// The window's side in pixels.
    pub patch: usize,
    /// Pixels between neighbouring windows (1 to `patch`).
    pub stride: usize,
    /// The value hidden pixels take, in the model's input space (0: the normalised mean).
    pub baseline: f32,
    /// Occluded copies per forward pass.
    pub batch: usize,
}

impl Default for Occlusion {
    /// A 16-pixel window every 8 pixels (a 224² image: 729 windows), hidden with the
    /// normalised mean, 16 copies per forward pass.
    fn default() -> Self {
        Self {
            patch: 16,
            stride: 8,
            baseline: 0.0,
            batch: 16,
        }
    }
}

/// One map per image [N, H, W]: at each pixel, the mean over the windows covering it of the
/// score with nothing hidden minus the score with that window hidden (positive where hiding
/// the pixel lowers the score).
pub async fn occlusion(question: Question<'_>, settings: &Occlusion) -> Result<Attribution> {
    let [n, _, height, width] = question.dims;
    let windows = Windows::over(height, width, settings.patch, settings.stride)?;
    let batch = settings.batch.max(1);
    let unoccluded = scores(question).await?;
    let plane = height * width;
    let mut maps = vec![0.0f32; n * plane];
    for (image, (&class, &score)) in question.classes.iter().zip(&unoccluded).enumerate() {
        let mut falls = vec![0.0f64; plane];
        let mut covering = vec![0u32; plane];
        for first in (0..windows.count()).step_by(batch) {
            let count = batch.min(windows.count() - first);
            let copies =
                occluded_copies(question.x, image, &windows, first, count, settings.baseline)?;
            let classes = vec![class; count];
            let occluded = scores(question.about(&copies, &classes)?).await?;
            for (offset, occluded_score) in occluded.iter().enumerate() {
                let fall = f64::from(score - occluded_score);
                let (y0, x0) = windows.origin(first + offset);
                for row in y0..(y0 + windows.patch).min(height) {
                    for column in x0..(x0 + windows.patch).min(width) {
                        falls[row * width + column] += fall;
                        covering[row * width + column] += 1;
                    }
                }
            }
        }
        for (pixel, (fall, count)) in falls.iter().zip(&covering).enumerate() {
            // Every pixel lies under some window (`Windows::over` keeps the stride within the
            // patch).
            maps[image * plane + pixel] = (fall / f64::from(*count)) as f32;
        }
    }
    Ok(Attribution {
        dims: vec![n, height, width],
        data: maps,
    })
}
