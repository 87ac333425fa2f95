//! Launcher for shaders/occlusion.wgsl: copies of one image with one window each set to a
//! baseline value, the batched inputs of occlusion saliency (`saliency::occlusion`).

use super::{Launch, as_u32};
use crate::error::{Error, Result};
use crate::shaders::{Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;

uniform_params! {
    struct Params {
        channels: u32,
        height: u32,
        width: u32,
        image: u32,
        window_size: u32,
        stride: u32,
        windows_per_row: u32,
        first_window: u32,
        count: u32,
        baseline: f32,
    }
}

entries! {
    entries for Shader::Occlusion, Params;
    bindings { x: read 1, out: read_write 2 }
    OCCLUDE = "occlude", WorkgroupSize::Override(256), [x, out];
}

/// Square windows of `patch` pixels every `stride` pixels from the top left, in rows and
/// columns, the last of each cut off at the image's edge (as Captum's Occlusion places them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    pub patch: usize,
    pub stride: usize,
    pub rows: usize,
    pub columns: usize,
}

impl Windows {
    /// The windows over an image of `height` × `width`: ⌈(size − patch) / stride⌉ + 1 per
    /// axis. The patch must fit the image, and the stride be at least 1 and at most the patch
    /// (so that every pixel lies under some window).
    pub fn over(height: usize, width: usize, patch: usize, stride: usize) -> Result<Self> {
        const OP: &str = "occlusion";
        if patch == 0 || patch > height || patch > width {
            return Err(Error::invalid(
                OP,
                format!("a {patch}-pixel patch does not fit a {height}×{width} image"),
            ));
        }
        if stride == 0 || stride > patch {
            return Err(Error::invalid(
                OP,
                format!(
                    "the stride must be 1 to the patch size ({patch}), got {stride}: a longer \
                     one leaves pixels under no window"
                ),
            ));
        }
        let count = |size: usize| (size - patch).div_ceil(stride) + 1;
        Ok(Self {
            patch,
            stride,
            rows: count(height),
            columns: count(width),
        })
    }

    pub fn count(&self) -> usize {
        self.rows * self.columns
    }

    /// Window `index`'s top-left corner, (row, column).
    pub fn origin(&self, index: usize) -> (usize, usize) {
        (
            (index / self.columns) * self.stride,
            (index % self.columns) * self.stride,
        )
    }
}

/// `count` copies of image `image` of `x` [N, C, H, W], copy b with window `first + b` of
/// `windows` set to `baseline` in every channel: [count, C, H, W].
pub fn occluded_copies(
    x: &Tensor,
    image: usize,
    windows: &Windows,
    first: usize,
    count: usize,
    baseline: f32,
) -> Result<Tensor> {
    const OP: &str = "occlusion";
    let &[n, channels, height, width] = x.dims() else {
        return Err(Error::invalid(
            OP,
            format!("needs images [N, C, H, W], got {:?}", x.dims()),
        ));
    };
    if image >= n || first + count > windows.count() {
        return Err(Error::invalid(
            OP,
            format!(
                "image {image} of {n}, windows {first}..{} of {}",
                first + count,
                windows.count()
            ),
        ));
    }
    let expected = Windows::over(height, width, windows.patch, windows.stride)?;
    if expected != *windows {
        return Err(Error::invalid(
            OP,
            format!("windows {windows:?} do not belong to a {height}×{width} image"),
        ));
    }
    let u = |what: &str, value: usize| as_u32(OP, what, value);
    let params = Params {
        channels: u("channels", channels)?,
        height: u("height", height)?,
        width: u("width", width)?,
        image: u("image", image)?,
        window_size: u("patch", windows.patch)?,
        stride: u("stride", windows.stride)?,
        windows_per_row: u("windows per row", windows.columns)?,
        first_window: u("first window", first)?,
        count: u("count", count)?,
        baseline,
    };
    let out = Tensor::empty(x.gpu(), [count, channels, height, width])?;
    let elements = as_u32(OP, "output elements", out.numel())?;
    Launch::new(x.gpu(), &OCCLUDE, params)
        .bind(1, x)
        .bind(2, &out)
        .over(u64::from(elements))?;
    Ok(out)
}
