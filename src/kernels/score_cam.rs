//! Launcher for shaders/score_cam.wgsl: copies of one image masked by a layer's activation
//! maps, upsampled and scaled to [0, 1], the batched inputs of Score-CAM
//! (`saliency::score_cam`).

use super::{Launch, as_u32, grid_1d};
use crate::error::{Error, Result};
use crate::shaders::{Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;

uniform_params! {
    struct Params {
        channels: u32,
        height: u32,
        width: u32,
        image: u32,
        maps: u32,
        map_height: u32,
        map_width: u32,
        first_map: u32,
        count: u32,
    }
}

entries! {
    entries for Shader::ScoreCam, Params;
    bindings { x: read 1, activations: read 2, range_out: read_write 3, range_in: read 4,
        out: read_write 5 }
    UPSAMPLED_RANGE = "upsampled_range", WorkgroupSize::Override(256), [activations, range_out];
    MASKED_COPIES = "masked_copies", WorkgroupSize::Override(256), [x, activations, range_in, out];
}

/// `count` copies of image `image` of `x` [N, C, H, W], copy b multiplied in every channel by
/// activation map `first + b` of `activations` [N, K, h, w] of the same image, upsampled to
/// H × W (bilinear, align_corners = true) and scaled to [0, 1] over its upsampled values:
/// [count, C, H, W], as pytorch-grad-cam's ScoreCAM makes its inputs.
pub fn masked_copies(
    x: &Tensor,
    activations: &Tensor,
    image: usize,
    first: usize,
    count: usize,
) -> Result<Tensor> {
    const OP: &str = "score_cam";
    let (&[n, channels, height, width], &[an, maps, map_height, map_width]) =
        (x.dims(), activations.dims())
    else {
        return Err(Error::invalid(
            OP,
            format!(
                "needs images [N, C, H, W] and activations [N, K, h, w], got {:?} and {:?}",
                x.dims(),
                activations.dims()
            ),
        ));
    };
    if an != n || image >= n || first + count > maps || map_height == 0 || map_width == 0 {
        return Err(Error::invalid(
            OP,
            format!(
                "image {image} of {n} with activations of {an} images, maps {first}..{} of {maps}",
                first + count
            ),
        ));
    }
    let u = |what: &str, value: usize| as_u32(OP, what, value);
    let params = Params {
        channels: u("channels", channels)?,
        height: u("height", height)?,
        width: u("width", width)?,
        image: u("image", image)?,
        maps: u("maps", maps)?,
        map_height: u("map height", map_height)?,
        map_width: u("map width", map_width)?,
        first_map: u("first map", first)?,
        count: u("count", count)?,
    };
    let gpu = x.gpu();
    let range = Tensor::empty(gpu, [count, 2])?;
    Launch::new(gpu, &UPSAMPLED_RANGE, params)
        .bind(2, activations)
        .bind(3, &range)
        .on(grid_1d(gpu, count as u64))?;
    let out = Tensor::empty(gpu, [count, channels, height, width])?;
    let elements = as_u32(OP, "output elements", out.numel())?;
    Launch::new(gpu, &MASKED_COPIES, params)
        .bind(1, x)
        .bind(2, activations)
        .bind(4, &range)
        .bind(5, &out)
        .over(u64::from(elements))?;
    Ok(out)
}
