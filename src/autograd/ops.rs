//! The differentiable ops: each runs its forward kernels and records, beside them, the backward
//! rule that calls the matching backward kernels. A rule captures only what it needs.

use super::{InputGrads, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::batchnorm::{
    BatchStatistics, Epilogue, EvalBatchNorm, Part, ReluBackward, batch_norm_backward,
    batch_norm_backward_input, batch_norm_backward_input_through_relu,
    batch_norm_backward_input_through_relu_parts, batch_norm_backward_of_parts,
    batch_norm_backward_through_relu, batch_norm_forward, batch_norm_statistics_of_prefix,
    batch_norm_update_running_of_prefix,
};
use crate::kernels::concat::{concat_channels, split_channels};
use crate::kernels::conv2d::{
    ChannelAffine, Conv2d, ConvAlgorithm, ConvGradient, conv2d, conv2d_backward,
    conv2d_backward_bias, conv2d_into, conv2d_then,
};
use crate::kernels::elementwise::{
    add, dropout, relu, relu_backward, scale, sigmoid, sigmoid_backward, silu, silu_backward,
};
use crate::kernels::fill::copy_into;
use crate::kernels::linear::{linear, linear_backward, linear_backward_input};
use crate::kernels::loss::{nll_loss, nll_loss_backward};
use crate::kernels::pool::{
    Pool2d, adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d, avg_pool2d_backward,
    max_pool2d, max_pool2d_backward_at, max_pool2d_with_argmax,
};
use crate::kernels::softmax::{log_softmax, log_softmax_backward, softmax, softmax_backward};
use crate::tensor::Tensor;

/// Channels `first .. first + count` of `tensor` [1, C, H, W] as a view (contiguous for batch
/// 1); an error when the slice does not start at an offset the adapter can bind.
pub(crate) fn channel_slice(tensor: &Tensor, first: usize, count: usize) -> Result<Tensor> {
    let &[1, channels, h, w] = tensor.dims() else {
        return Err(Error::invalid(
            "channel_slice",
            format!("needs a batch of one [1, C, H, W], got {:?}", tensor.dims()),
        ));
    };
    tensor
        .reshape([channels, h * w])?
        .rows(first, count)?
        .reshape([1, count, h, w])
}

/// Whether each consecutive slice of `channels` channels of `tensor` can be a view
/// (`channel_slice`): a batch of one, every slice starting at an offset the adapter can bind.
fn channel_slices_bindable(tensor: &Tensor, channels: &[usize]) -> bool {
    let (&[1, _, h, w], Some(range)) = (tensor.dims(), tensor.binding()) else {
        return false;
    };
    let alignment = u64::from(tensor.gpu().limits().min_storage_buffer_offset_alignment);
    let mut first = 0;
    channels.iter().all(|&count| {
        let start = range.offset + (first * h * w * 4) as u64;
        first += count;
        start.is_multiple_of(alignment)
    })
}

/// `tensor` [1, C, H, W] as views of consecutive slices of `channels` channels each
/// (`channel_slice`).
fn channel_slices(tensor: &Tensor, channels: &[usize]) -> Result<Vec<Tensor>> {
    let mut first = 0;
    let mut slices = Vec::with_capacity(channels.len());
    for &count in channels {
        slices.push(channel_slice(tensor, first, count)?);
        first += count;
    }
    Ok(slices)
}

/// BatchNorm2d's non-trainable side: the running statistics and the mode.
pub struct BatchNormState<'a> {
    pub running_mean: &'a Tensor,
    pub running_var: &'a Tensor,
    pub momentum: f32,
    pub eps: f32,
    /// Training mode normalises with the batch statistics and updates the running ones; eval
    /// mode normalises with the running statistics (and stays differentiable in the input).
    pub training: bool,
}

