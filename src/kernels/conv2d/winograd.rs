//! Launcher for shaders/winograd.wgsl: 3×3 stride-1 convolutions as Winograd F(2×2, 3×3) or
//! F(4×4, 3×3).
//!
//! Each 2×2 block of outputs comes from a 4×4 input patch: transformed, the convolution becomes
//! 16 independent products [K, C] · [C, tiles] — one batched GEMM doing 16·K·C multiply-adds
//! per 4 outputs where im2col's GEMM does 36·K·C, 2.25× fewer — between an input transform and
//! an output transform that are each one pass over memory. F(4×4, 3×3) takes 4×4 blocks from
//! 6×6 patches: 36 products doing 36·K·C multiply-adds per 16 outputs, 4× fewer than im2col's,
//! where the output has enough 4×4 tiles to fill the products' columns. The backward to the
//! input is the same convolution of the output gradient with the weights rotated and
//! transposed (the weight transform's `flip`); the weight gradient is 16 (36) products
//! [K, tiles] · [tiles, C] between the transposed passes (`backward_weight`). Profiles count
//! the convolution's FLOPs, so GFLOP/s are effective ones.

use super::{Backward, ConvShapes, Forward};
use crate::error::{Error, Result};
use crate::kernels::Launch;
use crate::kernels::batchnorm::Epilogue;
use crate::kernels::matmul::{MatmulOptions, matmul_counted};
use crate::shaders::{Entry, Shader, WorkgroupSize, entries, uniform_params};
use crate::tensor::Tensor;

/// Winograd's output tile: F(2×2, 3×3) or F(4×4, 3×3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WinogradTile {
    F2,
    F4,
}

impl WinogradTile {
    /// Outputs per tile side.
    fn side(self) -> usize {
        match self {
            WinogradTile::F2 => 2,
            WinogradTile::F4 => 4,
        }
    }

    /// Values per transformed tile, (side + 2)²: the batched products' count.
    fn points(self) -> usize {
        (self.side() + 2).pow(2)
    }

    /// The shader's passes for this tile.
    fn entries(self) -> Entries {
        match self {
            WinogradTile::F2 => Entries {
                weight: &WEIGHT_TRANSFORM,
                input: &INPUT_TRANSFORM,
                output: &OUTPUT_TRANSFORM,
                output_gradient: &OUTPUT_GRADIENT_TRANSFORM,
                weight_gradient: &WEIGHT_GRADIENT_TRANSFORM,
            },
            WinogradTile::F4 => Entries {
                weight: &WEIGHT_TRANSFORM_F4,
                input: &INPUT_TRANSFORM_F4,
                output: &OUTPUT_TRANSFORM_F4,
                output_gradient: &OUTPUT_GRADIENT_TRANSFORM_F4,
                weight_gradient: &WEIGHT_GRADIENT_TRANSFORM_F4,
            },
        }
    }
}

/// One tile's transform passes: the forward's (filters, input patches, products back to
/// outputs) and the weight gradient's (output gradient in, filter gradients back to 3×3).
struct Entries {
    weight: &'static Entry<Params>,
    input: &'static Entry<Params>,
    output: &'static Entry<Params>,
    output_gradient: &'static Entry<Params>,
    weight_gradient: &'static Entry<Params>,
}

uniform_params! {
    struct Params {
        batch: u32,
        channels: u32,
        out_channels: u32,
        height: u32,
        width: u32,
        out_height: u32,
        out_width: u32,
        padding_h: u32,
        padding_w: u32,
        tiles_h: u32,
        tiles_w: u32,
        tile_stride: u32,
        has_bias: u32,
        flip: u32,
        /// The output's first channel and channel count (a slice of a concatenation).
        out_first: u32,
        out_total: u32,
        /// The output transforms' epilogue (`Finish::Epilogue`).
        affine: u32,
        add_residual: u32,
        relu: u32,
    }
}

// Each pass reads `source` (1) and writes `out` (2), one invocation per work item; the
// output transforms add the bias (3) or apply an epilogue (its affine at 3, residual at 4).
const PER_ITEM: WorkgroupSize = WorkgroupSize::Override(256);

