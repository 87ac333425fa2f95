//! Launchers for shaders/batchnorm.wgsl: BatchNorm2d in training and eval mode, with backward.

use super::{Launch, as_u32, grid_1d};
use crate::error::{Error, Result};
use crate::shaders::{
    Entry, Kernel, Shader, WORKGROUP_SIZE_OVERRIDE, WithVec4, WorkgroupSize, entries,
    uniform_params,
};
use crate::tensor::Tensor;

/// The most invocations per workgroup of the elementwise passes (4 values each); smaller
/// planes take the smallest power of two that covers them, from 8 (one 8-lane batch on
/// lavapipe): the 49 values of a 7×7 plane take 16, not 64 mostly idle.
const PLANE_WORKGROUP_SIZE: u32 = 64;

uniform_params! {
    struct Params {
        batch: u32, channels: u32, plane: u32, eps: f32, momentum: f32, add_residual: u32,
        relu: u32, guided: u32, add_second_gradient: u32, conv_bias: u32, source_channels: u32,
        source_first: u32, x_channels: u32, accumulate: u32,
    }
}

// Per-channel reductions (one workgroup per channel) are sized by `reduction_kernel`, at most
// 256 lanes; the elementwise passes by `PlanePass`, at most PLANE_WORKGROUP_SIZE; the running
// statistics' update takes one invocation per channel. Scalar entries bind per-value tensors at
// the slots in `PlaneSlot`'s first place, vec4 entries at its second.
const REDUCTION: WorkgroupSize = WorkgroupSize::Override(256);
const PER_CHANNEL: WorkgroupSize = WorkgroupSize::Override(256);
const PLANE: WorkgroupSize = WorkgroupSize::Override(PLANE_WORKGROUP_SIZE);

entries! {
    entries for Shader::BatchNorm, Params;
    bindings { x: read 1, mean: read 2, variance: read 3, weight: read 4, bias: read 5,
        grad_out: read 6, out_a: read_write 7, out_b: read_write 8, grad_weight: read 9,
        grad_bias: read 10, residual: read 11, relu_output: read 12, x4: read 13,
        residual4: read 14, grad_out4: read 15, relu_output4: read 16, out_a4: read_write 17,
        out_b4: read_write 18, grad_out_also: read 19, grad_out_also4: read 20, conv_bias: read 21,
        coefficients: read 22, so_far: read 23, so_far4: read 24 }
    STATISTICS = "batch_norm_statistics", REDUCTION, [x, out_a, out_b, x4];
    UPDATE_RUNNING = "batch_norm_update_running", PER_CHANNEL, [mean, variance, out_a, out_b];
    FOLD = "batch_norm_fold", PER_CHANNEL, [mean, variance, weight, bias, out_a, conv_bias];
    FORWARD_SCALAR = "batch_norm_forward", PLANE,
        [x, mean, variance, weight, bias, out_a, residual];
    FORWARD_VEC4 = "batch_norm_forward_vec4", PLANE,
        [mean, variance, weight, bias, x4, residual4, out_a4];
    BACKWARD_REDUCE_SCALAR = "batch_norm_backward_reduce", REDUCTION,
        [x, mean, variance, grad_out, out_a, out_b, relu_output];
    BACKWARD_REDUCE_VEC4 = "batch_norm_backward_reduce_vec4", REDUCTION,
        [mean, variance, out_a, out_b, x4, grad_out4, relu_output4];
    BACKWARD_COEFFICIENTS = "batch_norm_backward_coefficients", PER_CHANNEL,
        [mean, variance, weight, grad_weight, grad_bias, out_a4];
    BACKWARD_INPUT = "batch_norm_backward_input", PLANE,
        [x, grad_out, out_a, out_b, relu_output, coefficients, so_far];
    BACKWARD_INPUT_VEC4 = "batch_norm_backward_input_vec4", PLANE,
        [x4, grad_out4, relu_output4, out_a4, out_b4, coefficients, so_far4];
    BACKWARD_INPUT_EVAL = "batch_norm_backward_input_eval", PLANE,
        [variance, weight, grad_out, out_a, out_b, relu_output, grad_out_also, so_far];
    BACKWARD_INPUT_EVAL_VEC4 = "batch_norm_backward_input_eval_vec4", PLANE,
        [variance, weight, grad_out4, relu_output4, out_a4, out_b4, grad_out_also4, so_far4];
}

/// What `batch_norm_forward` applies after the normalisation, in the same pass.
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// Added to the normalised value (a residual connection); the input's shape.
    pub residual: Option<&'a Tensor>,
    pub relu: bool,
}

/// An eval-mode BatchNorm2d's tensors (the running statistics, the affine parameters): what a
/// convolution's output pass can apply in place of `batch_norm_forward`
/// (`conv2d_then`).
#[derive(Clone, Copy)]
pub struct EvalBatchNorm<'a> {
    pub mean: &'a Tensor,
    pub variance: &'a Tensor,
    pub weight: &'a Tensor,
    pub bias: &'a Tensor,
    pub eps: f32,
}

