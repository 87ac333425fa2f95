//! The layers with parameters or state. Parameter-free ops (ReLU, pools, concatenation,
//! flatten, residual add) are called on the tape directly: `f.tape.relu(&x)`.

use super::{Forward, Init, ParamStore};
use crate::autograd::{BatchNormState, Var};
use crate::error::Result;
use crate::kernels::batchnorm::BatchStatistics;
use crate::kernels::conv2d::Conv2d as ConvGeometry;
use crate::tensor::Tensor;

/// nn.Conv2d: `{name}.weight` [C_out, C_in/groups, KH, KW] and optionally `{name}.bias`.
pub struct Conv2d {
    pub name: String,
    pub geometry: ConvGeometry,
    pub bias: bool,
}

impl Conv2d {
    /// Registers the parameters: the weight from `init` (torchvision's models use
    /// [`Init::KaimingNormalFanOut`]), the bias at 0 as torchvision's models set it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        geometry: ConvGeometry,
        bias: bool,
        init: Init,
        seed: u64,
    ) -> Result<Self> {
        let dims = [
            out_channels,
            in_channels / geometry.groups.max(1),
            kernel[0],
            kernel[1],
        ];
        store.declare_parameter(&format!("{name}.weight"), &dims, init, seed)?;
        if bias {
            store.declare_parameter(
                &format!("{name}.bias"),
                &[out_channels],
                Init::Constant(0.0),
                seed,
            )?;
        }
        Ok(Self {
            name: name.to_string(),
            geometry,
            bias,
        })
    }

    pub fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        let _scope = f.scope(&self.name);
        let (weight, bias) = self.parameters(f)?;
        f.tape.conv2d(x, &weight, bias.as_ref(), &self.geometry)
    }

    /// relu(self(x)), the ReLU layer named `relu_name`: for a convolution with a bias, one op
    /// whose output pass adds the bias and applies the ReLU where it can
    /// (`Tape::conv2d_relu`), charged to the convolution's layer in a profile; without one,
    /// the convolution, then the ReLU, each charged to its own layer.
    pub fn forward_relu(&self, f: &Forward, x: &Var, relu_name: &str) -> Result<Var> {
        let (weight, Some(bias)) = self.parameters(f)? else {
            let y = self.forward(f, x)?;
            let _scope = f.scope(relu_name);
            return f.tape.relu(&y);
        };
        let _scope = f.scope(&self.name);
        f.tape.conv2d_relu(x, &weight, &bias, &self.geometry)
    }

    /// The weight and, where the layer has one, the bias.
    fn parameters(&self, f: &Forward) -> Result<(Var, Option<Var>)> {
        let weight = f.parameter(&format!("{}.weight", self.name))?;
        let bias = match self.bias {
            true => Some(f.parameter(&format!("{}.bias", self.name))?),
            false => None,
        };
        Ok((weight, bias))
    }

    /// The convolution (without bias) written into channels `first ..` of `dest` [1, C, H, W]
    /// instead of a fresh tensor: DenseNet's layers fill their slice of the block's buffer.
    pub(crate) fn forward_into(
        &self,
        f: &Forward,
        x: &Var,
        dest: &Tensor,
        first: usize,
    ) -> Result<Var> {
        let _scope = f.scope(&self.name);
        let weight = f.parameter(&format!("{}.weight", self.name))?;
        f.tape
            .conv2d_into_channels(x, &weight, &self.geometry, dest, first)
    }
}

/// nn.BatchNorm2d: `{name}.weight` (1) and `{name}.bias` (0) trainable;
/// `{name}.running_mean` (0) and `{name}.running_var` (1) buffers; momentum 0.1.
pub struct BatchNorm2d {
    pub name: String,
    pub eps: f32,
    pub momentum: f32,
}

impl BatchNorm2d {
    /// `eps` is 1e-5 in PyTorch, 1e-3 in GoogLeNet's and Inception v3's BasicConv2d.
    pub fn new(store: &mut ParamStore, name: &str, channels: usize, eps: f32) -> Result<Self> {
        for (suffix, value, trainable) in [
            ("weight", 1.0, true),
            ("bias", 0.0, true),
            ("running_mean", 0.0, false),
            ("running_var", 1.0, false),
        ] {
            let full = format!("{name}.{suffix}");
            match trainable {
                true => store.declare_parameter(&full, &[channels], Init::Constant(value), 0)?,
                false => store.declare_buffer(&full, &[channels], Init::Constant(value))?,
            }
        }
        Ok(Self {
            name: name.to_string(),
            eps,
            momentum: 0.1,
        })
    }

