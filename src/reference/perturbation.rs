//! The perturbation methods' mask arithmetic on the host (shaders/perturbation.wgsl): each
//! function computes what the kernel of the same name does, written for obviousness.

use super::cam::{bilinear_source, upsample_bilinear};
use crate::kernels::perturbation::{MaskPenalty, Shift, gaussian_taps};

/// Where output position `o` of an axis of `size` reads when shifted by `d`: clamp(o − d).
fn source(o: usize, d: i32, size: usize) -> usize {
    (o as i64 - i64::from(d)).clamp(0, size as i64 - 1) as usize
}

/// `maps` [n, h, w] shifted: out[y][x] = in[clamp(y − dy)][clamp(x − dx)].
pub fn shift_maps(maps: &[f32], [n, h, w]: [usize; 3], shift: Shift) -> Vec<f32> {
    let mut out = vec![0.0; maps.len()];
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                out[(b * h + y) * w + x] =
                    maps[(b * h + source(y, shift.dy, h)) * w + source(x, shift.dx, w)];
            }
        }
    }
    out
}

/// The adjoint of `shift_maps`: each output's gradient goes back to the pixel it read.
pub fn shift_maps_adjoint(grad: &[f32], [n, h, w]: [usize; 3], shift: Shift) -> Vec<f32> {
    let mut out = vec![0.0f64; grad.len()];
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                let from = (b * h + source(y, shift.dy, h)) * w + source(x, shift.dx, w);
                out[from] += f64::from(grad[(b * h + y) * w + x]);
            }
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}

