//! Judging saliency maps: do they point at the object (pointing game, energy), does the model
//! lose the class when their pixels go (deletion and insertion, ROAD), and do they depend on
//! the model at all (cascading model-parameter randomisation, compared by rank correlation
//! and SSIM).

mod curves;
mod imputation;
mod pointing;
mod randomisation;
mod similarity;

pub use curves::{DeletionInsertion, Road, RoadCurves, deletion_insertion, road};
pub use imputation::noisy_linear_imputation;
pub use pointing::{energy_pointing_game, pointing_game_hit};
pub use randomisation::{RandomisationStep, blocks_in_forward_order, cascading_randomisation};
pub use similarity::{rank_correlation, ssim};
