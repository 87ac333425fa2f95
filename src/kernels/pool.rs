//! Launchers for shaders/pool.wgsl: max, average and adaptive average pooling, with backward.

use super::{Launch, as_u32, plane_grid};
use crate::error::{Error, Result};
use crate::shaders::{Entry, Kernel, Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::{Shape, Tensor};

/// The window geometry of MaxPool2d / AvgPool2d, per axis (height, width), as in PyTorch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    /// Round the output size up (GoogLeNet's pools); the last window must still start inside
    /// the input or its left padding.
    pub ceil_mode: bool,
}

impl Pool2d {
    /// A square window with stride equal to the kernel size, no padding (PyTorch's default).
    pub fn new(kernel: usize) -> Self {
        Self {
            kernel: [kernel, kernel],
            stride: [kernel, kernel],
            padding: [0, 0],
            ceil_mode: false,
        }
    }

    per_axis_setters!(stride, padding);

    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    /// The output (height, width) for an input of `input` = (height, width), or an error naming
    /// the offending values (PyTorch's pool2d_shape_check).
    pub fn output_size(&self, op: &'static str, input: [usize; 2]) -> Result<[usize; 2]> {
        let mut out = [0; 2];
        for axis in 0..2 {
            let (size, kernel, stride, pad) = (
                input[axis],
                self.kernel[axis],
                self.stride[axis],
                self.padding[axis],
            );
            if kernel == 0 || stride == 0 {
                return Err(Error::invalid(
                    op,
                    format!(
                        "kernel {:?} and stride {:?} must be positive",
                        self.kernel, self.stride
                    ),
                ));
            }
            if pad > kernel / 2 {
                return Err(Error::invalid(
                    op,
                    format!(
                        "padding {:?} must be at most half the kernel {:?}",
                        self.padding, self.kernel
                    ),
                ));
            }
            if size == 0 {
                return Err(Error::invalid(
                    op,
                    format!("input {input:?} has an empty side"),
                ));
            }
            // PyTorch's pooling_output_shape, in signed arithmetic: with ceil_mode a window may
            // overhang the padded input (it is clipped), as long as it starts inside the input
            // or its left padding.
            let (size, kernel, stride, pad) =
                (size as i128, kernel as i128, stride as i128, pad as i128);
            let overhang = if self.ceil_mode { stride - 1 } else { 0 };
            let mut length = (size + 2 * pad - kernel + overhang).div_euclid(stride) + 1;
            if self.ceil_mode && (length - 1) * stride >= size + pad {
                length -= 1;
            }
            if length < 1 {
                return Err(Error::invalid(
                    op,
                    format!(
                        "kernel {:?} is larger than the padded input {:?} (padding {:?}, ceil_mode \
                         {})",
                        self.kernel, input, self.padding, self.ceil_mode
                    ),
                ));
            }
            out[axis] = length as usize;
        }
        Ok(out)
    }
}

uniform_params! {
    struct Params {
        planes: u32, in_h: u32, in_w: u32, out_h: u32, out_w: u32, kernel_h: u32, kernel_w: u32,
        stride_h: u32, stride_w: u32, pad_h: u32, pad_w: u32, count_include_pad: u32,
        class_h: u32, class_w: u32, class_step_h: u32, class_step_w: u32,
    }
}

// Forward entries read x (1) and write out (3); backward entries read grad_out (2) and write
// the input's gradient to out (3). One invocation per output element, except the max-pool
// entries over 8×8 positions of a plane per workgroup (`plane_grid`).
entries! {
    entries for Shader::Pool, Params;
    bindings { x: read 1, grad_out: read 2, out: read_write 3, argmax_out: read_write 4,
        argmax: read 5 }
    MAX_POOL2D = "max_pool2d", WorkgroupSize::Override(256), [x, out];
    MAX_POOL2D_WITH_ARGMAX = "max_pool2d_with_argmax", WorkgroupSize::Literal([8, 8, 1]),
        [x, out, argmax_out];
    MAX_POOL2D_BACKWARD = "max_pool2d_backward", WorkgroupSize::Literal([8, 8, 1]),
        [grad_out, out, argmax];
    AVG_POOL2D = "avg_pool2d", WorkgroupSize::Override(256), [x, out];
    /// 8×8 input positions of a plane per workgroup (`plane_grid`), as max pooling's backward.
    AVG_POOL2D_BACKWARD = "avg_pool2d_backward", WorkgroupSize::Literal([8, 8, 1]),
        [grad_out, out];
    ADAPTIVE_AVG_POOL2D = "adaptive_avg_pool2d", WorkgroupSize::Override(256), [x, out];
    ADAPTIVE_AVG_POOL2D_BACKWARD = "adaptive_avg_pool2d_backward", WorkgroupSize::Override(256),
        [grad_out, out];
}