/// The mean and variance batch norm normalises the first `channels` channels of `x` with (all
/// of them but in a DenseNet block buffer): in training mode the batch's, `known` or computed
/// here (and the running statistics updated with them), in eval mode the running ones.
fn normalising_statistics(
    x: &Tensor,
    channels: usize,
    state: &BatchNormState,
    known: Option<&BatchStatistics>,
) -> Result<(Tensor, Tensor)> {
    if !state.training {
        return Ok((state.running_mean.clone(), state.running_var.clone()));
    }
    let batch = match known {
        Some(batch) => batch.clone(),
        None => batch_norm_statistics_of_prefix(x, channels)?,
    };
    batch_norm_update_running_of_prefix(
        x,
        channels,
        &batch,
        state.running_mean,
        state.running_var,
        state.momentum,
    )?;
    Ok((batch.mean, batch.variance))
}

/// The parts of `channels` channels each, with their gradients so far (the first of
/// `so_far`, an accumulating rule's).
fn parts_with_gradients_so_far<'a>(
    channels: &[usize],
    so_far: &'a [Option<Tensor>],
) -> Vec<Part<'a>> {
    channels
        .iter()
        .zip(so_far)
        .map(|(&channels, so_far)| Part {
            channels,
            so_far: so_far.as_ref(),
        })
        .collect()
}

/// A convolution's gradients to its input and its weight, each only where `wants` says.
fn conv2d_grads(
    x: &Tensor,
    weight: &Tensor,
    grad: &Tensor,
    conv: &Conv2d,
    (wants_input, wants_weight): (bool, bool),
) -> Result<InputGrads> {
    let gradient = |wrt| conv2d_backward(wrt, x, weight, grad, conv, ConvAlgorithm::Auto);
    let input = wants_input.then(|| gradient(ConvGradient::Input));
    let weight = wants_weight.then(|| gradient(ConvGradient::Weight));
    Ok(vec![input.transpose()?, weight.transpose()?])
}