impl EvalBatchNorm<'_> {
    /// `batch_norm_forward` of `x` with these tensors, then `epilogue`.
    pub fn forward(&self, x: &Tensor, epilogue: Epilogue) -> Result<Tensor> {
        batch_norm_forward(
            x,
            self.mean,
            self.variance,
            self.weight,
            self.bias,
            self.eps,
            epilogue,
        )
    }

    /// The normalisation as per-channel constants [2, C]: row 0 the scales
    /// weight / √(variance + eps), row 1 the shifts bias − mean · scale, computed as
    /// `batch_norm_forward` computes them, so that x · scale + shift is its value. With
    /// `conv_bias` [C], the normalisation of x + conv_bias: the shifts take the bias of the
    /// convolution before it in. Kept with the weight (`Tensor::derived_with`) until one of the
    /// tensors is written.
    pub fn folded(&self, conv_bias: Option<&Tensor>) -> Result<Tensor> {
        let eps = u64::from(self.eps.to_bits());
        match conv_bias {
            None => self.weight.derived_with(
                &[self.bias, self.mean, self.variance],
                eps,
                "BatchNorm folded to scale and shift",
                |_| self.fold(None),
            ),
            Some(conv_bias) => self.weight.derived_with(
                &[self.bias, self.mean, self.variance, conv_bias],
                eps,
                "BatchNorm and the convolution's bias folded to scale and shift",
                |_| self.fold(Some(conv_bias)),
            ),
        }
    }

    /// `forward` of the first `channels` channels of `x` [N, C ≥ channels, H, W], read in
    /// place: a DenseNet block buffer's prefix, normalised without being copied out first.
    /// The result (and the epilogue's residual) is [N, channels, H, W].
    pub fn forward_prefix(
        &self,
        x: &Tensor,
        channels: usize,
        epilogue: Epilogue,
    ) -> Result<Tensor> {
        const OP: &str = "batch_norm_forward";
        let (mut params, _) = geometry(OP, x, self.eps, 0.0, false)?;
        read_channels(OP, &mut params, 0, channels)?;
        let [n, _, h, w] = nchw_dims(x);
        let out_dims = [n, channels, h, w];
        if let Some(residual) = epilogue.residual.filter(|r| r.dims() != out_dims) {
            return Err(Error::ShapeMismatch {
                op: OP,
                left: out_dims.to_vec(),
                right: residual.dims().to_vec(),
            });
        }
        let tensors = [self.mean, self.variance, self.weight, self.bias];
        normalise(OP, x, out_dims, params, tensors, epilogue)
    }

    /// Checks that every tensor holds `channels` values and that eps is finite and
    /// non-negative.
    pub fn check(&self, op: &'static str, channels: usize) -> Result<()> {
        for (name, t) in [
            ("mean", self.mean),
            ("variance", self.variance),
            ("weight", self.weight),
            ("bias", self.bias),
        ] {
            expect_channels(op, name, t, channels)?;
        }
        if !self.eps.is_finite() || self.eps < 0.0 {
            return Err(Error::invalid(
                op,
                format!("eps = {} must be finite and non-negative", self.eps),
            ));
        }
        Ok(())
    }

    /// `folded`, computed.
    fn fold(&self, conv_bias: Option<&Tensor>) -> Result<Tensor> {
        const OP: &str = "batch_norm_fold";
        let channels = self.mean.dims().first().copied().unwrap_or(0);
        self.check(OP, channels)?;
        if let Some(conv_bias) = conv_bias {
            expect_channels(OP, "conv_bias", conv_bias, channels)?;
        }
        if channels == 0 {
            return Err(Error::invalid(OP, "needs at least one channel"));
        }
        let params = Params {
            batch: 1,
            channels: as_u32(OP, "C", channels)?,
            plane: 1,
            eps: self.eps,
            momentum: 0.0,
            add_residual: 0,
            relu: 0,
            guided: 0,
            add_second_gradient: 0,
            conv_bias: u32::from(conv_bias.is_some()),
            source_channels: as_u32(OP, "C", channels)?,
            source_first: 0,
            x_channels: as_u32(OP, "C", channels)?,
            accumulate: 0,
        };
        let gpu = self.mean.gpu();
        let out = Tensor::empty(gpu, [2, channels])?;
        // Without a convolution bias the shader reads none; the mean stands in for it.
        Launch::new(gpu, &FOLD, params)
            .bind(2, self.mean)
            .bind(3, self.variance)
            .bind(4, self.weight)
            .bind(5, self.bias)
            .bind(7, &out)
            .bind(21, conv_bias.unwrap_or(self.mean))
            .over(channels as u64)?;
        Ok(out)
    }
}

/// The ReLU that `batch_norm_forward` applied, for the backward passes to take the incoming
/// gradient through in the same pass.
#[derive(Clone, Copy)]
pub struct ReluBackward<'a> {
    /// What the forward returned (the ReLU's output: the gradient passes where it is > 0).
    pub output: &'a Tensor,
    /// Guided backprop: negative gradients are dropped as well.
    pub guided: bool,
}

/// A batch's per-channel mean and biased variance (what training-mode BN normalises with).
#[derive(Clone, Debug)]
pub struct BatchStatistics {
    pub mean: Tensor,
    pub variance: Tensor,
}

/// The gradients of BatchNorm2d.
#[derive(Debug)]
pub struct BatchNormGrads {
    pub grad_input: Tensor,
    pub grad_weight: Tensor,
    pub grad_bias: Tensor,
}

