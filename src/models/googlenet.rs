//! GoogLeNet (Szegedy et al. 2014) as torchvision builds it: BasicConv2d units (BN eps 0.001),
//! max pools with ceil_mode=True, nine Inception modules, aux heads aux1 / aux2 used only in
//! training, dropout 0.2 before `fc`, optional transform_input.

use super::blocks::{BasicConv2d, transform_input};
use super::{Classifier, ModelConfig};
use crate::autograd::Var;
use crate::error::Result;
use crate::kernels::pool::Pool2d;
use crate::nn::{Dropout, Forward, Init, Linear, ParamStore};

const INIT: Init = Init::TruncatedNormal { std: 0.01 };

/// Four branches concatenated: 1×1; 1×1 → 3×3; 1×1 → 3×3 (torchvision's "5×5" branch really
/// is 3×3, a known quirk of its port that the weights depend on); 3×3 max pool → 1×1.
struct Inception {
    name: String,
    branch1: BasicConv2d,
    branch2: [BasicConv2d; 2],
    branch3: [BasicConv2d; 2],
    branch4: BasicConv2d,
}

impl Inception {
    #[allow(clippy::too_many_arguments)]
    fn new(
        store: &mut ParamStore,
        name: &str,
        in_channels: usize,
        ch1x1: usize,
        ch3x3red: usize,
        ch3x3: usize,
        ch5x5red: usize,
        ch5x5: usize,
        pool_proj: usize,
        seed: u64,
    ) -> Result<Self> {
        let n = |part: &str| format!("{name}.{part}");
        Ok(Self {
            name: name.to_string(),
            branch1: BasicConv2d::square(
                store,
                &n("branch1"),
                in_channels,
                ch1x1,
                1,
                1,
                0,
                INIT,
                seed,
            )?,
            branch2: [
                BasicConv2d::square(
                    store,
                    &n("branch2.0"),
                    in_channels,
                    ch3x3red,
                    1,
                    1,
                    0,
                    INIT,
                    seed,
                )?,
                BasicConv2d::square(store, &n("branch2.1"), ch3x3red, ch3x3, 3, 1, 1, INIT, seed)?,
            ],
            branch3: [
                BasicConv2d::square(
                    store,
                    &n("branch3.0"),
                    in_channels,
                    ch5x5red,
                    1,
                    1,
                    0,
                    INIT,
                    seed,
                )?,
                BasicConv2d::square(store, &n("branch3.1"), ch5x5red, ch5x5, 3, 1, 1, INIT, seed)?,
            ],
            branch4: BasicConv2d::square(
                store,
                &n("branch4.1"),
                in_channels,
                pool_proj,
                1,
                1,
                0,
                INIT,
                seed,
            )?,
        })
    }

    fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        let b1 = self.branch1.forward(f, x)?;
        let b2 = self.branch2[1].forward(f, &self.branch2[0].forward(f, x)?)?;
        let b3 = self.branch3[1].forward(f, &self.branch3[0].forward(f, x)?)?;
        let pooled = f
            .tape
            .max_pool2d(x, &Pool2d::new(3).stride(1).padding(1).ceil_mode(true))?;
        let b4 = self.branch4.forward(f, &pooled)?;
        let out = f.tape.concat_channels(&[&b1, &b2, &b3, &b4])?;
        f.mark(&self.name, &out);
        Ok(out)
    }
}

/// adaptive avg pool to 4×4 → 1×1 BasicConv2d to 128 → fc1 (2048 → 1024) → ReLU → dropout 0.7
/// → fc2.
struct InceptionAux {
    dropout: Dropout,
    conv: BasicConv2d,
    fc1: Linear,
    fc2: Linear,
}

impl InceptionAux {
    fn new(
        store: &mut ParamStore,
        name: &str,
        in_channels: usize,
        classes: usize,
        dropout: f32,
        seed: u64,
    ) -> Result<Self> {
        Ok(Self {
            dropout: Dropout { p: dropout },
            conv: BasicConv2d::square(
                store,
                &format!("{name}.conv"),
                in_channels,
                128,
                1,
                1,
                0,
                INIT,
                seed,
            )?,
            fc1: Linear::new(store, &format!("{name}.fc1"), 2048, 1024, Some(INIT), seed)?,
            fc2: Linear::new(
                store,
                &format!("{name}.fc2"),
                1024,
                classes,
                Some(INIT),
                seed,
            )?,
        })
    }

    fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        let x = f.tape.adaptive_avg_pool2d(x, [4, 4])?;
        let x = f.tape.flatten(&self.conv.forward(f, &x)?)?;
        let x = f.tape.relu(&self.fc1.forward(f, &x)?)?;
        let x = self.dropout.forward(f, &x)?;
        self.fc2.forward(f, &x)
    }
}

pub struct GoogLeNet {
    transform_input: bool,
    dropout: Dropout,
    conv1: BasicConv2d,
    conv2: BasicConv2d,
    conv3: BasicConv2d,
    inception3: [Inception; 2],
    inception4: [Inception; 5],
    inception5: [Inception; 2],
    aux1: InceptionAux,
    aux2: InceptionAux,
    fc: Linear,
}

impl GoogLeNet {
    pub fn new(store: &mut ParamStore, config: &ModelConfig) -> Result<Self> {
        let s = config.seed;
        let aux_dropout = config.dropout.unwrap_or(0.7);
        let inception = |store: &mut ParamStore, name: &str, c: [usize; 7]| {
            Inception::new(store, name, c[0], c[1], c[2], c[3], c[4], c[5], c[6], s)
        };
        Ok(Self {
            transform_input: config.transform_input,
            dropout: Dropout {
                p: config.dropout.unwrap_or(0.2),
            },
            conv1: BasicConv2d::square(store, "conv1", config.in_channels, 64, 7, 2, 3, INIT, s)?,
            conv2: BasicConv2d::square(store, "conv2", 64, 64, 1, 1, 0, INIT, s)?,
            conv3: BasicConv2d::square(store, "conv3", 64, 192, 3, 1, 1, INIT, s)?,
            inception3: [
                inception(store, "inception3a", [192, 64, 96, 128, 16, 32, 32])?,
                inception(store, "inception3b", [256, 128, 128, 192, 32, 96, 64])?,
            ],
            inception4: [
                inception(store, "inception4a", [480, 192, 96, 208, 16, 48, 64])?,
                inception(store, "inception4b", [512, 160, 112, 224, 24, 64, 64])?,
                inception(store, "inception4c", [512, 128, 128, 256, 24, 64, 64])?,
                inception(store, "inception4d", [512, 112, 144, 288, 32, 64, 64])?,
                inception(store, "inception4e", [528, 256, 160, 320, 32, 128, 128])?,
            ],
            inception5: [
                inception(store, "inception5a", [832, 256, 160, 320, 32, 128, 128])?,
                inception(store, "inception5b", [832, 384, 192, 384, 48, 128, 128])?,
            ],
            aux1: InceptionAux::new(store, "aux1", 512, config.classes, aux_dropout, s)?,
            aux2: InceptionAux::new(store, "aux2", 528, config.classes, aux_dropout, s)?,
            fc: Linear::new(store, "fc", 1024, config.classes, Some(INIT), s)?,
        })
    }
}

impl Classifier for GoogLeNet {
    fn gradcam_layer(&self) -> String {
        "inception5b".to_string()
    }

    fn forward_with_aux(&self, f: &Forward, x: &Var) -> Result<(Var, Vec<Var>)> {
        let pool = |x: &Var| {
            f.tape
                .max_pool2d(x, &Pool2d::new(3).stride(2).ceil_mode(true))
        };
        let mut x = if self.transform_input {
            transform_input(f, x)?
        } else {
            x.clone()
        };
        x = pool(&self.conv1.forward(f, &x)?)?;
        x = self.conv3.forward(f, &self.conv2.forward(f, &x)?)?;
        x = pool(&x)?;
        for block in &self.inception3 {
            x = block.forward(f, &x)?;
        }
        x = pool(&x)?;
        let mut aux = Vec::new();
        for (i, block) in self.inception4.iter().enumerate() {
            // aux1 reads inception4a's output, aux2 inception4d's; torchvision returns
            // (logits, aux2, aux1).
            if f.training() && i == 1 {
                aux.push(self.aux1.forward(f, &x)?);
            }
            if f.training() && i == 4 {
                aux.insert(0, self.aux2.forward(f, &x)?);
            }
            x = block.forward(f, &x)?;
        }
        x = f
            .tape
            .max_pool2d(&x, &Pool2d::new(2).stride(2).ceil_mode(true))?;
        for block in &self.inception5 {
            x = block.forward(f, &x)?;
        }
        x = f.tape.flatten(&f.tape.adaptive_avg_pool2d(&x, [1, 1])?)?;
        x = self.dropout.forward(f, &x)?;
        Ok((self.fc.forward(f, &x)?, aux))
    }

    fn optional_prefixes(&self) -> &'static [&'static str] {
        &["aux1.", "aux2."]
    }
}