impl Tape {
    /// Records a one-input op whose backward is `backward(saved, grad)`, `saved` being what
    /// it reads: the forward's input or its output.
    fn record_unary(
        &self,
        x: &Var,
        output: Tensor,
        saved: Tensor,
        backward: fn(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<Var> {
        self.record(output, &[x], move |grad| {
            Ok(vec![Some(backward(&saved, grad)?)])
        })
    }

    /// PyTorch's conv2d.
    pub fn conv2d(&self, x: &Var, weight: &Var, bias: Option<&Var>, conv: &Conv2d) -> Result<Var> {
        let out = conv2d(&x.tensor, &weight.tensor, bias.map(|b| &b.tensor), conv)?;
        let (x_t, w_t, conv) = (x.tensor.clone(), weight.tensor.clone(), *conv);
        let wants = (x.requires_grad(), weight.requires_grad());
        let mut inputs = vec![x, weight];
        inputs.extend(bias);
        let has_bias = bias.is_some();
        self.record(out, &inputs, move |grad| {
            let mut grads = conv2d_grads(&x_t, &w_t, grad, &conv, wants)?;
            if has_bias {
                grads.push(Some(conv2d_backward_bias(grad)?));
            }
            Ok(grads)
        })
    }

    /// `conv2d` written into channels `first ..` of `dest` [1, C, H, W] (a DenseNet block's
    /// buffer); the value is that channel slice of `dest`, a view. Batch 1 only, and the slice
    /// must start at an aligned offset (see [`channel_slice`]).
    pub(crate) fn conv2d_into_channels(
        &self,
        x: &Var,
        weight: &Var,
        conv: &Conv2d,
        dest: &Tensor,
        first: usize,
    ) -> Result<Var> {
        conv2d_into(&x.tensor, &weight.tensor, None, conv, dest, first)?;
        let out = channel_slice(dest, first, weight.dims()[0])?;
        let (x_t, w_t, conv) = (x.tensor.clone(), weight.tensor.clone(), *conv);
        let wants = (x.requires_grad(), weight.requires_grad());
        self.record(out, &[x, weight], move |grad| {
            conv2d_grads(&x_t, &w_t, grad, &conv, wants)
        })
    }

    /// Copies `x` [1, C, H, W] into channels `first ..` of `dest`; the value is that slice.
    pub(crate) fn copy_into_channels(&self, x: &Var, dest: &Tensor, first: usize) -> Result<Var> {
        let out = channel_slice(dest, first, x.dims()[1])?;
        copy_into(&x.tensor, 0, &out, 0, x.tensor.numel())?;
        self.record(out, &[x], |grad| Ok(vec![Some(grad.clone())]))
    }

    /// The consecutive channel slices `parts` of `dest` (from channel 0) seen as one value,
    /// without copying: torch.cat(parts, 1) when the parts already lie side by side (as views
    /// at batch 1, or as copies filling all of `dest`). The backward splits the gradient: into
    /// views of it at batch 1 where every slice starts at a bindable offset, else into copies.
    pub(crate) fn join_channel_slices(&self, parts: &[&Var], dest: &Tensor) -> Result<Var> {
        let channels: Vec<usize> = parts.iter().map(|var| var.dims()[1]).collect();
        let total = channels.iter().sum();
        let out = match dest.dims().get(1) == Some(&total) {
            true => dest.clone(),
            false => channel_slice(dest, 0, total)?,
        };
        self.record(out, parts, move |grad| {
            let grads = match channel_slices_bindable(grad, &channels) {
                true => channel_slices(grad, &channels)?,
                false => split_channels(grad, &channels)?,
            };
            Ok(grads.into_iter().map(Some).collect())
        })
    }

    /// relu(batch_norm(torch.cat(parts, 1))) where `buffer` [N, C, H, W] holds the parts side
    /// by side from channel 0 (a DenseNet block's buffer: at batch 1 its channel slices, else
    /// copies of them). The norm reads the parts there, in training mode its batch statistics
    /// too, and its backward writes each part's gradient by itself: no concatenation, and no
    /// split of its gradient. In eval mode with constant BN parameters the backward is the
    /// input gradient alone. In training mode `known` may give the batch statistics of the
    /// parts' channels (a DenseNet block computes each part's once, for every later layer).
    pub(crate) fn batch_norm_relu_of_parts(
        &self,
        parts: &[&Var],
        buffer: &Tensor,
        weight: &Var,
        bias: &Var,
        state: &BatchNormState,
        known: Option<&BatchStatistics>,
    ) -> Result<Var> {
        let Some(first) = parts.first() else {
            return Err(Error::invalid(
                "batch_norm_relu_of_parts",
                "needs at least one part",
            ));
        };
        let channels: Vec<usize> = parts
            .iter()
            .map(|var| var.dims().get(1).copied().unwrap_or(0))
            .collect();
        let total = channels.iter().sum();
        let holds_parts = match (first.dims(), buffer.dims()) {
            (&[n, _, h, w], &[bn, bc, bh, bw]) => (bn, bh, bw) == (n, h, w) && total <= bc,
            _ => false,
        };
        if !holds_parts {
            return Err(Error::invalid(
                "batch_norm_relu_of_parts",
                format!(
                    "buffer {:?} cannot hold parts of {channels:?} channels",
                    buffer.dims()
                ),
            ));
        }
        let (mean, variance) = normalising_statistics(buffer, total, state, known)?;
        // The pass normalises with the statistics it is given: in training mode the batch's.
        let bn = EvalBatchNorm {
            mean: &mean,
            variance: &variance,
            weight: &weight.tensor,
            bias: &bias.tensor,
            eps: state.eps,
        };
        let relu = Epilogue {
            residual: None,
            relu: true,
        };
        let out = bn.forward_prefix(buffer, total, relu)?;
        let mut inputs = parts.to_vec();
        inputs.extend([weight, bias]);
        if !self.records_backward(&inputs) {
            return self.untracked(out, &inputs);
        }
        let (y_t, w_t, eps, guided) = (
            out.clone(),
            weight.tensor.clone(),
            state.eps,
            self.is_guided(),
        );
        let training = state.training;
        // Each part's gradient so far is added where its next term is written (every later
        // layer of the block reads the part): the rules accumulate.
        if !training && !weight.requires_grad() && !bias.requires_grad() {
            return self.record_accumulating(out, &inputs, move |grad, so_far| {
                let relu = ReluBackward {
                    output: &y_t,
                    guided,
                };
                let tensors = [&mean, &variance, &w_t];
                let parts = parts_with_gradients_so_far(&channels, &so_far);
                let grads =
                    batch_norm_backward_input_through_relu_parts(grad, relu, tensors, eps, &parts)?;
                // The parts' gradients; the parameters' slots stay empty.
                Ok(grads.into_iter().map(Some).chain([None, None]).collect())
            });
        }
        let buffer = buffer.clone();
        self.record_accumulating(out, &inputs, move |grad, so_far| {
            let relu = ReluBackward {
                output: &y_t,
                guided,
            };
            let tensors = [&mean, &variance, &w_t];
            let parts = parts_with_gradients_so_far(&channels, &so_far);
            let parameters_so_far = &so_far[channels.len()..];
            let grads =
                batch_norm_backward_of_parts(&buffer, grad, relu, tensors, eps, training, &parts)?;
            let mut all: InputGrads = grads.grad_inputs.into_iter().map(Some).collect();
            for (grad, so_far) in [grads.grad_weight, grads.grad_bias]
                .into_iter()
                .zip(parameters_so_far)
            {
                all.push(Some(match so_far {
                    Some(so_far) => add(&grad, so_far)?,
                    None => grad,
                }));
            }
            Ok(all)
        })
    }

    /// BatchNorm2d in either mode (see [`BatchNormState`]): `batch_norm_then` with no epilogue.
    pub fn batch_norm(
        &self,
        x: &Var,
        weight: &Var,
        bias: &Var,
        state: &BatchNormState,
    ) -> Result<Var> {
        self.batch_norm_then(x, weight, bias, state, None, false)
    }

    /// relu?(batch_norm(x) + residual?) in one pass over the activations (the epilogue of the
    /// normalisation) where the three ops would each make one; in training mode after the
    /// batch statistics.
    pub fn batch_norm_then(
        &self,
        x: &Var,
        weight: &Var,
        bias: &Var,
        state: &BatchNormState,
        residual: Option<&Var>,
        relu_after: bool,
    ) -> Result<Var> {
        let training = state.training;
        let channels = x.dims().get(1).copied().unwrap_or(0);
        let (mean, variance) = normalising_statistics(&x.tensor, channels, state, None)?;
        let epilogue = Epilogue {
            residual: residual.map(|r| &r.tensor),
            relu: relu_after,
        };
        let out = batch_norm_forward(
            &x.tensor,
            &mean,
            &variance,
            &weight.tensor,
            &bias.tensor,
            state.eps,
            epilogue,
        )?;
        let (x_t, w_t, eps) = (x.tensor.clone(), weight.tensor.clone(), state.eps);
        // The ReLU's output, which its backward reads; without a ReLU nothing keeps it alive.
        let relu_output = relu_after.then(|| out.clone());
        let guided = self.is_guided();
        let parameters_want_grads = weight.requires_grad() || bias.requires_grad();
        let mut inputs = vec![x, weight, bias];
        inputs.extend(residual);
        let has_residual = residual.is_some();
        let saliency_relu = relu_output
            .clone()
            .filter(|_| !training && !parameters_want_grads);
        if let Some(y_t) = saliency_relu {
            // Saliency: no per-channel reductions for the weight and bias; the ReLU's backward,
            // and the sum of the output's two gradients where it is used twice (a residual
            // block's output), in the same pass as BN's.
            return self.record_summing(out, &inputs, move |grad, grad_also| {
                let relu = ReluBackward {
                    output: &y_t,
                    guided,
                };
                let statistics = [&mean, &variance, &w_t];
                let (grad_input, grad_residual) = batch_norm_backward_input_through_relu(
                    grad,
                    grad_also,
                    relu,
                    has_residual,
                    statistics,
                    eps,
                )?;
                Ok(vec![Some(grad_input), None, None, grad_residual])
            });
        }
        self.record(out, &inputs, move |grad| {
            if !training && !parameters_want_grads {
                // Saliency without a ReLU: no per-channel reductions for the weight and bias.
                let grad_input = batch_norm_backward_input(grad, &mean, &variance, &w_t, eps)?;
                return Ok(vec![Some(grad_input), None, None, Some(grad.clone())]);
            }
            // Through the ReLU (masked where the output is 0, i.e. where its input was ≤ 0;
            // guided backprop also drops negative gradients) in BN's own passes: the
            // residual's gradient is the masked one.
            let (grads, grad_residual) = match &relu_output {
                None => {
                    let grads =
                        batch_norm_backward(&x_t, grad, &mean, &variance, &w_t, eps, training)?;
                    (grads, Some(grad.clone()))
                }
                Some(y_t) => batch_norm_backward_through_relu(
                    &x_t,
                    grad,
                    ReluBackward {
                        output: y_t,
                        guided,
                    },
                    has_residual,
                    [&mean, &variance, &w_t],
                    eps,
                    training,
                )?,
            };
            Ok(vec![
                Some(grads.grad_input),
                Some(grads.grad_weight),
                Some(grads.grad_bias),
                grad_residual,
            ])
        })
    }

    /// relu?(batch_norm(conv2d(x, weight) + conv_bias?) + residual?): as one op in eval mode
    /// when neither the convolution's nor BN's parameters want gradients (inference,
    /// saliency), whose convolution stores the final values where it can (`conv2d_then`) and
    /// whose backward gives the input's and the residual's gradients; otherwise `conv2d` then
    /// `batch_norm_then`, recorded as two ops.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_batch_norm_then(
        &self,
        x: &Var,
        weight: &Var,
        conv_bias: Option<&Var>,
        conv: &Conv2d,
        bn_weight: &Var,
        bn_bias: &Var,
        state: &BatchNormState,
        residual: Option<&Var>,
        relu_after: bool,
    ) -> Result<Var> {
        let mut parameters = vec![weight, bn_weight, bn_bias];
        parameters.extend(conv_bias);
        let parameters_want_grads = parameters.iter().any(|var| var.requires_grad());
        if state.training || parameters_want_grads {
            let y = self.conv2d(x, weight, conv_bias, conv)?;
            return self.batch_norm_then(&y, bn_weight, bn_bias, state, residual, relu_after);
        }
        let (mean, variance) = (state.running_mean.clone(), state.running_var.clone());
        let bn = EvalBatchNorm {
            mean: &mean,
            variance: &variance,
            weight: &bn_weight.tensor,
            bias: &bn_bias.tensor,
            eps: state.eps,
        };
        let then = Epilogue {
            residual: residual.map(|r| &r.tensor),
            relu: relu_after,
        };
        let affine = ChannelAffine::BatchNorm {
            bn: &bn,
            conv_bias: conv_bias.map(|b| &b.tensor),
        };
        let out = conv2d_then(&x.tensor, &weight.tensor, conv, affine, then)?;
        // The parameters take the slots between the input and the residual; none gets a
        // gradient.
        let mut inputs = vec![x];
        inputs.extend(&parameters);
        inputs.extend(residual);
        let frozen = parameters.len();
        let grads = move |input: Option<Tensor>, residual: Option<Tensor>| {
            let mut grads = vec![input];
            grads.extend(std::iter::repeat_n(None, frozen));
            grads.push(residual);
            grads
        };
        if !self.records_backward(&inputs) {
            return self.untracked(out, &inputs);
        }
        let (x_t, w_t, bn_w, eps, conv) = (
            x.tensor.clone(),
            weight.tensor.clone(),
            bn_weight.tensor.clone(),
            state.eps,
            *conv,
        );
        let wants_input = x.requires_grad();
        let input_grad = move |grad_conv: &Tensor| {
            let gradient = || {
                conv2d_backward(
                    ConvGradient::Input,
                    &x_t,
                    &w_t,
                    grad_conv,
                    &conv,
                    ConvAlgorithm::Auto,
                )
            };
            wants_input.then(gradient).transpose()
        };
        if !relu_after {
            return self.record(out, &inputs, move |grad| {
                let grad_conv = batch_norm_backward_input(grad, &mean, &variance, &bn_w, eps)?;
                Ok(grads(input_grad(&grad_conv)?, Some(grad.clone())))
            });
        }
        // Through the ReLU and the BatchNorm in one pass (adding the output's two gradients
        // where it is used twice), then the convolution's backward to its input.
        let (y_t, guided, has_residual) = (out.clone(), self.is_guided(), residual.is_some());
        self.record_summing(out, &inputs, move |grad, grad_also| {
            let relu = ReluBackward {
                output: &y_t,
                guided,
            };
            let (grad_conv, grad_residual) = batch_norm_backward_input_through_relu(
                grad,
                grad_also,
                relu,
                has_residual,
                [&mean, &variance, &bn_w],
                eps,
            )?;
            Ok(grads(input_grad(&grad_conv)?, grad_residual))
        })
    }

    /// relu(conv2d(x, weight) + bias) as one op: the convolution's output pass adds the bias
    /// and applies the ReLU where it can (`conv2d_then`), so no pass of their own follows it
    /// (VGG's layers). The backward takes the gradient through the ReLU (from the output:
    /// positive exactly where the ReLU's input was), then through the convolution.
    pub fn conv2d_relu(&self, x: &Var, weight: &Var, bias: &Var, conv: &Conv2d) -> Result<Var> {
        let then = Epilogue {
            residual: None,
            relu: true,
        };
        let affine = ChannelAffine::Bias(&bias.tensor);
        let out = conv2d_then(&x.tensor, &weight.tensor, conv, affine, then)?;
        let inputs = [x, weight, bias];
        if !self.records_backward(&inputs) {
            return self.untracked(out, &inputs);
        }
        let (x_t, w_t, y_t, conv) = (x.tensor.clone(), weight.tensor.clone(), out.clone(), *conv);
        let wants = (x.requires_grad(), weight.requires_grad());
        let wants_bias = bias.requires_grad();
        let guided = self.is_guided();
        self.record(out, &inputs, move |grad| {
            // Guided backprop passes relu(grad) where the ReLU passed its input.
            let incoming = if guided { relu(grad)? } else { grad.clone() };
            let grad_conv = relu_backward(&y_t, &incoming)?;
            let mut grads = conv2d_grads(&x_t, &w_t, &grad_conv, &conv, wants)?;
            grads.push(match wants_bias {
                true => Some(conv2d_backward_bias(&grad_conv)?),
                false => None,
            });
            Ok(grads)
        })
    }

    /// y[n, c] = x[n, c] · scale[c] + shift[c] with constant per-channel `scale` and `shift`
    /// (GoogLeNet's and Inception v3's transform_input). Runs on the eval-mode batch-norm
    /// kernels with mean 0, variance 1 and eps 0, which compute exactly that.
    pub fn channel_affine(&self, x: &Var, scale: &[f32], shift: &[f32]) -> Result<Var> {
        let gpu = x.tensor.gpu();
        let channels = scale.len();
        if shift.len() != channels || x.dims().get(1) != Some(&channels) {
            return Err(Error::invalid(
                "channel_affine",
                format!(
                    "{} scales and {} shifts for an input of shape {:?}",
                    channels,
                    shift.len(),
                    x.dims()
                ),
            ));
        }
        let mean = Tensor::zeros(gpu, [channels])?;
        let variance = Tensor::full(gpu, [channels], 1.0)?;
        let scale = Tensor::from_slice(gpu, [channels], scale)?;
        let shift = Tensor::from_slice(gpu, [channels], shift)?;
        let none = Epilogue::default();
        let out = batch_norm_forward(&x.tensor, &mean, &variance, &scale, &shift, 0.0, none)?;
        self.record(out, &[x], move |grad| {
            let grad_input = batch_norm_backward_input(grad, &mean, &variance, &scale, 0.0)?;
            Ok(vec![Some(grad_input)])
        })
    }

    /// y = x · weightᵀ + bias on [batch, features].
    pub fn linear(&self, x: &Var, weight: &Var, bias: Option<&Var>) -> Result<Var> {
        let out = linear(&x.tensor, &weight.tensor, bias.map(|b| &b.tensor))?;
        let (x_t, w_t, has_bias) = (x.tensor.clone(), weight.tensor.clone(), bias.is_some());
        let mut inputs = vec![x, weight];
        inputs.extend(bias);
        let parameters_want_grads =
            weight.requires_grad() || bias.is_some_and(|bias| bias.requires_grad());
        self.record(out, &inputs, move |grad| {
            if !parameters_want_grads {
                // Saliency: the input's gradient only, never the weight-sized one.
                return Ok(vec![Some(linear_backward_input(&w_t, grad)?)]);
            }
            let grads = linear_backward(&x_t, &w_t, grad, has_bias)?;
            let mut result = vec![Some(grads.grad_input), Some(grads.grad_weight)];
            if has_bias {
                result.push(grads.grad_bias);
            }
            Ok(result)
        })
    }

    pub fn relu(&self, x: &Var) -> Result<Var> {
        let out = relu(&x.tensor)?;
        let x_t = x.tensor.clone();
        let guided = self.is_guided();
        self.record(out, &[x], move |grad| {
            // Guided backprop passes relu(grad) where x > 0.
            let incoming = if guided { relu(grad)? } else { grad.clone() };
            Ok(vec![Some(relu_backward(&x_t, &incoming)?)])
        })
    }

    /// The logistic sigmoid; its backward reads the output, as PyTorch's does.
    pub fn sigmoid(&self, x: &Var) -> Result<Var> {
        let y = sigmoid(&x.tensor)?;
        self.record_unary(x, y.clone(), y, sigmoid_backward)
    }

    /// SiLU (swish), x · sigmoid(x); its backward reads the input.
    pub fn silu(&self, x: &Var) -> Result<Var> {
        let out = silu(&x.tensor)?;
        self.record_unary(x, out, x.tensor.clone(), silu_backward)
    }

    /// a + b (same shapes): the residual add.
    pub fn add(&self, a: &Var, b: &Var) -> Result<Var> {
        let out = add(&a.tensor, &b.tensor)?;
        self.record(out, &[a, b], |grad| {
            Ok(vec![Some(grad.clone()), Some(grad.clone())])
        })
    }

    /// alpha · x.
    pub fn scale(&self, x: &Var, alpha: f32) -> Result<Var> {
        let out = scale(&x.tensor, alpha)?;
        self.record(out, &[x], move |grad| Ok(vec![Some(scale(grad, alpha)?)]))
    }

    /// PyTorch's max_pool2d. Where a backward will follow, the forward also keeps each
    /// window's maximum, so the backward neither looks at the windows again nor holds `x`.
    pub fn max_pool2d(&self, x: &Var, pool: &Pool2d) -> Result<Var> {
        if !self.records_backward(&[x]) {
            return self.untracked(max_pool2d(&x.tensor, pool)?, &[x]);
        }
        let (out, argmax) = max_pool2d_with_argmax(&x.tensor, pool)?;
        let (input_dims, pool) = (x.dims().to_vec(), *pool);
        self.record(out, &[x], move |grad| {
            let grad_input = max_pool2d_backward_at(&argmax, &input_dims, grad, &pool)?;
            Ok(vec![Some(grad_input)])
        })
    }

    pub fn avg_pool2d(&self, x: &Var, pool: &Pool2d, count_include_pad: bool) -> Result<Var> {
        let out = avg_pool2d(&x.tensor, pool, count_include_pad)?;
        let (x_t, pool) = (x.tensor.clone(), *pool);
        self.record(out, &[x], move |grad| {
            Ok(vec![Some(avg_pool2d_backward(
                &x_t,
                grad,
                &pool,
                count_include_pad,
            )?)])
        })
    }

    pub fn adaptive_avg_pool2d(&self, x: &Var, output: [usize; 2]) -> Result<Var> {
        let out = adaptive_avg_pool2d(&x.tensor, output)?;
        self.record_unary(x, out, x.tensor.clone(), adaptive_avg_pool2d_backward)
    }

    /// Inverted dropout with probability `p` in training; the identity otherwise. The mask is a
    /// hash of `seed` and the element index, so the backward replays it.
    pub fn dropout(&self, x: &Var, p: f32, seed: u32, training: bool) -> Result<Var> {
        if !training || p == 0.0 {
            return Ok(x.clone());
        }
        let out = dropout(&x.tensor, p, seed)?;
        self.record(out, &[x], move |grad| {
            Ok(vec![Some(dropout(grad, p, seed)?)])
        })
    }

    /// torch.cat(inputs, dim=1) for NCHW values.
    pub fn concat_channels(&self, inputs: &[&Var]) -> Result<Var> {
        let tensors: Vec<&Tensor> = inputs.iter().map(|var| &var.tensor).collect();
        let out = concat_channels(&tensors)?;
        let channels: Vec<usize> = inputs.iter().map(|var| var.dims()[1]).collect();
        self.record(out, inputs, move |grad| {
            Ok(split_channels(grad, &channels)?
                .into_iter()
                .map(Some)
                .collect())
        })
    }

    /// [N, ...] → [N, product of the rest] (torch.flatten(x, 1)).
    pub fn flatten(&self, x: &Var) -> Result<Var> {
        let dims = x.dims().to_vec();
        let Some((&batch, rest)) = dims.split_first() else {
            return Err(Error::invalid(
                "flatten",
                "needs a value of rank at least 1",
            ));
        };
        let out = x.tensor.reshape([batch, rest.iter().product()])?;
        self.record(out, &[x], move |grad| {
            Ok(vec![Some(grad.reshape(dims.clone())?)])
        })
    }

    /// softmax over the last axis.
    pub fn softmax(&self, x: &Var) -> Result<Var> {
        let y = softmax(&x.tensor)?;
        self.record_unary(x, y.clone(), y, softmax_backward)
    }

    /// log_softmax over the last axis.
    pub fn log_softmax(&self, x: &Var) -> Result<Var> {
        let y = log_softmax(&x.tensor)?;
        self.record_unary(x, y.clone(), y, log_softmax_backward)
    }

    /// PyTorch's nll_loss with reduction 'mean' (weighted by `class_weight` when given): a
    /// one-element value.
    pub fn nll_loss(
        &self,
        log_probs: &Var,
        targets: &[usize],
        class_weight: Option<&Tensor>,
    ) -> Result<Var> {
        let loss = nll_loss(&log_probs.tensor, targets, class_weight)?;
        let out = loss.loss.clone();
        let log_probs_t = log_probs.tensor.clone();
        self.record(out, &[log_probs], move |grad| {
            Ok(vec![Some(nll_loss_backward(&log_probs_t, &loss, grad)?)])
        })
    }

    /// PyTorch's cross_entropy on logits [batch, classes]: log_softmax, then nll_loss.
    pub fn cross_entropy(
        &self,
        logits: &Var,
        targets: &[usize],
        class_weight: Option<&Tensor>,
    ) -> Result<Var> {
        let log_probs = self.log_softmax(logits)?;
        self.nll_loss(&log_probs, targets, class_weight)
    }
}
