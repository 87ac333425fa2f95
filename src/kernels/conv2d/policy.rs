//! Which algorithm computes each pass of a convolution: every decision `ConvAlgorithm::Auto`
//! makes, in one place, as a pure function of the convolution, the pass and what the adapter
//! offers, so that each decision has a unit test that needs no GPU.
//!
//! | decision | taken when | the measurement behind it |
//! | --- | --- | --- |
//! | Winograd over GEMM | ≥ [`MIN_TILES_PREFERRED`] 2×2 output tiles | on the constant |
//! | F(4×4) over F(2×2) | ≥ [`MIN_TILES_F4`] 4×4 tiles | on the constant |
//! | Winograd weight gradient | the subgroup GEMM runs (`Adapter`) | in `resolve` |
//! | GEMM over implicit GEMM | im2col ≤ [`IM2COL_MAX_BYTES`], no groups, vec4-aligned | below |
//!
//! On lavapipe the scalar fallback matmul lost to the implicit GEMM on ResNet-50's 7×7 stem
//! (forward 1.9 vs 3.5 GFLOP/s, weight gradient 1.9 vs 3.1) and its 7×7 planes (2.1–2.8 vs
//! 2.8–3.2): hence GEMM only where the vec4 kernels apply.

use super::gemm::{is_pointwise, position_stride};
use super::winograd::{self, WinogradTile};
use super::{ConvAlgorithm, ConvShapes};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::matmul::subgroup_kernel_available;

/// The largest im2col buffer the GEMM path materialises; larger inputs take the implicit GEMM.
/// 128 MiB (lavapipe's binding limit) admits VGG's 64-channel 3×3 convolutions at 224×224
/// (116 MB), 3.5× faster there as a GEMM than on the implicit GEMM, for a transient buffer.
pub(super) const IM2COL_MAX_BYTES: u64 = 128 << 20;

/// The fewest 2×2 output tiles for which `Auto` prefers Winograd to im2col + GEMM. Measured on
/// lavapipe (`cargo bench --bench kernels -- conv2d`, batch 1): 49 tiles (14×14 outputs, 256
/// channels) ran at 14.7 effective GFLOP/s against the GEMM's 8.9, but 16 tiles (7×7, 512
/// channels) at 4.4 against 10.6 — sixteen products with 16 columns each starve the GEMM.
pub(super) const MIN_TILES_PREFERRED: usize = 32;

/// The fewest 4×4 output tiles for which `Winograd` takes F(4×4, 3×3) rather than F(2×2): a
/// chosen value between the two counts measured on lavapipe (BENCHMARKS.md). The GEMM fills
/// its columns 64 at a time there, so a 14×14 output's 16 tiles of 4×4 cost a whole column
/// block in each of 36 products where its 49 tiles of 2×2 cost one in each of 16 (F(4×4)
/// 1.3–2.2× slower); 28×28 outputs, 49 tiles of 4×4, ran 1.1–2× faster on F(4×4).
pub(super) const MIN_TILES_F4: usize = 48;

/// The three passes of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pass {
    Forward,
    BackwardInput,
    BackwardWeight,
}

/// What runs a pass: the resolved algorithm, with its tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Plan {
    Direct,
    Gemm,
    ImplicitGemm,
    Winograd(WinogradTile),
}

/// What the choice depends on besides the convolution.
#[derive(Clone, Copy, Debug)]
pub(super) struct Adapter {
    /// The largest storage binding, in bytes.
    pub(super) max_binding_bytes: u64,
    /// Whether the 8-lane subgroup GEMM runs (lavapipe): it reads transposed operands at full
    /// speed, which the Winograd weight gradient's products need.
    pub(super) subgroup_gemm: bool,
}

impl Adapter {
    pub(super) fn of(gpu: &Gpu) -> Self {
        Self {
            max_binding_bytes: gpu.max_binding_bytes(),
            subgroup_gemm: subgroup_kernel_available(gpu),
        }
    }
}

/// The tile `ConvAlgorithm::Winograd` takes for a pass that tiles `tiled` [N, K, H, W] (the
/// output; the input for the backward to the input).
pub(super) fn winograd_tile([n, _, h, w]: [usize; 4]) -> WinogradTile {
    match n * h.div_ceil(4) * w.div_ceil(4) >= MIN_TILES_F4 {
        true => WinogradTile::F4,
        false => WinogradTile::F2,
    }
}

