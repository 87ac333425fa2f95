//! Class activation maps and bilinear map upsampling on the host (shaders/cam.wgsl).

use crate::kernels::cam::Cam;

/// What `kernels::cam::class_activation_map` computes from `a` and `g` [N, K, h, w].
pub fn class_activation_map(a: &[f32], g: &[f32], [n, k, h, w]: [usize; 4], kind: Cam) -> Vec<f32> {
    let plane = h * w;
    let mut cam = vec![0.0f32; n * plane];
    for b in 0..n {
        let map = &mut cam[b * plane..(b + 1) * plane];
        for channel in 0..k {
            let base = (b * k + channel) * plane;
            let (a, g) = (&a[base..base + plane], &g[base..base + plane]);
            let weighted = |weight: f32, map: &mut [f32]| {
                for (value, a) in map.iter_mut().zip(a) {
                    *value += weight * a;
                }
            };
            match kind {
                Cam::GradCam => weighted(g.iter().sum::<f32>() / plane as f32, map),
                Cam::GradCamPlusPlus => {
                    let activation_sum: f32 = a.iter().sum();
                    let weight = g
                        .iter()
                        .filter(|&&g| g != 0.0)
                        .map(|&g| {
                            let (g2, g3) = (g * g, g * g * g);
                            g.max(0.0) * g2 / (2.0 * g2 + activation_sum * g3 + 1e-6)
                        })
                        .sum();
                    weighted(weight, map);
                }
                Cam::HiResCam | Cam::LayerCam => {
                    for ((value, a), g) in map.iter_mut().zip(a).zip(g) {
                        let g = if kind == Cam::LayerCam {
                            g.max(0.0)
                        } else {
                            *g
                        };
                        *value += g * a;
                    }
                }
            }
        }
    }
    cam.iter().map(|v| v.max(0.0)).collect()
}

/// What `kernels::cam::weighted_map` computes: ReLU(Σ_k weights[n, k] a[n, k]).
pub fn weighted_map(a: &[f32], weights: &[f32], [n, k, h, w]: [usize; 4]) -> Vec<f32> {
    let plane = h * w;
    let mut cam = vec![0.0f32; n * plane];
    for b in 0..n {
        for channel in 0..k {
            let weight = weights[b * k + channel];
            let base = (b * k + channel) * plane;
            for (value, a) in cam[b * plane..(b + 1) * plane]
                .iter_mut()
                .zip(&a[base..base + plane])
            {
                *value += weight * a;
            }
        }
    }
    cam.iter().map(|v| v.max(0.0)).collect()
}

/// Maps [n, h, w] resized to [n, height, width], bilinear at pixel centres (align_corners =
/// false): `kernels::cam::upsample_maps`, and meaningful perturbation's host-side mask.
pub fn upsample_bilinear(
    maps: &[f32],
    [n, h, w]: [usize; 3],
    [height, width]: [usize; 2],
) -> Vec<f32> {
    let mut out = vec![0.0f32; n * height * width];
    let (sy, sx) = (h as f64 / height as f64, w as f64 / width as f64);
    for b in 0..n {
        let map = &maps[b * h * w..(b + 1) * h * w];
        for y in 0..height {
            let (y0, y1, fy) = bilinear_source(y, sy, h);
            for x in 0..width {
                let (x0, x1, fx) = bilinear_source(x, sx, w);
                let top = map[y0 * w + x0] * (1.0 - fx) + map[y0 * w + x1] * fx;
                let bottom = map[y1 * w + x0] * (1.0 - fx) + map[y1 * w + x1] * fx;
                out[(b * height + y) * width + x] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
    out
}

/// For output index `o` of an axis resized by `scale` (input / output length) from `size`
/// inputs: the two input indices it interpolates between and the second one's weight, at
/// pixel centres (align_corners = false). Shared by the upsampling and its adjoint.
pub fn bilinear_source(o: usize, scale: f64, size: usize) -> (usize, usize, f32) {
    let s = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(size - 1);
    (i0, (i0 + 1).min(size - 1), (s - i0 as f64) as f32)
}

/// What `kernels::cam::scale_by_nearest` computes: `attribution` [n, c, height, width] times
/// `cam` [n, h, w] upsampled by nearest neighbour (source index ⌊o · in / out⌋).
pub fn scale_by_nearest(
    attribution: &[f32],
    [n, c, height, width]: [usize; 4],
    cam: &[f32],
    [h, w]: [usize; 2],
) -> Vec<f32> {
    let source = |o: usize, input: usize, output: usize| (o * input / output).min(input - 1);
    let mut out = attribution.to_vec();
    for b in 0..n {
        for y in 0..height {
            let row = source(y, h, height);
            for x in 0..width {
                let weight = cam[(b * h + row) * w + source(x, w, width)];
                for channel in 0..c {
                    out[((b * c + channel) * height + y) * width + x] *= weight;
                }
            }
        }
    }
    out
}
