//! Occluded copies on the host (shaders/occlusion.wgsl).

use crate::kernels::occlusion::Windows;

/// What `kernels::occlusion::occluded_copies` computes from `x` [N, C, H, W] given as `dims`.
pub fn occluded_copies(
    x: &[f32],
    dims: [usize; 4],
    image: usize,
    windows: &Windows,
    first: usize,
    count: usize,
    baseline: f32,
) -> Vec<f32> {
    let [_, channels, height, width] = dims;
    let per_image = channels * height * width;
    let source = &x[image * per_image..(image + 1) * per_image];
    let mut out = Vec::with_capacity(count * per_image);
    for window in first..first + count {
        let (y0, x0) = windows.origin(window);
        for c in 0..channels {
            for row in 0..height {
                for column in 0..width {
                    let inside = (y0..y0 + windows.patch).contains(&row)
                        && (x0..x0 + windows.patch).contains(&column);
                    let value = source[(c * height + row) * width + column];
                    out.push(if inside { baseline } else { value });
                }
            }
        }
    }
    out
}
