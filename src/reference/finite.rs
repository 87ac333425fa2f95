//! Reference for shaders/finite.wgsl.

/// Whether any value is NaN or ±Inf: what the kernel flags.
pub fn has_non_finite(values: &[f32]) -> bool {
    values.iter().any(|value| !value.is_finite())
}