/// Per-channel mean and biased variance of an NCHW batch.
pub fn batch_norm_statistics(x: &Tensor) -> Result<BatchStatistics> {
    let channels = x.dims().get(1).copied().unwrap_or(0);
    batch_norm_statistics_of_prefix(x, channels)
}

/// `batch_norm_statistics` of the first `channels` channels of `x` [N, C ≥ channels, H, W],
/// read in place (a DenseNet block buffer's prefix).
pub fn batch_norm_statistics_of_prefix(x: &Tensor, channels: usize) -> Result<BatchStatistics> {
    const OP: &str = "batch_norm_statistics";
    let (mut params, _) = geometry(OP, x, 0.0, 0.0, true)?;
    read_channels(OP, &mut params, 0, channels)?;
    let gpu = x.gpu();
    let mean = Tensor::empty(gpu, [channels])?;
    let variance = Tensor::empty(gpu, [channels])?;
    let x4 = vec4_view(&params, x)?;
    let vec4 = params.plane.is_multiple_of(4);
    let kernel = reduction_kernel(&STATISTICS, &params)
        .with_override("PLANE_VEC4", f64::from(u8::from(vec4)));
    Launch::of(gpu, kernel, params)
        .bind(1, x)
        .bind(X.1, &x4)
        .bind(7, &mean)
        .bind(8, &variance)
        .on(grid_1d(gpu, channels as u64))?;
    Ok(BatchStatistics { mean, variance })
}

/// Folds a batch's statistics into the running ones, in place, as PyTorch does with
/// `momentum` (0.1 in torchvision): the running variance takes the unbiased batch variance.
pub fn batch_norm_update_running(
    x: &Tensor,
    batch: &BatchStatistics,
    running_mean: &Tensor,
    running_var: &Tensor,
    momentum: f32,
) -> Result<()> {
    let channels = x.dims().get(1).copied().unwrap_or(0);
    batch_norm_update_running_of_prefix(x, channels, batch, running_mean, running_var, momentum)
}

/// `batch_norm_update_running` with the statistics of the first `channels` channels of `x`
/// (`batch_norm_statistics_of_prefix`).
pub fn batch_norm_update_running_of_prefix(
    x: &Tensor,
    channels: usize,
    batch: &BatchStatistics,
    running_mean: &Tensor,
    running_var: &Tensor,
    momentum: f32,
) -> Result<()> {
    const OP: &str = "batch_norm_update_running";
    let (mut params, _) = geometry(OP, x, 0.0, momentum, true)?;
    read_channels(OP, &mut params, 0, channels)?;
    let gpu = x.gpu();
    for (name, t) in [
        ("batch mean", &batch.mean),
        ("batch variance", &batch.variance),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ] {
        expect_channels(OP, name, t, channels)?;
    }
    Launch::new(gpu, &UPDATE_RUNNING, params)
        .bind(2, &batch.mean)
        .bind(3, &batch.variance)
        .bind(7, running_mean)
        .bind(8, running_var)
        .over(channels as u64)
}

/// out = (x - mean) / sqrt(variance + eps) · weight + bias, per channel, followed in the same
/// pass by `epilogue` (relu(bn(x) + residual); `Epilogue::default()` for none). Training mode
/// passes the batch statistics, eval mode the running ones.
pub fn batch_norm_forward(
    x: &Tensor,
    mean: &Tensor,
    variance: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
    epilogue: Epilogue,
) -> Result<Tensor> {
    const OP: &str = "batch_norm_forward";
    let (params, _) = geometry(OP, x, eps, 0.0, false)?;
    if let Some(residual) = epilogue.residual {
        x.expect_same_shape(residual, OP)?;
    }
    let out_dims = nchw_dims(x);
    normalise(
        OP,
        x,
        out_dims,
        params,
        [mean, variance, weight, bias],
        epilogue,
    )
}

/// `batch_norm_forward`'s pass with `params` from `x` into a new tensor of `out_dims`, with
/// the statistics and the affine parameters [mean, variance, weight, bias] of its channels.
fn normalise(
    op: &'static str,
    x: &Tensor,
    out_dims: [usize; 4],
    mut params: Params,
    [mean, variance, weight, bias]: [&Tensor; 4],
    epilogue: Epilogue,
) -> Result<Tensor> {
    let channels = out_dims[1];
    params.add_residual = u32::from(epilogue.residual.is_some());
    params.relu = u32::from(epilogue.relu);
    for (name, t) in [
        ("mean", mean),
        ("variance", variance),
        ("weight", weight),
        ("bias", bias),
    ] {
        expect_channels(op, name, t, channels)?;
    }
    let gpu = x.gpu();
    let out = Tensor::empty(gpu, out_dims)?;
    let pass = PlanePass::new(&params);
    // Read only with add_residual, but statically used: x stands in otherwise.
    let residual = epilogue.residual.unwrap_or(x);
    Launch::of(gpu, pass.kernel(FORWARD), params)
        .bind(pass.slot(X), x)
        .bind(2, mean)
        .bind(3, variance)
        .bind(4, weight)
        .bind(5, bias)
        .bind(pass.slot(OUT_A), &out)
        .bind(pass.slot(RESIDUAL), residual)
        .on(pass.workgroups)?;
    Ok(out)
}

