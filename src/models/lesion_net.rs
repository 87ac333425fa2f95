//! LesionNet: a small CNN for the synthetic lesion data set and for tests and benches of the
//! whole training path. Three conv–BN–ReLU blocks (the first two max-pooled by 2), a global
//! max pool (a small lesion anywhere should light up the image's score, where a global
//! average would dilute it) and a linear head. Names follow torchvision's `features.i` /
//! `classifier` convention.

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::kernels::conv2d::Conv2d as ConvGeometry;
use crate::kernels::pool::Pool2d;
use crate::nn::{BatchNorm2d, Conv2d, Forward, Init, Linear, ParamStore};

pub struct LesionNet {
    blocks: Vec<(Conv2d, BatchNorm2d, bool)>,
    classifier: Linear,
}

impl LesionNet {
    /// `widths` are the three blocks' output channels (e.g. [8, 16, 32]).
    pub fn new(
        store: &mut ParamStore,
        in_channels: usize,
        classes: usize,
        widths: [usize; 3],
        seed: u64,
    ) -> Result<Self> {
        let mut blocks = Vec::new();
        let mut channels = in_channels;
        // features.{4i} conv, {4i+1} BN, {4i+2} ReLU, {4i+3} max pool (absent in the last).
        for (i, &width) in widths.iter().enumerate() {
            let conv = Conv2d::new(
                store,
                &format!("features.{}", 4 * i),
                channels,
                width,
                [3, 3],
                ConvGeometry::default().padding(1),
                false,
                Init::KaimingNormalFanOut,
                seed,
            )?;
            let bn = BatchNorm2d::new(store, &format!("features.{}", 4 * i + 1), width, 1e-5)?;
            blocks.push((conv, bn, i + 1 < widths.len()));
            channels = width;
        }
        let classifier = Linear::new(store, "classifier", channels, classes, None, seed)?;
        Ok(Self { blocks, classifier })
    }

    /// Logits [N, classes] for images [N, in_channels, H, W] (H, W at least 4).
    pub fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        let mut x = x.clone();
        for (conv, bn, pooled) in &self.blocks {
            x = conv.forward(f, &x)?;
            x = bn.forward(f, &x)?;
            x = f.tape.relu(&x)?;
            if *pooled {
                x = f.tape.max_pool2d(&x, &Pool2d::new(2))?;
            }
        }
        f.mark("features", &x);
        let &[_, _, h, w] = x.dims() else {
            return Err(Error::invalid(
                "LesionNet",
                format!("unexpected features {:?}", x.dims()),
            ));
        };
        let global = Pool2d {
            kernel: [h, w],
            stride: [h, w],
            padding: [0, 0],
            ceil_mode: false,
        };
        x = f.tape.max_pool2d(&x, &global)?;
        x = f.tape.flatten(&x)?;
        self.classifier.forward(f, &x)
    }
}