/// Max over each window; padding never wins.
pub fn max_pool2d(x: &Tensor, pool: &Pool2d) -> Result<Tensor> {
    forward(&MAX_POOL2D, x, Window::Fixed(*pool, false))
}

/// `max_pool2d`, and each window's maximum as its flat index in the plane (u32 values in a
/// tensor of the output's shape), which `max_pool2d_backward_at` takes instead of the input:
/// for a forward whose backward follows, one pass where the backward would look at every
/// window again.
pub fn max_pool2d_with_argmax(x: &Tensor, pool: &Pool2d) -> Result<(Tensor, Tensor)> {
    let (out_dims, params) = geometry(MAX_POOL2D_WITH_ARGMAX.name, x, Window::Fixed(*pool, false))?;
    let gpu = x.gpu();
    let out = Tensor::empty(gpu, out_dims)?;
    let argmax = Tensor::empty(gpu, out_dims)?;
    Launch::of(
        gpu,
        strided_kernel(&MAX_POOL2D_WITH_ARGMAX, &params),
        params,
    )
    .bind(1, x)
    .bind(3, &out)
    .bind(4, &argmax)
    .on(plane_grid(gpu, [params.out_w, params.out_h], params.planes))?;
    Ok((out, argmax))
}

/// The gradient of `max_pool2d` with respect to `x`: each output's gradient goes to the first
/// maximum of its window.
pub fn max_pool2d_backward(x: &Tensor, grad_out: &Tensor, pool: &Pool2d) -> Result<Tensor> {
    const OP: &str = "max_pool2d_backward";
    let (out_dims, params) = geometry(OP, x, Window::Fixed(*pool, false))?;
    expect_output_shape(OP, grad_out, out_dims)?;
    let (_, argmax) = max_pool2d_with_argmax(x, pool)?;
    add_at_maxima(&params, x.shape().clone(), &argmax, grad_out)
}

/// `max_pool2d_backward` from the maxima `max_pool2d_with_argmax` returned with the forward,
/// for an input of shape `input_dims`.
pub fn max_pool2d_backward_at(
    argmax: &Tensor,
    input_dims: &[usize],
    grad_out: &Tensor,
    pool: &Pool2d,
) -> Result<Tensor> {
    const OP: &str = "max_pool2d_backward";
    let &[n, c, h, w] = input_dims else {
        return Err(Error::invalid(
            OP,
            format!("needs an NCHW input of rank 4, got shape {input_dims:?}"),
        ));
    };
    let (out_dims, params) = geometry_of(OP, [n, c, h, w], Window::Fixed(*pool, false))?;
    expect_output_shape(OP, grad_out, out_dims)?;
    expect_output_shape(OP, argmax, out_dims)?;
    add_at_maxima(&params, input_dims.into(), argmax, grad_out)
}

/// Mean over each window; with `count_include_pad` the padding counts in the divisor.
pub fn avg_pool2d(x: &Tensor, pool: &Pool2d, count_include_pad: bool) -> Result<Tensor> {
    forward(&AVG_POOL2D, x, Window::Fixed(*pool, count_include_pad))
}

/// The gradient of `avg_pool2d` with respect to its input, `x` (only its shape is used).
pub fn avg_pool2d_backward(
    x: &Tensor,
    grad_out: &Tensor,
    pool: &Pool2d,
    count_include_pad: bool,
) -> Result<Tensor> {
    const OP: &str = "avg_pool2d_backward";
    let (out_dims, params) = geometry(OP, x, Window::Fixed(*pool, count_include_pad))?;
    expect_output_shape(OP, grad_out, out_dims)?;
    let gpu = x.gpu();
    let grad_in = Tensor::empty(gpu, x.shape().clone())?;
    Launch::of(gpu, strided_kernel(&AVG_POOL2D_BACKWARD, &params), params)
        .bind(2, grad_out)
        .bind(3, &grad_in)
        .on(plane_grid(gpu, [params.in_w, params.in_h], params.planes))?;
    Ok(grad_in)
}