/// Gradients of `batch_norm_forward` given the statistics it used. With `training`, the
/// statistics are functions of `x` (batch statistics) and the input gradient includes their
/// derivative; without, they are constants (eval mode — still differentiable in `x`, which is
/// what saliency needs).
pub fn batch_norm_backward(
    x: &Tensor,
    grad_out: &Tensor,
    mean: &Tensor,
    variance: &Tensor,
    weight: &Tensor,
    eps: f32,
    training: bool,
) -> Result<BatchNormGrads> {
    x.expect_same_shape(grad_out, BACKWARD_OP)?;
    let backward = Backward {
        x,
        grad_out,
        relu: None,
        statistics: [mean, variance, weight],
        eps,
        training,
    };
    let (grads, _) = backward.whole(false)?;
    Ok(grads)
}

/// `batch_norm_backward` of relu(batch_norm(x) + residual?): both of its passes take the
/// incoming gradient through the ReLU, which then needs no pass of its own. Returns the
/// gradients and, with `keep_relu_gradient`, the gradient after the ReLU (the residual's),
/// which the input gradient's pass writes as well.
pub fn batch_norm_backward_through_relu(
    x: &Tensor,
    grad_out: &Tensor,
    relu: ReluBackward,
    keep_relu_gradient: bool,
    [mean, variance, weight]: [&Tensor; 3],
    eps: f32,
    training: bool,
) -> Result<(BatchNormGrads, Option<Tensor>)> {
    x.expect_same_shape(grad_out, BACKWARD_OP)?;
    let backward = Backward {
        x,
        grad_out,
        relu: Some(relu),
        statistics: [mean, variance, weight],
        eps,
        training,
    };
    backward.whole(keep_relu_gradient)
}

/// The gradients of a BatchNorm2d whose input was the concatenation of parts
/// (`batch_norm_backward_of_parts`): the input's as one tensor per part.
#[derive(Debug)]
pub struct BatchNormPartGrads {
    pub grad_inputs: Vec<Tensor>,
    pub grad_weight: Tensor,
    pub grad_bias: Tensor,
}

/// One part of the concatenation a norm read (`batch_norm_backward_of_parts`): its channel
/// count, and the gradient it has received so far [N, channels, H, W], which the gradient
/// written for it then includes.
#[derive(Clone, Copy)]
pub struct Part<'a> {
    pub channels: usize,
    pub so_far: Option<&'a Tensor>,
}

/// `batch_norm_backward_through_relu` (no residual) of the first C channels of `x`
/// [N, C' ≥ C, H, W], read in place, for `grad_out` [N, C, H, W]: a DenseNet layer's first
/// norm, whose input is its block buffer's prefix, the concatenation of the block's parts so
/// far. The input's gradient comes as one tensor per consecutive part (their channels adding
/// up to C), each written by its own pass with the part's gradient so far added: no
/// concatenation is copied out for the norm, no gradient split after it, and in training mode
/// no pass of its own sums a part's gradients from the layers that read it.
pub fn batch_norm_backward_of_parts(
    x: &Tensor,
    grad_out: &Tensor,
    relu: ReluBackward,
    [mean, variance, weight]: [&Tensor; 3],
    eps: f32,
    training: bool,
    parts: &[Part],
) -> Result<BatchNormPartGrads> {
    let backward = Backward {
        x,
        grad_out,
        relu: Some(relu),
        statistics: [mean, variance, weight],
        eps,
        training,
    };
    let (inputs, [grad_weight, grad_bias]) = backward.run(parts, false)?;
    Ok(BatchNormPartGrads {
        grad_inputs: inputs
            .into_iter()
            .map(|(grad_input, _)| grad_input)
            .collect(),
        grad_weight,
        grad_bias,
    })
}

/// The input gradient alone of eval-mode batch norm, grad_out · weight / √(variance + eps), for
/// when no parameter wants a gradient (saliency): `batch_norm_backward` without the
/// per-channel reduction of the weight and bias gradients.
pub fn batch_norm_backward_input(
    grad_out: &Tensor,
    mean: &Tensor,
    variance: &Tensor,
    weight: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    let (grad_input, _) =
        eval_input_gradient((grad_out, None), None, false, [mean, variance, weight], eps)?;
    Ok(grad_input)
}

/// `batch_norm_backward_input` of `relu?(batch_norm(x) + residual?)`: the incoming gradient
/// taken through the ReLU in the same pass. Returns the input's gradient and, with
/// `keep_relu_gradient`, the gradient after the ReLU (the residual's), which the pass writes
/// as well: one pass over the activations where the ReLU's backward and BN's took two. The
/// incoming gradient is `grad_out`, plus `grad_out_also` when given (the two gradients of an
/// output used twice, as a residual block's is): added in the same pass, not in one of its own.
pub fn batch_norm_backward_input_through_relu(
    grad_out: &Tensor,
    grad_out_also: Option<&Tensor>,
    relu: ReluBackward,
    keep_relu_gradient: bool,
    [mean, variance, weight]: [&Tensor; 3],
    eps: f32,
) -> Result<(Tensor, Option<Tensor>)> {
    eval_input_gradient(
        (grad_out, grad_out_also),
        Some(relu),
        keep_relu_gradient,
        [mean, variance, weight],
        eps,
    )
}