entries! {
    entries for Shader::Winograd, Params;
    bindings { source: read 1, out: read_write 2, bias: read 3, residual: read 4 }
    WEIGHT_TRANSFORM = "weight_transform", PER_ITEM, [source, out];
    INPUT_TRANSFORM = "input_transform", PER_ITEM, [source, out];
    OUTPUT_TRANSFORM = "output_transform", PER_ITEM, [source, out, bias, residual];
    OUTPUT_GRADIENT_TRANSFORM = "output_gradient_transform", PER_ITEM, [source, out];
    WEIGHT_GRADIENT_TRANSFORM = "weight_gradient_transform", PER_ITEM, [source, out];
    WEIGHT_TRANSFORM_F4 = "weight_transform_f4", PER_ITEM, [source, out];
    INPUT_TRANSFORM_F4 = "input_transform_f4", PER_ITEM, [source, out];
    OUTPUT_TRANSFORM_F4 = "output_transform_f4", PER_ITEM, [source, out, bias, residual];
    OUTPUT_GRADIENT_TRANSFORM_F4 = "output_gradient_transform_f4", PER_ITEM, [source, out];
    WEIGHT_GRADIENT_TRANSFORM_F4 = "weight_gradient_transform_f4", PER_ITEM, [source, out];
}

/// Whether Winograd computes this convolution's forward and backward passes: a 3×3
/// kernel at stride 1 without dilation or groups, padding at most 2, channel counts that are
/// multiples of 4 (the GEMM's vec4 and subgroup kernels), and transformed tensors and weights
/// within one storage binding.
pub(crate) fn applies(shapes: &ConvShapes, max_binding_bytes: u64) -> bool {
    let conv = &shapes.conv;
    let [n, c_in, _, _] = shapes.input;
    let [c_out, _, kh, kw] = shapes.weight;
    let geometry = (kh, kw) == (3, 3)
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && conv.padding.iter().all(|&p| p <= 2);
    let channels = c_in.max(c_out);
    // The largest transformed operand of either pass (input or output-gradient side) and
    // either tile: F(4×4)'s are the smaller but for planes of at most 2 rows or columns.
    let (height, width) = (
        shapes.input[2].max(shapes.output[2]),
        shapes.input[3].max(shapes.output[3]),
    );
    let transformed_bytes = [WinogradTile::F2, WinogradTile::F4]
        .map(|tile| {
            let side = tile.side();
            let tiles = n * height.div_ceil(side) * width.div_ceil(side);
            // In u64: usize is 32 bits in the browser build.
            tile.points() as u64 * channels as u64 * tiles.next_multiple_of(4) as u64 * 4
        })
        .into_iter()
        .max()
        .unwrap_or(0);
    // F(4×4)'s filters, the larger: 36 values per 3×3.
    let weight_bytes = 36 * (c_in * c_out) as u64 * 4;
    let non_empty = shapes.input.iter().chain(&shapes.output).all(|&d| d > 0);
    geometry
        && non_empty
        && c_in % 4 == 0
        && c_out % 4 == 0
        && transformed_bytes.max(weight_bytes) <= max_binding_bytes
}

/// The convolution's output [N, C_out, OH, OW] (plus `bias` per channel).
pub(crate) fn forward(pass: &Forward, tile: WinogradTile) -> Result<Tensor> {
    let out = Tensor::empty(pass.x.gpu(), pass.shapes.output)?;
    forward_into(pass, tile, &out, 0)?;
    Ok(out)
}

/// The convolution's output stored by the output transform as
/// relu?(value · affine[0, k] + affine[1, k] + residual?): `affine` [2, K] what follows the
/// convolution per channel, folded (`ChannelAffine`), the pass's bias among its shifts; `then`
/// what follows that.
pub(crate) fn forward_then(
    pass: &Forward,
    tile: WinogradTile,
    affine: &Tensor,
    then: Epilogue,
) -> Result<Tensor> {
    let out = Tensor::empty(pass.x.gpu(), pass.shapes.output)?;
    write(pass, tile, Finish::Epilogue { affine, then }, &out, 0)?;
    Ok(out)
}

/// `forward` written into channels `first ..` of `dest` [N, C_total, OH, OW] (`conv2d_into`:
/// DenseNet's layers fill their slice of the block's buffer).
pub(crate) fn forward_into(
    pass: &Forward,
    tile: WinogradTile,
    dest: &Tensor,
    first: usize,
) -> Result<()> {
    let finish = pass.bias.map_or(Finish::Plain, Finish::Bias);
    write(pass, tile, finish, dest, first)
}

