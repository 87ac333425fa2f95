//! Reference for shaders/conv2d.wgsl: PyTorch's conv2d as plain loops. The backward passes
//! scatter from each output (the obvious formulation), unlike the shader's gathers.

use super::Real;
use crate::kernels::conv2d::ConvShapes;

/// Calls `f(n, co, oh, ow, ci_all, ci, kh, kw, ih, iw)` for every tap that reads the input
/// (padding taps skipped).
fn for_each_tap(s: &ConvShapes, mut f: impl FnMut([usize; 10])) {
    let conv = &s.conv;
    let [n_count, _, h, w] = s.input;
    let [c_out, group_in, kh_count, kw_count] = s.weight;
    let [_, _, out_h, out_w] = s.output;
    let group_out = c_out / conv.groups;
    for n in 0..n_count {
        for co in 0..c_out {
            let group = co / group_out;
            for oh in 0..out_h {
                for ow in 0..out_w {
                    for ci in 0..group_in {
                        for kh in 0..kh_count {
                            let ih = (oh * conv.stride[0] + kh * conv.dilation[0]) as isize
                                - conv.padding[0] as isize;
                            if ih < 0 || ih >= h as isize {
                                continue;
                            }
                            for kw in 0..kw_count {
                                let iw = (ow * conv.stride[1] + kw * conv.dilation[1]) as isize
                                    - conv.padding[1] as isize;
                                if iw < 0 || iw >= w as isize {
                                    continue;
                                }
                                let ci_all = group * group_in + ci;
                                f([n, co, oh, ow, ci_all, ci, kh, kw, ih as usize, iw as usize]);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn index4(dims: [usize; 4], i: [usize; 4]) -> usize {
    ((i[0] * dims[1] + i[1]) * dims[2] + i[2]) * dims[3] + i[3]
}

pub fn conv2d<T: Real>(x: &[T], weight: &[T], bias: Option<&[T]>, s: &ConvShapes) -> Vec<T> {
    let mut out = vec![T::zero(); s.output.iter().product()];
    for_each_tap(s, |[n, co, oh, ow, ci_all, ci, kh, kw, ih, iw]| {
        out[index4(s.output, [n, co, oh, ow])] +=
            x[index4(s.input, [n, ci_all, ih, iw])] * weight[index4(s.weight, [co, ci, kh, kw])];
    });
    if let Some(bias) = bias {
        let plane = s.output[2] * s.output[3];
        for (i, value) in out.iter_mut().enumerate() {
            *value += bias[(i / plane) % s.output[1]];
        }
    }
    out
}

pub fn conv2d_backward_input<T: Real>(weight: &[T], grad_out: &[T], s: &ConvShapes) -> Vec<T> {
    let mut grad_x = vec![T::zero(); s.input.iter().product()];
    for_each_tap(s, |[n, co, oh, ow, ci_all, ci, kh, kw, ih, iw]| {
        grad_x[index4(s.input, [n, ci_all, ih, iw])] += grad_out[index4(s.output, [n, co, oh, ow])]
            * weight[index4(s.weight, [co, ci, kh, kw])];
    });
    grad_x
}

pub fn conv2d_backward_weight<T: Real>(x: &[T], grad_out: &[T], s: &ConvShapes) -> Vec<T> {
    let mut grad_w = vec![T::zero(); s.weight.iter().product()];
    for_each_tap(s, |[n, co, oh, ow, ci_all, ci, kh, kw, ih, iw]| {
        grad_w[index4(s.weight, [co, ci, kh, kw])] +=
            grad_out[index4(s.output, [n, co, oh, ow])] * x[index4(s.input, [n, ci_all, ih, iw])];
    });
    grad_w
}