/// `batch_norm_backward_input_through_relu` (one incoming gradient, no residual) as one
/// tensor per consecutive slice of `parts` channels (which add up to C): the gradients of the
/// parts of a concatenation the norm read, each written by its own pass over its channels
/// with the part's gradient so far added, so that no split copies them out of the whole and no
/// pass of its own sums a part's gradients from the layers that read it.
pub fn batch_norm_backward_input_through_relu_parts(
    grad_out: &Tensor,
    relu: ReluBackward,
    [mean, variance, weight]: [&Tensor; 3],
    eps: f32,
    parts: &[Part],
) -> Result<Vec<Tensor>> {
    const OP: &str = "batch_norm_backward_input_eval";
    let tensors = [mean, variance, weight];
    let params = eval_gradient_params(OP, (grad_out, None), Some(relu), false, tensors, eps)?;
    let dims = nchw_dims(grad_out);
    check_parts(OP, parts, dims)?;
    let [n, _, h, w] = dims;
    let unused = unused_second_output(grad_out)?;
    let mut gradients = Vec::with_capacity(parts.len());
    for (part_params, part) in per_part(OP, params, parts)? {
        let gradient = Tensor::empty(grad_out.gpu(), [n, part.channels, h, w])?;
        let sources = (grad_out, None, relu.output);
        let outputs = (&gradient, &unused);
        launch_eval_gradient(
            part_params,
            sources,
            [variance, weight],
            part.so_far,
            outputs,
        )?;
        gradients.push(gradient);
    }
    Ok(gradients)
}

/// Each part with the pass parameters that read its channels (`read_channels`), in order:
/// all checked before any pass is dispatched.
fn per_part<'a>(
    op: &'static str,
    params: Params,
    parts: &[Part<'a>],
) -> Result<Vec<(Params, Part<'a>)>> {
    let mut first = 0;
    parts
        .iter()
        .map(|&part| {
            let mut part_params = params;
            read_channels(op, &mut part_params, first, part.channels)?;
            first += part.channels;
            Ok((part_params, part))
        })
        .collect()
}

/// Checks that `parts`' channels add up to those of `dims` [N, C, H, W] (an incoming
/// gradient's), and that each part's gradient so far has the part's shape.
fn check_parts(op: &'static str, parts: &[Part], [n, channels, h, w]: [usize; 4]) -> Result<()> {
    let part_channels: Vec<usize> = parts.iter().map(|part| part.channels).collect();
    if part_channels.iter().sum::<usize>() != channels {
        return Err(Error::invalid(
            op,
            format!("parts {part_channels:?} do not add up to the {channels} channels"),
        ));
    }
    for part in parts {
        let dims = [n, part.channels, h, w];
        if let Some(so_far) = part.so_far.filter(|so_far| so_far.dims() != dims) {
            return Err(Error::ShapeMismatch {
                op,
                left: so_far.dims().to_vec(),
                right: dims.to_vec(),
            });
        }
    }
    Ok(())
}

/// The eval-mode input gradient's parameters, the tensors checked against each other.
fn eval_gradient_params(
    op: &'static str,
    (grad_out, grad_out_also): (&Tensor, Option<&Tensor>),
    relu: Option<ReluBackward>,
    keep_relu_gradient: bool,
    [mean, variance, weight]: [&Tensor; 3],
    eps: f32,
) -> Result<Params> {
    let (mut params, channels) = geometry(op, grad_out, eps, 0.0, false)?;
    for (name, t) in [("mean", mean), ("variance", variance), ("weight", weight)] {
        expect_channels(op, name, t, channels)?;
    }
    if let Some(relu) = relu {
        grad_out.expect_same_shape(relu.output, op)?;
        params.relu = 1;
        params.guided = u32::from(relu.guided);
    }
    if let Some(also) = grad_out_also {
        grad_out.expect_same_shape(also, op)?;
        params.add_second_gradient = 1;
    }
    params.add_residual = u32::from(keep_relu_gradient && relu.is_some());
    Ok(params)
}

/// What the eval-mode input gradient's pass binds as its second output when add_residual is
/// off: statically used, never written. WebGPU forbids binding one buffer twice where either
/// binding is writable, so it is a vec4 of its own.
fn unused_second_output(like: &Tensor) -> Result<Tensor> {
    Tensor::empty(like.gpu(), [4])
}

/// The eval-mode input gradient's pass: from the sources (the incoming gradient, the second
/// one, the ReLU's output: `params`' source channels) into `grad_input`, `so_far` (the
/// input's gradient so far) added, and, with add_residual, `second_output` (the gradient
/// after the ReLU; `unused_second_output` otherwise).
fn launch_eval_gradient(
    mut params: Params,
    (grad_out, grad_out_also, relu_output): (&Tensor, Option<&Tensor>, &Tensor),
    [variance, weight]: [&Tensor; 2],
    so_far: Option<&Tensor>,
    (grad_input, second_output): (&Tensor, &Tensor),
) -> Result<()> {
    let gpu = grad_out.gpu();
    params.accumulate = u32::from(so_far.is_some());
    let pass = PlanePass::new(&params);
    // The second incoming gradient is read only with add_second_gradient, the gradient so far
    // only with accumulate, but both are statically used: the first stands in otherwise.
    Launch::of(gpu, pass.kernel(EVAL_INPUT_GRADIENT), params)
        .bind(3, variance)
        .bind(4, weight)
        .bind(pass.slot(GRAD_OUT), grad_out)
        .bind(pass.slot(OUT_A), grad_input)
        .bind(pass.slot(OUT_B), second_output)
        .bind(pass.slot(RELU_OUTPUT), relu_output)
        .bind(pass.slot(GRAD_OUT_ALSO), grad_out_also.unwrap_or(grad_out))
        .bind(pass.slot(SO_FAR), so_far.unwrap_or(grad_out))
        .on(pass.workgroups)
}