/// The adjoint of `upsample_bilinear` from [n, h, w] to [n, height, width]: each output
/// pixel's gradient goes back to its four source taps with the same weights.
pub fn upsample_bilinear_adjoint(
    grad: &[f32],
    [n, h, w]: [usize; 3],
    [height, width]: [usize; 2],
) -> Vec<f32> {
    let mut out = vec![0.0f64; n * h * w];
    let (sy, sx) = (h as f64 / height as f64, w as f64 / width as f64);
    for b in 0..n {
        for y in 0..height {
            let (y0, y1, fy) = bilinear_source(y, sy, h);
            for x in 0..width {
                let (x0, x1, fx) = bilinear_source(x, sx, w);
                let g = f64::from(grad[(b * height + y) * width + x]);
                let (fy, fx) = (f64::from(fy), f64::from(fx));
                let base = b * h * w;
                out[base + y0 * w + x0] += g * (1.0 - fy) * (1.0 - fx);
                out[base + y0 * w + x1] += g * (1.0 - fy) * fx;
                out[base + y1 * w + x0] += g * fy * (1.0 - fx);
                out[base + y1 * w + x1] += g * fy * fx;
            }
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}

/// What `kernels::perturbation::blend_with_mask` computes: images [n, c, h, w] blended with
/// `replacement` by `mask` [n, mh, mw] upsampled, then shifted.
pub fn blend_with_mask(
    images: &[f32],
    replacement: &[f32],
    mask: &[f32],
    [n, c, h, w]: [usize; 4],
    [mh, mw]: [usize; 2],
    shift: Shift,
) -> Vec<f32> {
    let upsampled = upsample_bilinear(mask, [n, mh, mw], [h, w]);
    let shifted = shift_maps(&upsampled, [n, h, w], shift);
    let plane = h * w;
    (0..images.len())
        .map(|i| {
            let m = shifted[(i / (c * plane)) * plane + i % plane];
            images[i] * m + replacement[i] * (1.0 - m)
        })
        .collect()
}

/// What `kernels::perturbation::mask_pixel_gradient` computes: Σ_c g · (images −
/// replacement), [n, h, w], carried back through the shift.
pub fn mask_pixel_gradient(
    images: &[f32],
    replacement: &[f32],
    g: &[f32],
    [n, c, h, w]: [usize; 4],
    shift: Shift,
) -> Vec<f32> {
    let plane = h * w;
    let mut shifted = vec![0.0f64; n * plane];
    for i in 0..images.len() {
        let delta = f64::from(images[i]) - f64::from(replacement[i]);
        shifted[(i / (c * plane)) * plane + i % plane] += f64::from(g[i]) * delta;
    }
    let shifted: Vec<f32> = shifted.into_iter().map(|v| v as f32).collect();
    shift_maps_adjoint(&shifted, [n, h, w], shift)
}

/// λ₂ β |d|^(β−1) sign(d), with sign(0) = 0.
fn tv_slope(d: f32, penalty: &MaskPenalty) -> f32 {
    let sign = if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    };
    penalty.tv * penalty.tv_beta * d.abs().powf(penalty.tv_beta - 1.0) * sign
}

/// The penalty λ₁ Σ(1 − m) + λ₂ Σ|Δm|^β of masks [n, h, w] (for the finite-difference check
/// of `mask_gradient`'s part).
pub fn mask_penalty(mask: &[f32], [n, h, w]: [usize; 3], penalty: &MaskPenalty) -> f64 {
    let mut total = 0.0f64;
    for b in 0..n {
        let at = |y: usize, x: usize| f64::from(mask[(b * h + y) * w + x]);
        for y in 0..h {
            for x in 0..w {
                total += f64::from(penalty.l1) * (1.0 - at(y, x));
                for d in [
                    (x + 1 < w).then(|| at(y, x + 1) - at(y, x)),
                    (y + 1 < h).then(|| at(y + 1, x) - at(y, x)),
                ]
                .into_iter()
                .flatten()
                {
                    total += f64::from(penalty.tv) * d.abs().powf(f64::from(penalty.tv_beta));
                }
            }
        }
    }
    total
}

/// What `kernels::perturbation::mask_gradient` computes: the upsampling's adjoint of
/// `pixel_grad` [n, height, width], minus λ₁ where m < 1, plus the smoothness term's gradient.
pub fn mask_gradient(
    mask: &[f32],
    [n, h, w]: [usize; 3],
    pixel_grad: &[f32],
    [height, width]: [usize; 2],
    penalty: &MaskPenalty,
) -> Vec<f32> {
    let mut grad = upsample_bilinear_adjoint(pixel_grad, [n, h, w], [height, width]);
    for (g, &m) in grad.iter_mut().zip(mask) {
        if m < 1.0 {
            *g -= penalty.l1;
        }
    }
    for b in 0..n {
        let at = |y: usize, x: usize| b * h * w + y * w + x;
        for y in 0..h {
            for x in 0..w {
                if x + 1 < w {
                    let d = tv_slope(mask[at(y, x + 1)] - mask[at(y, x)], penalty);
                    grad[at(y, x + 1)] += d;
                    grad[at(y, x)] -= d;
                }
                if y + 1 < h {
                    let d = tv_slope(mask[at(y + 1, x)] - mask[at(y, x)], penalty);
                    grad[at(y + 1, x)] += d;
                    grad[at(y, x)] -= d;
                }
            }
        }
    }
    grad
}

/// What `kernels::perturbation::SmoothMasks::apply` computes for `grids` [k, gh, gw] of
/// points `step` pixels apart and the bump table `bump` (weights by whole-pixel distance):
/// the masks [k, h, w] and each pixel's winning grid point.
pub fn smooth_masks(
    grids: &[f32],
    [k, gh, gw]: [usize; 3],
    bump: &[f32],
    step: usize,
    [h, w]: [usize; 2],
) -> (Vec<f32>, Vec<u32>) {
    let reach = bump.len() - 1;
    let mut masks = Vec::with_capacity(k * h * w);
    let mut winners = Vec::with_capacity(k * h * w);
    for copy in 0..k {
        let grid = &grids[copy * gh * gw..(copy + 1) * gh * gw];
        for y in 0..h {
            for x in 0..w {
                // (value, bump, point): the first largest value in row order, ties to the
                // larger bump (the nearer point, whose gradient can pull a let-go mask back).
                let mut best = (f32::NEG_INFINITY, 0.0f32, 0usize);
                for gy in 0..gh {
                    for gx in 0..gw {
                        let (dy, dx) = ((gy * step).abs_diff(y), (gx * step).abs_diff(x));
                        if dy > reach || dx > reach {
                            continue;
                        }
                        let weight = bump[dy] * bump[dx];
                        let value = weight * grid[gy * gw + gx];
                        if value > best.0 || (value == best.0 && weight > best.1) {
                            best = (value, weight, gy * gw + gx);
                        }
                    }
                }
                masks.push(best.0);
                winners.push(best.2 as u32);
            }
        }
    }
    (masks, winners)
}

/// What `SmoothMasks::adjoint` computes: each pixel's gradient in `mask_grad` [k, h, w] sent
/// to its winning grid point times that point's bump, [k, gh, gw].
pub fn smooth_masks_adjoint(
    mask_grad: &[f32],
    winners: &[u32],
    [k, gh, gw]: [usize; 3],
    bump: &[f32],
    step: usize,
    [h, w]: [usize; 2],
) -> Vec<f32> {
    let mut out = vec![0.0f64; k * gh * gw];
    for copy in 0..k {
        for y in 0..h {
            for x in 0..w {
                let p = (copy * h + y) * w + x;
                let point = winners[p] as usize;
                let (gy, gx) = (point / gw, point % gw);
                let weight = bump[(gy * step).abs_diff(y)] * bump[(gx * step).abs_diff(x)];
                out[copy * gh * gw + point] += f64::from(mask_grad[p]) * f64::from(weight);
            }
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}

/// The pyramid level below (1 − m) · (levels − 1) and the fraction towards the next.
fn level_of(m: f32, levels: usize) -> (usize, f32) {
    let level = (1.0 - m).clamp(0.0, 1.0) * (levels - 1) as f32;
    let low = (level.floor() as usize).min(levels - 2);
    (low, level - low as f32)
}

/// What `kernels::perturbation::blend_pyramid` computes from `pyramid` [levels, n, c, h, w]
/// and `masks` [n · areas, h, w].
pub fn blend_pyramid(
    pyramid: &[f32],
    [levels, n, c, h, w]: [usize; 5],
    masks: &[f32],
    areas: usize,
) -> Vec<f32> {
    let (plane, size) = (h * w, c * h * w);
    let mut out = vec![0.0f32; n * areas * size];
    for copy in 0..n * areas {
        for e in 0..size {
            let (low, fraction) = level_of(masks[copy * plane + e % plane], levels);
            let at = |level: usize| pyramid[(level * n + copy / areas) * size + e];
            let (a, b) = (at(low), at(low + 1));
            out[copy * size + e] = a + fraction * (b - a);
        }
    }
    out
}

/// What `kernels::perturbation::area_threshold` computes, by a stable ascending sort: per mask
/// of `masks` [k, h, w], the value T at the first of the last kept[k % areas] ranks, and the
/// lowest index among the pixels equal to T at those ranks.
pub fn area_threshold(masks: &[f32], [k, h, w]: [usize; 3], kept: &[usize]) -> Vec<f32> {
    let plane = h * w;
    let mut out = Vec::with_capacity(2 * k);
    for copy in 0..k {
        let count = kept[copy % kept.len()];
        if count == 0 {
            out.extend([3.0e38, 0.0]);
            continue;
        }
        let mask = &masks[copy * plane..(copy + 1) * plane];
        let mut order: Vec<usize> = (0..plane).collect();
        order.sort_by(|&a, &b| mask[a].total_cmp(&mask[b]));
        let kept_pixels = &order[plane - count..];
        let t = mask[kept_pixels[0]];
        let first = kept_pixels
            .iter()
            .filter(|&&p| mask[p] == t)
            .min()
            .expect("T is kept");
        out.extend([t, *first as f32]);
    }
    out
}

/// What `kernels::perturbation::extremal_mask_gradient` computes.
pub fn extremal_mask_gradient(
    pyramid: &[f32],
    [levels, n, c, h, w]: [usize; 5],
    masks: &[f32],
    areas: usize,
    thresholds: &[f32],
    g: &[f32],
    area_weight: f32,
) -> Vec<f32> {
    let (plane, size) = (h * w, c * h * w);
    let mut out = vec![0.0f32; n * areas * plane];
    for copy in 0..n * areas {
        let (t, first) = (thresholds[2 * copy], thresholds[2 * copy + 1] as usize);
        for p in 0..plane {
            let m = masks[copy * plane + p];
            let target = if m > t || (m == t && p >= first) {
                1.0
            } else {
                0.0
            };
            let mut total = f64::from(2.0 * area_weight * (m - target) / plane as f32);
            let (low, _) = level_of(m, levels);
            for channel in 0..c {
                let e = channel * plane + p;
                let at = |level: usize| pyramid[(level * n + copy / areas) * size + e];
                let slope = (levels - 1) as f32 * (at(low + 1) - at(low));
                total += f64::from(g[copy * size + e]) * f64::from(slope);
            }
            out[copy * plane + p] = total as f32;
        }
    }
    out
}

/// Separable Gaussian blur of the planes of h × w in `values` (borders replicated), with
/// `gaussian_taps`.
pub fn gaussian_blur(values: &[f32], [h, w]: [usize; 2], sigma: f32) -> Vec<f32> {
    let taps = gaussian_taps(sigma);
    let rows = blur_axis(values, &taps, w, 1);
    blur_axis(&rows, &taps, h, w)
}

/// Convolves `values` along one axis, of `len` positions `step` elements apart, with the
/// centred `taps`, borders replicated.
fn blur_axis(values: &[f32], taps: &[f32], len: usize, step: usize) -> Vec<f32> {
    let radius = (taps.len() / 2) as i64;
    (0..values.len())
        .map(|i| {
            let position = (i / step) % len;
            let line_start = i - position * step;
            let total: f64 = taps
                .iter()
                .enumerate()
                .map(|(t, &weight)| {
                    let source = (position as i64 + t as i64 - radius).clamp(0, len as i64 - 1);
                    f64::from(weight) * f64::from(values[line_start + source as usize * step])
                })
                .sum();
            total as f32
        })
        .collect()
}

/// What `kernels::perturbation::blur_pyramid` computes: [levels, …] of `images`, level l
/// blurred by σ = max_blur · l / (levels − 1) (one level: by max_blur).
pub fn blur_pyramid(images: &[f32], [h, w]: [usize; 2], levels: usize, max_blur: f32) -> Vec<f32> {
    (0..levels)
        .flat_map(|level| {
            let sigma = match levels {
                1 => max_blur,
                _ => max_blur * level as f32 / (levels - 1) as f32,
            };
            gaussian_blur(images, [h, w], sigma)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::SplitMix64;

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    /// ⟨upsample(m), g⟩ = ⟨m, adjoint(g)⟩, the same for the shift and for the smooth masks at
    /// fixed winners: the mask gradients are the true gradients of the forward maps.
    #[test]
    fn adjoints_are_adjoint() {
        let mut rng = SplitMix64::new(5);
        let mut random =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.uniform() as f32 - 0.3).collect() };
        let (n, h, w, height, width) = (2, 3, 4, 10, 13);
        let m = random(n * h * w);
        let g = random(n * height * width);
        let up = upsample_bilinear(&m, [n, h, w], [height, width]);
        let back = upsample_bilinear_adjoint(&g, [n, h, w], [height, width]);
        assert!((dot(&up, &g) - dot(&m, &back)).abs() < 1e-4);
        let shift = Shift { dy: 2, dx: -3 };
        let shifted = shift_maps(&up, [n, height, width], shift);
        let back = shift_maps_adjoint(&g, [n, height, width], shift);
        assert!((dot(&shifted, &g) - dot(&up, &back)).abs() < 1e-4);
        let (step, bump) = (3, [1.0, 0.8, 0.5, 0.2]);
        let grid = [height.div_ceil(step) + 1, width.div_ceil(step) + 1];
        let grids: Vec<f32> = random(n * grid[0] * grid[1])
            .iter()
            .map(|v| v.abs())
            .collect();
        let (masks, winners) =
            smooth_masks(&grids, [n, grid[0], grid[1]], &bump, step, [height, width]);
        let back = smooth_masks_adjoint(
            &g,
            &winners,
            [n, grid[0], grid[1]],
            &bump,
            step,
            [height, width],
        );
        assert!((dot(&masks, &g) - dot(&grids, &back)).abs() < 1e-4);
    }

    /// The penalty's part of `mask_gradient` against central differences of `mask_penalty`.
    #[test]
    fn penalty_gradient_matches_finite_differences() {
        let mut rng = SplitMix64::new(8);
        let dims = [2, 4, 5];
        let mask: Vec<f32> = (0..40).map(|_| 0.1 + 0.8 * rng.uniform() as f32).collect();
        let penalty = MaskPenalty {
            l1: 0.3,
            tv: 0.7,
            tv_beta: 3.0,
        };
        let grad = mask_gradient(&mask, dims, &vec![0.0; 2 * 8 * 10], [8, 10], &penalty);
        for i in 0..mask.len() {
            let at = |delta: f32| {
                let mut moved = mask.clone();
                moved[i] += delta;
                mask_penalty(&moved, dims, &penalty)
            };
            let numeric = (at(1e-3) - at(-1e-3)) / 2e-3;
            assert!(
                (numeric - f64::from(grad[i])).abs() < 1e-3,
                "{i}: {numeric} vs {}",
                grad[i]
            );
        }
    }

    /// The separable blur equals the 2-D sum of the outer-product taps over replicated
    /// borders, plane by plane.
    #[test]
    fn separable_blur_matches_the_direct_sum() {
        let ([h, w], sigma) = ([5, 7], 0.8f32);
        let values: Vec<f32> = (0..2 * h * w)
            .map(|i| ((i * 37) % 11) as f32 - 4.0)
            .collect();
        let taps = gaussian_taps(sigma);
        let radius = (taps.len() / 2) as isize;
        let clamp = |v: isize, len: usize| v.clamp(0, len as isize - 1) as usize;
        let blurred = gaussian_blur(&values, [h, w], sigma);
        for p in 0..2 {
            for y in 0..h {
                for x in 0..w {
                    let mut expected = 0.0;
                    for (ky, wy) in (-radius..=radius).zip(&taps) {
                        for (kx, wx) in (-radius..=radius).zip(&taps) {
                            let (sy, sx) = (clamp(y as isize + ky, h), clamp(x as isize + kx, w));
                            expected += wy * wx * values[(p * h + sy) * w + sx];
                        }
                    }
                    let got = blurred[(p * h + y) * w + x];
                    assert!(
                        (got - expected).abs() < 1e-5,
                        "({p}, {y}, {x}): {got} vs {expected}"
                    );
                }
            }
        }
    }
}