/// The forward pass, each value finished by `finish`, into channels `first ..` of `dest`.
fn write(
    pass: &Forward,
    tile: WinogradTile,
    finish: Finish,
    dest: &Tensor,
    first: usize,
) -> Result<()> {
    let shapes = &pass.shapes;
    let transformed = Transformed {
        tile,
        channels: shapes.input[1],
        out_channels: shapes.weight[0],
        padding: shapes.conv.padding,
        flip: false,
    };
    transformed.run(pass.x, pass.weight, finish, dest, first)
}

/// The gradient with respect to the input [N, C_in, H, W]: the output gradient convolved with
/// the rotated, transposed weights, padded by 2 − padding.
pub(crate) fn backward_input(pass: &Backward, tile: WinogradTile) -> Result<Tensor> {
    let (weight, grad_out, shapes) = (pass.weight, pass.grad_out, &pass.shapes);
    let conv = &shapes.conv;
    let [_, c_in, _, _] = shapes.input;
    let [c_out, ..] = shapes.weight;
    let transformed = Transformed {
        tile,
        channels: c_out,
        out_channels: c_in,
        padding: conv.padding.map(|p| 2 - p),
        flip: true,
    };
    let grad_x = Tensor::empty(grad_out.gpu(), shapes.input)?;
    transformed.run(grad_out, weight, Finish::Plain, &grad_x, 0)?;
    Ok(grad_x)
}

/// The gradient with respect to the weight [K, C, 3, 3], in the Winograd domain: with V the
/// input's transformed patches (as the forward computes them) and dM the output gradient's
/// tiles taken back through the output transform, dU[ξ] = dM[ξ] · V[ξ]ᵀ sums over every tile
/// of every sample in 16 (F(4×4): 36) products, and the filter transform taken back gives the
/// 3×3 gradients. No im2row buffer (9× the input), and 2.25× (4×) fewer multiply-adds than its
/// GEMM.
pub(crate) fn backward_weight(pass: &Backward, tile: WinogradTile) -> Result<Tensor> {
    let (x, grad_out, shapes) = (pass.x, pass.grad_out, &pass.shapes);
    let conv = &shapes.conv;
    let gpu = x.gpu();
    let [_, c, _, _] = shapes.input;
    let [k, ..] = shapes.weight;
    let transformed = Transformed {
        tile,
        channels: c,
        out_channels: k,
        padding: conv.padding,
        flip: false,
    };
    let (params, tile_stride, flops) = transformed.params(x, grad_out, Finish::Plain, 0)?;
    let entries = tile.entries();
    let patches = transformed.patches(&params, x, tile_stride)?;
    let tile_gradients = Tensor::empty(gpu, [tile.points(), k, tile_stride])?;
    launch(
        entries.output_gradient,
        &params,
        &[(1, grad_out)],
        &tile_gradients,
        k * tile_stride,
    )?;
    let transposed_b = MatmulOptions {
        transpose_b: true,
        ..MatmulOptions::default()
    };
    let filter_gradients = matmul_counted(&tile_gradients, &patches, transposed_b, Some(flops))?;
    let grad_weight = Tensor::empty(gpu, shapes.weight)?;
    launch(
        entries.weight_gradient,
        &params,
        &[(1, &filter_gradients)],
        &grad_weight,
        k * c,
    )?;
    Ok(grad_weight)
}

/// What the output transform does to each value besides storing it.
#[derive(Clone, Copy)]
enum Finish<'a> {
    Plain,
    /// Adds the bias [K].
    Bias(&'a Tensor),
    /// Applies the folded BatchNorm's scales and shifts `affine` [2, K], then `then` (an
    /// output of its own: no channel slice).
    Epilogue {
        affine: &'a Tensor,
        then: Epilogue<'a>,
    },
}

/// One Winograd convolution of `channels` inputs into `out_channels` outputs, written into
/// channels `first ..` of `out` [N, C_total, OH, OW].
struct Transformed {
    tile: WinogradTile,
    channels: usize,
    out_channels: usize,
    padding: [usize; 2],
    flip: bool,
}