fn eval_input_gradient(
    (grad_out, grad_out_also): (&Tensor, Option<&Tensor>),
    relu: Option<ReluBackward>,
    keep_relu_gradient: bool,
    [mean, variance, weight]: [&Tensor; 3],
    eps: f32,
) -> Result<(Tensor, Option<Tensor>)> {
    const OP: &str = "batch_norm_backward_input_eval";
    let incoming = (grad_out, grad_out_also);
    let tensors = [mean, variance, weight];
    let params = eval_gradient_params(OP, incoming, relu, keep_relu_gradient, tensors, eps)?;
    let gpu = grad_out.gpu();
    let grad_input = Tensor::empty(gpu, grad_out.shape().clone())?;
    let relu_gradient = match params.add_residual {
        0 => None,
        _ => Some(Tensor::empty(gpu, grad_out.shape().clone())?),
    };
    // The ReLU's output is read only with relu: the incoming gradient stands in otherwise.
    let relu_output = relu.map_or(grad_out, |r| r.output);
    let second_output = match &relu_gradient {
        Some(gradient) => gradient,
        None => &unused_second_output(grad_out)?,
    };
    launch_eval_gradient(
        params,
        (grad_out, grad_out_also, relu_output),
        [variance, weight],
        None,
        (&grad_input, second_output),
    )?;
    Ok((grad_input, relu_gradient))
}

/// What BatchNorm2d's backward reads: the forward's input `x` (or a wider tensor whose first
/// channels it was), the incoming gradient, the ReLU the forward applied, its statistics and
/// weight [mean, variance, weight], and whether the statistics were the batch's.
struct Backward<'a> {
    x: &'a Tensor,
    grad_out: &'a Tensor,
    relu: Option<ReluBackward<'a>>,
    statistics: [&'a Tensor; 3],
    eps: f32,
    training: bool,
}

/// What the backward's errors name.
const BACKWARD_OP: &str = "batch_norm_backward";