/// Average pooling to a fixed output size (VGG's 7×7, the global 1×1 of the others).
pub fn adaptive_avg_pool2d(x: &Tensor, output: [usize; 2]) -> Result<Tensor> {
    forward(&ADAPTIVE_AVG_POOL2D, x, Window::Adaptive(output))
}

/// The gradient of `adaptive_avg_pool2d` with respect to `x` (only its shape is used).
pub fn adaptive_avg_pool2d_backward(x: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
    let output = match *grad_out.dims() {
        [_, _, h, w] => [h, w],
        _ => [0, 0], // refused by `geometry` with both shapes named
    };
    backward(
        &ADAPTIVE_AVG_POOL2D_BACKWARD,
        x,
        grad_out,
        Window::Adaptive(output),
    )
}

#[derive(Clone, Copy)]
enum Window {
    /// Kernel, stride, padding, ceil_mode; and count_include_pad for average pooling.
    Fixed(Pool2d, bool),
    /// The output size.
    Adaptive([usize; 2]),
}

/// (N, C, output H, output W) and the shader's parameters, after validating everything.
fn geometry(op: &'static str, x: &Tensor, window: Window) -> Result<([usize; 4], Params)> {
    let &[n, c, in_h, in_w] = x.dims() else {
        return Err(Error::invalid(
            op,
            format!("needs an NCHW input of rank 4, got shape {:?}", x.dims()),
        ));
    };
    geometry_of(op, [n, c, in_h, in_w], window)
}

/// `geometry` of an input of shape [N, C, H, W].
fn geometry_of(
    op: &'static str,
    [n, c, in_h, in_w]: [usize; 4],
    window: Window,
) -> Result<([usize; 4], Params)> {
    let (out, pool, count_include_pad) = match window {
        Window::Fixed(pool, count_include_pad) => {
            (pool.output_size(op, [in_h, in_w])?, pool, count_include_pad)
        }
        Window::Adaptive(out) => {
            if out.contains(&0) || (in_h == 0 || in_w == 0) {
                return Err(Error::invalid(
                    op,
                    format!(
                        "output size {out:?} and input {:?} must be non-empty",
                        [n, c, in_h, in_w]
                    ),
                ));
            }
            (out, Pool2d::new(1), false)
        }
    };
    let params = Params {
        planes: as_u32(op, "N·C", n * c)?,
        in_h: as_u32(op, "input height", in_h)?,
        in_w: as_u32(op, "input width", in_w)?,
        out_h: as_u32(op, "output height", out[0])?,
        out_w: as_u32(op, "output width", out[1])?,
        kernel_h: as_u32(op, "kernel", pool.kernel[0])?,
        kernel_w: as_u32(op, "kernel", pool.kernel[1])?,
        stride_h: as_u32(op, "stride", pool.stride[0])?,
        stride_w: as_u32(op, "stride", pool.stride[1])?,
        pad_h: as_u32(op, "padding", pool.padding[0])?,
        pad_w: as_u32(op, "padding", pool.padding[1])?,
        count_include_pad: u32::from(count_include_pad),
        class_h: 0,
        class_w: 0,
        class_step_h: 1,
        class_step_w: 1,
    };
    Ok(([n, c, out[0], out[1]], params))
}

fn forward(entry: &'static Entry<Params>, x: &Tensor, window: Window) -> Result<Tensor> {
    let (out_dims, params) = geometry(entry.name, x, window)?;
    let gpu = x.gpu();
    let out = Tensor::empty(gpu, out_dims)?;
    Launch::new(gpu, entry, params)
        .bind(1, x)
        .bind(3, &out)
        .over(out.numel() as u64)?;
    Ok(out)
}

fn expect_output_shape(op: &'static str, t: &Tensor, out_dims: [usize; 4]) -> Result<()> {
    if t.dims() != out_dims {
        return Err(Error::ShapeMismatch {
            op,
            left: out_dims.to_vec(),
            right: t.dims().to_vec(),
        });
    }
    Ok(())
}