impl Transformed {
    fn run(
        &self,
        source: &Tensor,
        weight: &Tensor,
        finish: Finish,
        out: &Tensor,
        first: usize,
    ) -> Result<()> {
        let gpu = source.gpu();
        let (params, tile_stride, flops) = self.params(source, out, finish, first)?;
        let (c, k) = (self.channels, self.out_channels);
        let tiles = (params.batch * params.tiles_h * params.tiles_w) as usize;
        let points = self.tile.points();
        let entries = self.tile.entries();

        // The filters in the Winograd domain depend on the weights alone: computed once and
        // kept with the weight tensor until the weights are written.
        let what = match (self.tile, self.flip) {
            (WinogradTile::F2, false) => "F(2×2, 3×3) filters",
            (WinogradTile::F2, true) => "F(2×2, 3×3) filters, rotated and transposed",
            (WinogradTile::F4, false) => "F(4×4, 3×3) filters",
            (WinogradTile::F4, true) => "F(4×4, 3×3) filters, rotated and transposed",
        };
        let weights = weight.derived(what, |weight| {
            let weights = Tensor::empty(gpu, [points, k, c])?;
            launch(entries.weight, &params, &[(1, weight)], &weights, k * c)?;
            Ok(weights)
        })?;
        let patches = self.patches(&params, source, tile_stride)?;
        let products = matmul_counted(&weights, &patches, MatmulOptions::default(), Some(flops))?;
        // What the kernel does not read is bound all the same: the products stand in.
        let (bias, residual) = match finish {
            Finish::Plain => (&products, None),
            Finish::Bias(bias) => (bias, None),
            Finish::Epilogue { affine, then } => (affine, then.residual),
        };
        launch(
            entries.output,
            &params,
            &[
                (1, &products),
                (3, bias),
                (4, residual.unwrap_or(&products)),
            ],
            out,
            k * tiles,
        )
    }

    /// The input transform of `source`: V [points, C, tile_stride].
    fn patches(&self, params: &Params, source: &Tensor, tile_stride: usize) -> Result<Tensor> {
        let c = self.channels;
        let patches = Tensor::empty(source.gpu(), [self.tile.points(), c, tile_stride])?;
        let input = self.tile.entries().input;
        launch(input, params, &[(1, source)], &patches, c * tile_stride)?;
        Ok(patches)
    }

    /// The shaders' parameters for `source` convolved into `out` [N, C_total, OH, OW] (from
    /// channel `first`), the tile stride, and the convolution's FLOPs (multiply-adds ×2, which
    /// the profile charges to the GEMM).
    fn params(
        &self,
        source: &Tensor,
        out: &Tensor,
        finish: Finish,
        first: usize,
    ) -> Result<(Params, usize, u64)> {
        const OP: &str = "conv2d_winograd";
        let (&[n, _, height, width], &[_, out_total, out_height, out_width]) =
            (source.dims(), out.dims())
        else {
            return Err(Error::invalid(OP, "input and output must be [N, C, H, W]"));
        };
        let side = self.tile.side();
        let (tiles_h, tiles_w) = (out_height.div_ceil(side), out_width.div_ceil(side));
        let tile_stride = (n * tiles_h * tiles_w).next_multiple_of(4);
        let (c, k) = (self.channels, self.out_channels);
        let flops = 2 * (n * k * out_height * out_width * c * 9) as u64;
        let u32_of = |what, value| super::as_u32(OP, what, value);
        let params = Params {
            batch: u32_of("N", n)?,
            channels: u32_of("C", c)?,
            out_channels: u32_of("K", k)?,
            height: u32_of("H", height)?,
            width: u32_of("W", width)?,
            out_height: u32_of("OH", out_height)?,
            out_width: u32_of("OW", out_width)?,
            padding_h: u32_of("padding", self.padding[0])?,
            padding_w: u32_of("padding", self.padding[1])?,
            tiles_h: u32_of("tiles", tiles_h)?,
            tiles_w: u32_of("tiles", tiles_w)?,
            tile_stride: u32_of("tiles", tile_stride)?,
            has_bias: u32::from(matches!(finish, Finish::Bias(_))),
            flip: u32::from(self.flip),
            out_first: u32_of("first channel", first)?,
            out_total: u32_of("channels", out_total)?,
            affine: 0,
            add_residual: 0,
            relu: 0,
        };
        let params = match finish {
            Finish::Epilogue { then, .. } => Params {
                affine: 1,
                add_residual: u32::from(then.residual.is_some()),
                relu: u32::from(then.relu),
                ..params
            },
            Finish::Plain | Finish::Bias(_) => params,
        };
        Ok((params, tile_stride, flops))
    }
}

/// Records `entry` with one invocation per work item.
fn launch(
    entry: &'static Entry<Params>,
    params: &Params,
    inputs: &[(u32, &Tensor)],
    out: &Tensor,
    items: usize,
) -> Result<()> {
    let mut launch = Launch::new(out.gpu(), entry, *params).bind(2, out);
    for &(slot, tensor) in inputs {
        launch = launch.bind(slot, tensor);
    }
    launch.over(items as u64)
}