impl Backward<'_> {
    /// `run` with the input's gradient as one tensor.
    fn whole(&self, keep_relu_gradient: bool) -> Result<(BatchNormGrads, Option<Tensor>)> {
        let channels = self.grad_out.dims().get(1).copied().unwrap_or(0);
        let whole = Part {
            channels,
            so_far: None,
        };
        let (mut inputs, [grad_weight, grad_bias]) = self.run(&[whole], keep_relu_gradient)?;
        let (grad_input, relu_gradient) = inputs.remove(0);
        let grads = BatchNormGrads {
            grad_input,
            grad_weight,
            grad_bias,
        };
        Ok((grads, relu_gradient))
    }

    /// The passes' parameters, every tensor checked against the incoming gradient's shape
    /// [N, C, H, W], which it returns too.
    fn params(&self, parts: &[Part]) -> Result<(Params, [usize; 4])> {
        let (x, grad_out) = (self.x, self.grad_out);
        let (mut params, channels) = geometry(BACKWARD_OP, grad_out, self.eps, 0.0, self.training)?;
        let [n, _, h, w] = nchw_dims(grad_out);
        match *x.dims() {
            [xn, xc, xh, xw] if (xn, xh, xw) == (n, h, w) && xc >= channels => {
                params.x_channels = as_u32(BACKWARD_OP, "C", xc)?;
            }
            _ => {
                return Err(Error::ShapeMismatch {
                    op: BACKWARD_OP,
                    left: x.dims().to_vec(),
                    right: grad_out.dims().to_vec(),
                });
            }
        }
        let [mean, variance, weight] = self.statistics;
        for (name, t) in [("mean", mean), ("variance", variance), ("weight", weight)] {
            expect_channels(BACKWARD_OP, name, t, channels)?;
        }
        if let Some(relu) = self.relu {
            grad_out.expect_same_shape(relu.output, BACKWARD_OP)?;
            params.relu = 1;
            params.guided = u32::from(relu.guided);
        }
        check_parts(BACKWARD_OP, parts, nchw_dims(grad_out))?;
        Ok((params, nchw_dims(grad_out)))
    }

    /// The per-channel reduction (the weight's and bias's gradients), then per consecutive
    /// part a pass writing the input's gradient there (its gradient so far added) and, with
    /// `keep_relu_gradient` and a ReLU, the gradient after the ReLU.
    #[allow(clippy::type_complexity)]
    fn run(
        &self,
        parts: &[Part],
        keep_relu_gradient: bool,
    ) -> Result<(Vec<(Tensor, Option<Tensor>)>, [Tensor; 2])> {
        let (x, grad_out) = (self.x, self.grad_out);
        let [mean, variance, weight] = self.statistics;
        let (mut params, [n, channels, h, w]) = self.params(parts)?;
        let gpu = grad_out.gpu();
        let grad_weight = Tensor::empty(gpu, [channels])?;
        let grad_bias = Tensor::empty(gpu, [channels])?;
        // The ReLU's output is read only with relu: the incoming gradient stands in otherwise.
        let relu_output = self.relu.map_or(grad_out, |relu| relu.output);
        let vec4 = params.plane.is_multiple_of(4);
        let slot = |(scalar, vec4_slot): PlaneSlot| if vec4 { vec4_slot } else { scalar };
        Launch::of(gpu, reduction_kernel(REDUCE.pick(vec4), &params), params)
            .bind(slot(X), x)
            .bind(2, mean)
            .bind(3, variance)
            .bind(slot(GRAD_OUT), grad_out)
            .bind(slot(RELU_OUTPUT), relu_output)
            .bind(7, &grad_weight)
            .bind(8, &grad_bias)
            .on(grid_1d(gpu, channels as u64))?;
        let coefficients = match self.training {
            true => Some(self.input_gradient_coefficients(params, [&grad_weight, &grad_bias])?),
            false => None,
        };
        params.add_residual = u32::from(keep_relu_gradient && self.relu.is_some());
        let unused = unused_second_output(grad_out)?;
        let mut inputs = Vec::with_capacity(parts.len());
        for (
            mut part,
            Part {
                channels: count,
                so_far,
            },
        ) in per_part(BACKWARD_OP, params, parts)?
        {
            let dims = [n, count, h, w];
            let grad_input = Tensor::empty(gpu, dims)?;
            let relu_gradient = match part.add_residual {
                0 => None,
                _ => Some(Tensor::empty(gpu, dims)?),
            };
            let second_output = relu_gradient.as_ref().unwrap_or(&unused);
            if let Some(coefficients) = &coefficients {
                part.accumulate = u32::from(so_far.is_some());
                let pass = PlanePass::new(&part);
                Launch::of(gpu, pass.kernel(TRAINING_INPUT_GRADIENT), part)
                    .bind(pass.slot(X), x)
                    .bind(pass.slot(GRAD_OUT), grad_out)
                    .bind(pass.slot(RELU_OUTPUT), relu_output)
                    .bind(pass.slot(OUT_A), &grad_input)
                    .bind(pass.slot(OUT_B), second_output)
                    .bind(22, coefficients)
                    // Read only with accumulate: the incoming gradient stands in otherwise.
                    .bind(pass.slot(SO_FAR), so_far.unwrap_or(grad_out))
                    .on(pass.workgroups)?;
            } else {
                let sources = (grad_out, None, relu_output);
                let outputs = (&grad_input, second_output);
                launch_eval_gradient(part, sources, [variance, weight], so_far, outputs)?;
            }
            inputs.push((grad_input, relu_gradient));
        }
        Ok((inputs, [grad_weight, grad_bias]))
    }

    /// The training-mode input gradient's constants per channel [C, 4]: (mean, scale, slope,
    /// shift), so that its pass binds one per-channel tensor where it would bind five.
    fn input_gradient_coefficients(
        &self,
        params: Params,
        [grad_weight, grad_bias]: [&Tensor; 2],
    ) -> Result<Tensor> {
        let [mean, variance, weight] = self.statistics;
        let channels = params.channels as usize;
        let gpu = self.grad_out.gpu();
        let coefficients = Tensor::empty(gpu, [channels, 4])?;
        Launch::new(gpu, &BACKWARD_COEFFICIENTS, params)
            .bind(2, mean)
            .bind(3, variance)
            .bind(4, weight)
            .bind(9, grad_weight)
            .bind(10, grad_bias)
            .bind(OUT_A.1, &coefficients)
            .over(channels as u64)?;
        Ok(coefficients)
    }
}

/// How an elementwise pass (forward, input gradient) runs: one invocation per 4 values of a
/// plane, workgroups (planes' invocations, C, N); through the vec4 bindings when H·W is a
/// multiple of 4.
struct PlanePass {
    vec4: bool,
    workgroup_size: u32,
    workgroups: [u32; 3],
}

impl PlanePass {
    // (The dispatch itself refuses, naming the kernel, a grid past the device's limits.)
    fn new(params: &Params) -> PlanePass {
        let invocations = params.plane.div_ceil(4);
        let workgroup_size = invocations
            .next_power_of_two()
            .clamp(8, PLANE_WORKGROUP_SIZE);
        PlanePass {
            vec4: params.plane.is_multiple_of(4),
            workgroup_size,
            workgroups: [
                invocations.div_ceil(workgroup_size),
                params.channels,
                params.batch,
            ],
        }
    }

    fn kernel(&self, entries: WithVec4<Params>) -> Kernel<Params> {
        entries
            .pick(self.vec4)
            .kernel()
            .with_override(WORKGROUP_SIZE_OVERRIDE, f64::from(self.workgroup_size))
    }

    fn slot(&self, (scalar, vec4): PlaneSlot) -> u32 {
        if self.vec4 { vec4 } else { scalar }
    }
}

/// The elementwise passes' entries: the one looping over 4 values, and its vec4 twin.
const FORWARD: WithVec4<Params> = WithVec4::new(&FORWARD_SCALAR, &FORWARD_VEC4);
const TRAINING_INPUT_GRADIENT: WithVec4<Params> =
    WithVec4::new(&BACKWARD_INPUT, &BACKWARD_INPUT_VEC4);