/// The max-pooling backward: each window's gradient added to its maximum (in `argmax`), one
/// class of non-overlapping windows per dispatch, into a zeroed gradient.
fn add_at_maxima(
    params: &Params,
    input_shape: Shape,
    argmax: &Tensor,
    grad_out: &Tensor,
) -> Result<Tensor> {
    let gpu = grad_out.gpu();
    let grad_in = Tensor::zeros(gpu, input_shape)?;
    // Outputs `step` apart along an axis start stride · step ≥ kernel apart: their windows
    // are disjoint.
    let [step_h, step_w] = [
        params.kernel_h.div_ceil(params.stride_h),
        params.kernel_w.div_ceil(params.stride_w),
    ];
    let grid = [params.out_w.div_ceil(step_w), params.out_h.div_ceil(step_h)];
    for class_h in 0..step_h {
        for class_w in 0..step_w {
            let class = Params {
                class_h,
                class_w,
                class_step_h: step_h,
                class_step_w: step_w,
                ..*params
            };
            Launch::of(gpu, MAX_POOL2D_BACKWARD.kernel(), class)
                .bind(2, grad_out)
                .bind(3, &grad_in)
                .bind(5, argmax)
                .on(plane_grid(gpu, grid, params.planes))?;
        }
    }
    Ok(grad_in)
}

fn backward(
    entry: &'static Entry<Params>,
    x: &Tensor,
    grad_out: &Tensor,
    window: Window,
) -> Result<Tensor> {
    let (out_dims, params) = geometry(entry.name, x, window)?;
    expect_output_shape(entry.name, grad_out, out_dims)?;
    let gpu = x.gpu();
    let grad_in = Tensor::empty(gpu, x.shape().clone())?;
    Launch::new(gpu, entry, params)
        .bind(2, grad_out)
        .bind(3, &grad_in)
        .over(x.numel() as u64)?;
    Ok(grad_in)
}

/// An entry with the strides as pipeline constants (`POOL_STRIDE_H`, `_W`).
fn strided_kernel(entry: &'static Entry<Params>, params: &Params) -> Kernel<Params> {
    entry
        .kernel()
        .with_override("POOL_STRIDE_H", f64::from(params.stride_h))
        .with_override("POOL_STRIDE_W", f64::from(params.stride_w))
}

#[cfg(test)]
mod tests {
    use super::Pool2d;

    #[test]
    fn output_sizes_follow_pytorch() {
        // GoogLeNet's maxpool1: 3/2, ceil_mode, on 112 → 56.
        let pool = Pool2d::new(3).stride(2).ceil_mode(true);
        assert_eq!(pool.output_size("t", [112, 112]).unwrap(), [56, 56]);
        // Floor mode: 111.
        let floor = Pool2d::new(3).stride(2);
        assert_eq!(floor.output_size("t", [112, 112]).unwrap(), [55, 55]);
        // ResNet's maxpool: 3/2 pad 1 on 112 → 56.
        assert_eq!(
            Pool2d::new(3)
                .stride(2)
                .padding(1)
                .output_size("t", [112, 112])
                .unwrap(),
            [56, 56]
        );
        // ceil_mode's last-window rule: 5 with kernel 2 stride 2 → 3, but on 4 → 2.
        let pool = Pool2d::new(2).ceil_mode(true);
        assert_eq!(pool.output_size("t", [5, 4]).unwrap(), [3, 2]);
        // ... and with padding 1 on 4, kernel 2, stride 3: ceil(4/3)+1 = 3, window 2 starts
        // at 6-1 = 5 >= 4 + 1, so 2.
        let pool = Pool2d::new(2).stride(3).padding(1).ceil_mode(true);
        assert_eq!(pool.output_size("t", [4, 4]).unwrap(), [2, 2]);
    }

    #[test]
    fn bad_geometry_is_refused_with_the_values() {
        let error = Pool2d::new(3)
            .padding(2)
            .output_size("max_pool2d", [8, 8])
            .unwrap_err();
        assert!(error.to_string().contains("half the kernel"), "{error}");
        let error = Pool2d::new(5)
            .output_size("max_pool2d", [3, 8])
            .unwrap_err();
        assert!(
            error.to_string().contains("larger than the padded input"),
            "{error}"
        );
        assert!(Pool2d::new(2).stride(0).output_size("t", [4, 4]).is_err());
    }
}