    pub fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        let _scope = f.scope(&self.name);
        let weight = f.parameter(&format!("{}.weight", self.name))?;
        let bias = f.parameter(&format!("{}.bias", self.name))?;
        f.tape.batch_norm(x, &weight, &bias, &self.state(f)?)
    }

    /// relu?(self(x) + residual?): the normalisation, add and ReLU in one pass (see
    /// `Tape::batch_norm_then`). Charged to this layer in a profile.
    pub fn forward_then(
        &self,
        f: &Forward,
        x: &Var,
        residual: Option<&Var>,
        relu: bool,
    ) -> Result<Var> {
        let _scope = f.scope(&self.name);
        let weight = f.parameter(&format!("{}.weight", self.name))?;
        let bias = f.parameter(&format!("{}.bias", self.name))?;
        f.tape
            .batch_norm_then(x, &weight, &bias, &self.state(f)?, residual, relu)
    }

    /// relu?(self(conv(x)) + residual?): in eval mode, with no parameter wanting a gradient,
    /// one op whose convolution stores the final values where it can
    /// (`Tape::conv2d_batch_norm_then`; the convolution's bias, where it has one, folded in
    /// too), charged to the convolution's layer in a profile; otherwise (training mode,
    /// trainable parameters) the convolution, then `forward_then`, each charged to its own
    /// layer.
    pub fn after_conv(
        &self,
        f: &Forward,
        conv: &Conv2d,
        x: &Var,
        residual: Option<&Var>,
        relu: bool,
    ) -> Result<Var> {
        if f.training() {
            return self.forward_then(f, &conv.forward(f, x)?, residual, relu);
        }
        let (conv_weight, conv_bias) = conv.parameters(f)?;
        let weight = f.parameter(&format!("{}.weight", self.name))?;
        let bias = f.parameter(&format!("{}.bias", self.name))?;
        let mut parameters = vec![&conv_weight, &weight, &bias];
        parameters.extend(&conv_bias);
        if parameters.iter().any(|p| p.requires_grad()) {
            return self.forward_then(f, &conv.forward(f, x)?, residual, relu);
        }
        let _scope = f.scope(&conv.name);
        f.tape.conv2d_batch_norm_then(
            x,
            &conv_weight,
            conv_bias.as_ref(),
            &conv.geometry,
            &weight,
            &bias,
            &self.state(f)?,
            residual,
            relu,
        )
    }

    /// relu(self(torch.cat(parts, 1))), the parts lying side by side in `buffer` from channel
    /// 0 (`Tape::batch_norm_relu_of_parts`: a DenseNet layer's first norm, which reads them
    /// there), in training mode with the parts' batch statistics where `known`.
    pub(crate) fn relu_of_parts(
        &self,
        f: &Forward,
        parts: &[&Var],
        buffer: &Tensor,
        known: Option<&BatchStatistics>,
    ) -> Result<Var> {
        let _scope = f.scope(&self.name);
        let weight = f.parameter(&format!("{}.weight", self.name))?;
        let bias = f.parameter(&format!("{}.bias", self.name))?;
        f.tape
            .batch_norm_relu_of_parts(parts, buffer, &weight, &bias, &self.state(f)?, known)
    }

    fn state<'a>(&self, f: &Forward<'a>) -> Result<BatchNormState<'a>> {
        Ok(BatchNormState {
            running_mean: f.store.buffer(&format!("{}.running_mean", self.name))?,
            running_var: f.store.buffer(&format!("{}.running_var", self.name))?,
            momentum: self.momentum,
            eps: self.eps,
            training: f.training(),
        })
    }
}

/// nn.Linear: `{name}.weight` [out, in] and `{name}.bias` [out].
pub struct Linear {
    pub name: String,
}

impl Linear {
    /// With `weight_init` = None, PyTorch's default U(±1/√in) for weight and bias; with Some,
    /// that weight init and a zero bias (VGG: N(0, 0.01²)).
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        in_features: usize,
        out_features: usize,
        weight_init: Option<Init>,
        seed: u64,
    ) -> Result<Self> {
        let default = Init::DefaultFanIn {
            fan_in: in_features,
        };
        let (weight, bias) = match weight_init {
            Some(init) => (init, Init::Constant(0.0)),
            None => (default, default),
        };
        store.declare_parameter(
            &format!("{name}.weight"),
            &[out_features, in_features],
            weight,
            seed,
        )?;
        store.declare_parameter(&format!("{name}.bias"), &[out_features], bias, seed)?;
        Ok(Self {
            name: name.to_string(),
        })
    }

    pub fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        let _scope = f.scope(&self.name);
        let weight = f.parameter(&format!("{}.weight", self.name))?;
        let bias = f.parameter(&format!("{}.bias", self.name))?;
        f.tape.linear(x, &weight, Some(&bias))
    }
}

/// nn.Dropout: active in train mode only.
pub struct Dropout {
    pub p: f32,
}

impl Dropout {
    pub fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        f.tape
            .dropout(x, self.p, f.next_dropout_seed(), f.training())
    }
}