/// The backward's per-channel reduction, likewise (one workgroup per channel).
const REDUCE: WithVec4<Params> = WithVec4::new(&BACKWARD_REDUCE_SCALAR, &BACKWARD_REDUCE_VEC4);
const EVAL_INPUT_GRADIENT: WithVec4<Params> =
    WithVec4::new(&BACKWARD_INPUT_EVAL, &BACKWARD_INPUT_EVAL_VEC4);

/// A per-value tensor's binding in the scalar entry points and in the vec4 ones.
type PlaneSlot = (u32, u32);
const X: PlaneSlot = (1, 13);
const RESIDUAL: PlaneSlot = (11, 14);
const GRAD_OUT: PlaneSlot = (6, 15);
const RELU_OUTPUT: PlaneSlot = (12, 16);
const OUT_A: PlaneSlot = (7, 17);
const OUT_B: PlaneSlot = (8, 18);
const GRAD_OUT_ALSO: PlaneSlot = (19, 20);
const SO_FAR: PlaneSlot = (23, 24);

/// Validates an NCHW input; returns the shader parameters and the channel count. Batch
/// statistics need more than one value per channel (PyTorch refuses the same).
fn geometry(
    op: &'static str,
    x: &Tensor,
    eps: f32,
    momentum: f32,
    needs_batch_statistics: bool,
) -> Result<(Params, usize)> {
    let [n, c, h, w] = *x.dims() else {
        return Err(Error::invalid(
            op,
            format!("needs an NCHW input of rank 4, got shape {:?}", x.dims()),
        ));
    };
    if x.numel() == 0 {
        return Err(Error::invalid(
            op,
            format!("input of shape {:?} is empty", x.dims()),
        ));
    }
    if needs_batch_statistics && n * h * w < 2 {
        return Err(Error::invalid(
            op,
            format!(
                "batch statistics need more than one value per channel, got input of shape {:?}",
                x.dims()
            ),
        ));
    }
    let eps_valid = eps.is_finite() && eps >= 0.0;
    if !eps_valid || !(0.0..=1.0).contains(&momentum) {
        return Err(Error::invalid(
            op,
            format!("eps = {eps} must be finite and non-negative, momentum = {momentum} in [0, 1]"),
        ));
    }
    let params = Params {
        batch: as_u32(op, "N", n)?,
        channels: as_u32(op, "C", c)?,
        plane: as_u32(op, "H·W", h * w)?,
        eps,
        momentum,
        add_residual: 0,
        relu: 0,
        guided: 0,
        add_second_gradient: 0,
        conv_bias: 0,
        source_channels: as_u32(op, "C", c)?,
        source_first: 0,
        x_channels: as_u32(op, "C", c)?,
        accumulate: 0,
    };
    Ok((params, c))
}

/// An NCHW tensor's dims (`geometry` has checked the rank).
fn nchw_dims(x: &Tensor) -> [usize; 4] {
    [0, 1, 2, 3].map(|axis| x.dims()[axis])
}

/// Makes the pass read channels `first .. first + count` of its sources (and of x), whose
/// channels `params` holds, and write `count` channels. x's channel count stays as it was.
fn read_channels(op: &'static str, params: &mut Params, first: usize, count: usize) -> Result<()> {
    let source_channels = params.channels as usize;
    if count == 0 || first + count > source_channels {
        return Err(Error::invalid(
            op,
            format!(
                "channels {first}..{} of a {source_channels}-channel input",
                first + count
            ),
        ));
    }
    params.source_channels = params.channels;
    params.source_first = as_u32(op, "first channel", first)?;
    params.channels = as_u32(op, "C", count)?;
    Ok(())
}

fn expect_channels(op: &'static str, name: &str, t: &Tensor, channels: usize) -> Result<()> {
    if t.dims() != [channels] {
        return Err(Error::invalid(
            op,
            format!("{name} must have shape [{channels}], got {:?}", t.dims()),
        ));
    }
    Ok(())
}

/// A per-channel reduction (one workgroup per channel), its workgroup sized to what it strides
/// over, one plane (of vec4s where H·W is a multiple of 4) at a time: a 7×7 plane gets a
/// 64-wide workgroup, not 256 invocations and eight barrier levels mostly idle (the small
/// planes of ResNet's last stages; barriers are dear on CPU adapters).
fn reduction_kernel(entry: &'static Entry<Params>, params: &Params) -> Kernel<Params> {
    let vec4 = params.plane.is_multiple_of(4);
    let per_plane = if vec4 { params.plane / 4 } else { params.plane };
    let size = per_plane.next_power_of_two().clamp(32, entry.invocations());
    entry
        .kernel()
        .with_override(WORKGROUP_SIZE_OVERRIDE, f64::from(size))
}

/// What the statistics bind as `t`'s vec4 view: `t` where H·W is a multiple of 4
/// (PLANE_VEC4); otherwise a stand-in, never read — the view is statically used, and a tensor
/// of fewer than four values cannot be bound as vec4s.
fn vec4_view(params: &Params, t: &Tensor) -> Result<Tensor> {
    match params.plane.is_multiple_of(4) {
        true => Ok(t.clone()),
        false => Tensor::empty(t.gpu(), [4]),
    }
}
