//! Score-CAM's masked copies on the host (shaders/score_cam.wgsl).

/// The lower input index, the next one's offset (0 at the last) and its weight, for output
/// index `o` of an axis of `size_in` inputs upsampled to `size_out` with align_corners = true,
/// in f32 as torch computes it.
fn align_corners_sample(o: usize, size_in: usize, size_out: usize) -> (usize, usize, f32) {
    let scale = if size_out > 1 {
        (size_in - 1) as f32 / (size_out - 1) as f32
    } else {
        0.0
    };
    let source = scale * o as f32;
    let index = (source as usize).min(size_in - 1);
    (
        index,
        usize::from(index + 1 < size_in),
        source - index as f32,
    )
}

/// One activation map [h, w] upsampled to [height, width] (bilinear, align_corners = true).
pub fn upsample_align_corners(
    map: &[f32],
    [h, w]: [usize; 2],
    [height, width]: [usize; 2],
) -> Vec<f32> {
    let mut out = Vec::with_capacity(height * width);
    for row in 0..height {
        let (y, dy, fy) = align_corners_sample(row, h, height);
        for column in 0..width {
            let (x, dx, fx) = align_corners_sample(column, w, width);
            let at = |y: usize, x: usize| map[y * w + x];
            let upper = (1.0 - fx) * at(y, x) + fx * at(y, x + dx);
            let lower = (1.0 - fx) * at(y + dy, x) + fx * at(y + dy, x + dx);
            out.push((1.0 - fy) * upper + fy * lower);
        }
    }
    out
}

/// What `kernels::score_cam::masked_copies` computes from `x` [N, C, H, W] and `activations`
/// [N, K, h, w], given with their dims.
pub fn masked_copies(
    x: &[f32],
    x_dims: [usize; 4],
    activations: &[f32],
    activation_dims: [usize; 4],
    image: usize,
    first: usize,
    count: usize,
) -> Vec<f32> {
    let [_, channels, height, width] = x_dims;
    let [_, maps, h, w] = activation_dims;
    let per_image = channels * height * width;
    let source = &x[image * per_image..(image + 1) * per_image];
    let mut out = Vec::with_capacity(count * per_image);
    for k in first..first + count {
        let start = (image * maps + k) * h * w;
        let up =
            upsample_align_corners(&activations[start..start + h * w], [h, w], [height, width]);
        let low = up.iter().copied().fold(f32::INFINITY, f32::min);
        let high = up.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for c in 0..channels {
            let plane = &source[c * height * width..(c + 1) * height * width];
            out.extend(
                plane
                    .iter()
                    .zip(&up)
                    .map(|(v, u)| v * ((u - low) / (high - low + 1e-8))),
            );
        }
    }
    out
}