/// Whether `Auto` takes Winograd for this convolution's forward: it applies, and the output
/// has enough 2×2 tiles.
pub(super) fn winograd_preferred(shapes: &ConvShapes, adapter: Adapter) -> bool {
    let [n, _, oh, ow] = shapes.output;
    winograd::applies(shapes, adapter.max_binding_bytes)
        && n * oh.div_ceil(2) * ow.div_ceil(2) >= MIN_TILES_PREFERRED
}

/// How a convolution written into a channel slice runs (`conv2d_into`): Winograd where `Auto`
/// would take it, else the implicit GEMM, whose stores can target the slice (the GEMM path's
/// cannot).
pub(super) fn slice_plan(shapes: &ConvShapes, adapter: Adapter) -> Plan {
    match winograd_preferred(shapes, adapter) {
        true => Plan::Winograd(winograd_tile(shapes.output)),
        false => Plan::ImplicitGemm,
    }
}

/// The plan for `pass`, or an error when a demanded algorithm cannot run. `Auto` takes
/// Winograd where it is preferred (and, for the weight gradient, the subgroup GEMM runs);
/// else GEMM where it applies and its matmul's reduced and column dimensions are multiples of
/// 4 (the vec4 kernels' condition); else the implicit GEMM.
pub(super) fn resolve(
    op: &'static str,
    shapes: &ConvShapes,
    algorithm: ConvAlgorithm,
    adapter: Adapter,
    pass: Pass,
) -> Result<Plan> {
    let conv = &shapes.conv;
    let [n, c_out, oh, ow] = shapes.output;
    let [_, per_group, kh, kw] = shapes.weight;
    let taps = per_group * kh * kw;
    let stride = position_stride(shapes);
    // The vec4 and subgroup kernels need the matmul's reduced and column dimensions multiples
    // of 4. Positions and taps are padded to that (see gemm.rs); only the backward to the
    // input reduces over the unpadded output channels.
    let vec4_aligned = match pass {
        Pass::Forward | Pass::BackwardWeight => true,
        Pass::BackwardInput => c_out % 4 == 0,
    };
    let cols_bytes = (n * taps.next_multiple_of(4) * stride * 4) as u64;
    let limit = IM2COL_MAX_BYTES.min(adapter.max_binding_bytes);
    // The weight gradient's GEMM always builds its im2row buffer; 1×1 convolutions otherwise
    // use their input as it is, or a padded copy of it.
    let needs_cols =
        pass == Pass::BackwardWeight || !is_pointwise(shapes) || stride != oh * ow || taps % 4 != 0;
    let gemm_applies = conv.groups == 1 && (!needs_cols || cols_bytes <= limit);
    let winograd_applies = winograd::applies(shapes, adapter.max_binding_bytes);
    // The Winograd weight gradient's products read a transposed operand, which only the
    // subgroup GEMM (lavapipe's) reads at full speed. Elsewhere a transposed product falls to
    // the register-tiled kernel (1.5 TFLOP/s on the H200, where im2row's untransposed
    // products split K on the vec4 kernel; BENCHMARKS.md); the Winograd weight gradient has
    // not been timed on a GPU, so Auto keeps im2row there until it is.
    let winograd_measured_faster = pass != Pass::BackwardWeight || adapter.subgroup_gemm;
    // The backward to the input is itself a convolution whose output is the input's shape;
    // the forward and the weight gradient tile the output.
    let tiled = match pass {
        Pass::BackwardInput => shapes.input,
        Pass::Forward | Pass::BackwardWeight => shapes.output,
    };
    match algorithm {
        ConvAlgorithm::Auto if winograd_measured_faster && winograd_preferred(shapes, adapter) => {
            Ok(Plan::Winograd(winograd_tile(tiled)))
        }
        ConvAlgorithm::Auto if gemm_applies && vec4_aligned => Ok(Plan::Gemm),
        ConvAlgorithm::Auto => Ok(Plan::ImplicitGemm),
        ConvAlgorithm::Direct => Ok(Plan::Direct),
        ConvAlgorithm::ImplicitGemm => Ok(Plan::ImplicitGemm),
        ConvAlgorithm::Gemm if gemm_applies => Ok(Plan::Gemm),
        ConvAlgorithm::Gemm => Err(Error::invalid(
            op,
            format!(
                "the GEMM path needs groups = 1 and an im2col buffer within {limit} bytes; \
                 groups = {}, buffer {cols_bytes} bytes",
                conv.groups
            ),
        )),
        ConvAlgorithm::Winograd | ConvAlgorithm::WinogradF2 | ConvAlgorithm::WinogradF4
            if !winograd_applies =>
        {
            Err(Error::invalid(
                op,
                "Winograd needs a 3×3 kernel at stride 1 without dilation or groups, padding at \
                 most 2, channel counts that are multiples of 4 and transformed tensors within \
                 one binding",
            ))
        }
        ConvAlgorithm::Winograd => Ok(Plan::Winograd(winograd_tile(tiled))),
        ConvAlgorithm::WinogradF2 => Ok(Plan::Winograd(WinogradTile::F2)),
        ConvAlgorithm::WinogradF4 => Ok(Plan::Winograd(WinogradTile::F4)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv2d::Conv2d;
    use crate::kernels::conv2d::conv2d_shapes;

    /// lavapipe's facts: 128 MiB bindings, the 8-lane subgroup GEMM.
    const LAVAPIPE: Adapter = Adapter {
        max_binding_bytes: 128 << 20,
        subgroup_gemm: true,
    };
    /// A GPU without 8-lane subgroups and with 2 GiB bindings.
    const GPU: Adapter = Adapter {
        max_binding_bytes: 2 << 30,
        subgroup_gemm: false,
    };

    fn shapes(input: [usize; 4], weight: [usize; 4], conv: &Conv2d) -> ConvShapes {
        conv2d_shapes("test", &input, &weight, conv).unwrap()
    }

    fn auto(shapes: &ConvShapes, adapter: Adapter, pass: Pass) -> Plan {
        resolve("test", shapes, ConvAlgorithm::Auto, adapter, pass).unwrap()
    }

    const SAME_3X3: Conv2d = Conv2d {
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    };

    #[test]
    fn auto_takes_winograd_from_32_two_by_two_tiles() {
        // ResNet's 56×56 and 14×14 planes (784 and 49 tiles) against its 7×7 (16 tiles).
        let wide = shapes([1, 64, 56, 56], [64, 64, 3, 3], &SAME_3X3);
        let at_14 = shapes([1, 256, 14, 14], [256, 256, 3, 3], &SAME_3X3);
        let at_7 = shapes([1, 512, 7, 7], [512, 512, 3, 3], &SAME_3X3);
        for pass in [Pass::Forward, Pass::BackwardInput] {
            assert_eq!(auto(&wide, GPU, pass), Plan::Winograd(WinogradTile::F4));
            assert_eq!(auto(&at_14, GPU, pass), Plan::Winograd(WinogradTile::F2));
            assert_eq!(auto(&at_7, GPU, pass), Plan::Gemm);
        }
    }

    /// The thresholds at their edges: 32 tiles of 2×2 take Winograd and 31 do not; 48 tiles of
    /// 4×4 take F(4×4) and 47 do not.
    #[test]
    fn the_thresholds_hold_at_their_edges() {
        let at = |input: [usize; 4]| shapes(input, [64, 64, 3, 3], &SAME_3X3);
        // Batch 2 of 8×8 outputs: 2·4·4 = 32 tiles of 2×2.
        let exactly = at([2, 64, 8, 8]);
        assert_eq!(
            auto(&exactly, GPU, Pass::Forward),
            Plan::Winograd(WinogradTile::F2)
        );
        // One 2×62 output: 1·31 tiles of 2×2.
        let one_short = at([1, 64, 2, 62]);
        assert_eq!(auto(&one_short, GPU, Pass::Forward), Plan::Gemm);
        // 4×188: 47 tiles of 4×4 (and 94 of 2×2); batch 3 of 16×16: 48.
        assert_eq!(winograd_tile([1, 64, 4, 188]), WinogradTile::F2);
        assert_eq!(winograd_tile([3, 64, 16, 16]), WinogradTile::F4);
        assert_eq!(MIN_TILES_PREFERRED, 32);
        assert_eq!(MIN_TILES_F4, 48);
    }

    #[test]
    fn winograd_takes_f4_from_48_four_by_four_tiles() {
        for (tiled, tile) in [
            ([1, 64, 56, 56], WinogradTile::F4),
            ([1, 128, 28, 28], WinogradTile::F4),
            ([1, 256, 14, 14], WinogradTile::F2),
            ([3, 256, 14, 14], WinogradTile::F4),
            ([2, 8, 15, 16], WinogradTile::F2),
            ([1, 512, 7, 7], WinogradTile::F2),
        ] {
            assert_eq!(winograd_tile(tiled), tile, "{tiled:?}");
        }
    }

    #[test]
    fn the_winograd_weight_gradient_needs_the_subgroup_gemm() {
        let wide = shapes([1, 64, 56, 56], [64, 64, 3, 3], &SAME_3X3);
        assert_eq!(
            auto(&wide, LAVAPIPE, Pass::BackwardWeight),
            Plan::Winograd(WinogradTile::F4)
        );
        assert_eq!(auto(&wide, GPU, Pass::BackwardWeight), Plan::Gemm);
    }

    #[test]
    fn large_im2col_buffers_and_groups_take_the_implicit_gemm() {
        // A stride-2 3×3 at 1024²: its im2col buffer is 604 MB, past IM2COL_MAX_BYTES.
        let strided = Conv2d::default().stride(2).padding(1);
        let large = shapes([1, 64, 1024, 1024], [64, 64, 3, 3], &strided);
        assert_eq!(auto(&large, GPU, Pass::Forward), Plan::ImplicitGemm);
        // The same at 224²: 29 MB, within it.
        let small = shapes([1, 64, 224, 224], [64, 64, 3, 3], &strided);
        assert_eq!(auto(&small, GPU, Pass::Forward), Plan::Gemm);
        let grouped = Conv2d::default().groups(2);
        let g = shapes([1, 64, 14, 14], [64, 32, 1, 1], &grouped);
        assert_eq!(auto(&g, GPU, Pass::Forward), Plan::ImplicitGemm);
    }

    #[test]
    fn the_backward_to_the_input_needs_output_channels_in_fours() {
        // A 1×1 convolution to 10 channels (a classifier head): its backward to the input
        // reduces over 10 channels, which the vec4 GEMM cannot.
        let head = shapes([1, 64, 7, 7], [10, 64, 1, 1], &Conv2d::default());
        assert_eq!(auto(&head, GPU, Pass::Forward), Plan::Gemm);
        assert_eq!(auto(&head, GPU, Pass::BackwardInput), Plan::ImplicitGemm);
    }

    #[test]
    fn demanded_algorithms_that_cannot_run_are_refused() {
        let grouped = Conv2d::default().groups(2);
        let g = shapes([1, 8, 6, 6], [8, 4, 3, 3], &grouped);
        for algorithm in [
            ConvAlgorithm::Gemm,
            ConvAlgorithm::Winograd,
            ConvAlgorithm::WinogradF2,
            ConvAlgorithm::WinogradF4,
        ] {
            assert!(resolve("t", &g, algorithm, GPU, Pass::Forward).is_err());
        }
        for (algorithm, plan) in [
            (ConvAlgorithm::Direct, Plan::Direct),
            (ConvAlgorithm::ImplicitGemm, Plan::ImplicitGemm),
        ] {
            assert_eq!(
                resolve("t", &g, algorithm, GPU, Pass::Forward).unwrap(),
                plan
            );
        }
    }

    #[test]
    fn a_channel_slice_takes_winograd_or_the_implicit_gemm() {
        let wide = shapes([1, 64, 56, 56], [32, 64, 3, 3], &SAME_3X3);
        assert_eq!(slice_plan(&wide, GPU), Plan::Winograd(WinogradTile::F4));
        let pointwise = shapes([1, 64, 56, 56], [32, 64, 1, 1], &Conv2d::default());
        assert_eq!(slice_plan(&pointwise, GPU), Plan::ImplicitGemm);
    }
}
