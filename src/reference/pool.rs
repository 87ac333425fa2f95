//! References for shaders/pool.wgsl, written as PyTorch's CPU loops: forward over the outputs,
//! backward scattering each output's gradient into its window. Generic over f32 (to compare
//! with the GPU) and f64 (for finite-difference gradient checks).

use super::Real;
use crate::kernels::pool::Pool2d;

/// Input geometry: (planes = N·C, height, width).
#[derive(Clone, Copy, Debug)]
pub struct Planes {
    pub planes: usize,
    pub height: usize,
    pub width: usize,
}

/// The clipped window of output (oh, ow) and PyTorch's average divisor for it.
fn window(pool: &Pool2d, p: Planes, oh: usize, ow: usize, include_pad: bool) -> [usize; 5] {
    let h0 = (oh * pool.stride[0]) as isize - pool.padding[0] as isize;
    let w0 = (ow * pool.stride[1]) as isize - pool.padding[1] as isize;
    let h_end_padded = (h0 + pool.kernel[0] as isize).min((p.height + pool.padding[0]) as isize);
    let w_end_padded = (w0 + pool.kernel[1] as isize).min((p.width + pool.padding[1]) as isize);
    let padded = ((h_end_padded - h0) * (w_end_padded - w0)) as usize;
    let (hs, ws) = (h0.max(0) as usize, w0.max(0) as usize);
    let he = (h_end_padded as usize).min(p.height);
    let we = (w_end_padded as usize).min(p.width);
    let divisor = if include_pad {
        padded
    } else {
        (he - hs) * (we - ws)
    };
    [hs, he, ws, we, divisor]
}

/// Every output's window in output order: its plane's first input index and
/// `window`'s [h_start, h_end, w_start, w_end, divisor].
fn windows(
    p: Planes,
    pool: &Pool2d,
    out: [usize; 2],
    include_pad: bool,
) -> impl Iterator<Item = (usize, [usize; 5])> + '_ {
    (0..p.planes).flat_map(move |plane| {
        let base = plane * p.height * p.width;
        (0..out[0]).flat_map(move |oh| {
            (0..out[1]).map(move |ow| (base, window(pool, p, oh, ow, include_pad)))
        })
    })
}

/// Max pooling; also returns, per output, the in-plane index of its maximum.
pub fn max_pool2d<T: Real>(
    x: &[T],
    p: Planes,
    pool: &Pool2d,
    out: [usize; 2],
) -> (Vec<T>, Vec<usize>) {
    let mut values = Vec::new();
    let mut argmax = Vec::new();
    for (base, [hs, he, ws, we, _]) in windows(p, pool, out, false) {
        let mut best_index = hs * p.width + ws;
        let mut best = x[base + best_index];
        for h in hs..he {
            for w in ws..we {
                let v = x[base + h * p.width + w];
                // PyTorch: `val > maxval || isnan(val)`; the first NaN already wins.
                if v > best || (v.is_nan() && !best.is_nan()) {
                    best = v;
                    best_index = h * p.width + w;
                }
            }
        }
        values.push(best);
        argmax.push(best_index);
    }
    (values, argmax)
}

pub fn max_pool2d_backward<T: Real>(
    x: &[T],
    grad_out: &[T],
    p: Planes,
    pool: &Pool2d,
    out: [usize; 2],
) -> Vec<T> {
    let (_, argmax) = max_pool2d(x, p, pool, out);
    let mut grad_in = vec![T::zero(); x.len()];
    let per_plane_out = out[0] * out[1];
    for (o, &index) in argmax.iter().enumerate() {
        let plane = o / per_plane_out;
        grad_in[plane * p.height * p.width + index] += grad_out[o];
    }
    grad_in
}

pub fn avg_pool2d<T: Real>(
    x: &[T],
    p: Planes,
    pool: &Pool2d,
    out: [usize; 2],
    include_pad: bool,
) -> Vec<T> {
    windows(p, pool, out, include_pad)
        .map(|(base, [hs, he, ws, we, divisor])| {
            let mut sum = T::zero();
            for h in hs..he {
                for w in ws..we {
                    sum += x[base + h * p.width + w];
                }
            }
            sum / T::from_f64(divisor as f64)
        })
        .collect()
}

pub fn avg_pool2d_backward<T: Real>(
    grad_out: &[T],
    p: Planes,
    pool: &Pool2d,
    out: [usize; 2],
    include_pad: bool,
) -> Vec<T> {
    let mut grad_in = vec![T::zero(); p.planes * p.height * p.width];
    for plane in 0..p.planes {
        let base = plane * p.height * p.width;
        for oh in 0..out[0] {
            for ow in 0..out[1] {
                let [hs, he, ws, we, divisor] = window(pool, p, oh, ow, include_pad);
                let g = grad_out[(plane * out[0] + oh) * out[1] + ow] / T::from_f64(divisor as f64);
                for h in hs..he {
                    for w in ws..we {
                        grad_in[base + h * p.width + w] += g;
                    }
                }
            }
        }
    }
    grad_in
}

/// PyTorch's adaptive window along one axis: [floor(o·in/out), ceil((o+1)·in/out)).
fn adaptive_range(o: usize, input: usize, output: usize) -> (usize, usize) {
    (o * input / output, ((o + 1) * input).div_ceil(output))
}

pub fn adaptive_avg_pool2d<T: Real>(x: &[T], p: Planes, out: [usize; 2]) -> Vec<T> {
    let mut values = Vec::new();
    for plane in 0..p.planes {
        let base = plane * p.height * p.width;
        for oh in 0..out[0] {
            let (hs, he) = adaptive_range(oh, p.height, out[0]);
            for ow in 0..out[1] {
                let (ws, we) = adaptive_range(ow, p.width, out[1]);
                let mut sum = T::zero();
                for h in hs..he {
                    for w in ws..we {
                        sum += x[base + h * p.width + w];
                    }
                }
                values.push(sum / T::from_f64(((he - hs) * (we - ws)) as f64));
            }
        }
    }
    values
}

pub fn adaptive_avg_pool2d_backward<T: Real>(grad_out: &[T], p: Planes, out: [usize; 2]) -> Vec<T> {
    let mut grad_in = vec![T::zero(); p.planes * p.height * p.width];
    for plane in 0..p.planes {
        let base = plane * p.height * p.width;
        for oh in 0..out[0] {
            let (hs, he) = adaptive_range(oh, p.height, out[0]);
            for ow in 0..out[1] {
                let (ws, we) = adaptive_range(ow, p.width, out[1]);
                let count = T::from_f64(((he - hs) * (we - ws)) as f64);
                let g = grad_out[(plane * out[0] + oh) * out[1] + ow] / count;
                for h in hs..he {
                    for w in ws..we {
                        grad_in[base + h * p.width + w] += g;
                    }
                }
            }
        }
    }
    grad_in
}
