//! Inception v3 (Szegedy et al. 2015) as torchvision builds it: BasicConv2d units (BN eps
//! 0.001), average pools that count the padding, factorised 1×7 / 7×1 and 1×3 / 3×1
//! convolutions, the AuxLogits head used only in training, optional transform_input. Nominal
//! input 299×299; any input of at least 75×75 runs.

use super::blocks::{BasicConv2d, transform_input};
use super::{Classifier, ModelConfig};
use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::kernels::pool::Pool2d;
use crate::nn::{Dropout, Forward, Init, Linear, ParamStore};

const INIT: Init = Init::TruncatedNormal { std: 0.1 };

/// A chain of BasicConv2d units applied in order.
struct Chain(Vec<BasicConv2d>);

impl Chain {
    fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        let mut x = x.clone();
        for unit in &self.0 {
            x = unit.forward(f, &x)?;
        }
        Ok(x)
    }
}

/// One unit: (name, in, out, kernel [h, w], stride, padding [h, w]).
type Unit<'a> = (&'a str, usize, usize, [usize; 2], usize, [usize; 2]);

/// Builds the units of one module.
fn units(
    store: &mut ParamStore,
    prefix: &str,
    specs: &[Unit],
    seed: u64,
) -> Result<Vec<BasicConv2d>> {
    specs
        .iter()
        .map(|&(name, i, o, k, s, p)| {
            BasicConv2d::new(
                store,
                &format!("{prefix}.{name}"),
                i,
                o,
                k,
                s,
                p,
                INIT,
                seed,
            )
        })
        .collect()
}

const K1: [usize; 2] = [1, 1];
const K3: [usize; 2] = [3, 3];
const P0: [usize; 2] = [0, 0];
const P1: [usize; 2] = [1, 1];

/// The average pool every mixed block's pool branch uses: 3×3, stride 1, padding 1, counting
/// the padding (PyTorch's default count_include_pad=True).
fn avg_pool_3x3(f: &Forward, x: &Var) -> Result<Var> {
    f.tape
        .avg_pool2d(x, &Pool2d::new(3).stride(1).padding(1), true)
}

fn max_pool_3x3_s2(f: &Forward, x: &Var) -> Result<Var> {
    f.tape.max_pool2d(x, &Pool2d::new(3).stride(2))
}

/// The mixed blocks, by torchvision's class names.
enum Mixed {
    /// InceptionA: 1×1 | 1×1 → 5×5 | 1×1 → 3×3 → 3×3 | avg pool → 1×1.
    A([Chain; 4]),
    /// InceptionB: 3×3/2 | 1×1 → 3×3 → 3×3/2 | max pool 3×3/2.
    B([Chain; 2]),
    /// InceptionC: 1×1 | 1×1 → 1×7 → 7×1 | 1×1 → 7×1 → 1×7 → 7×1 → 1×7 | avg pool → 1×1.
    C([Chain; 4]),
    /// InceptionD: 1×1 → 3×3/2 | 1×1 → 1×7 → 7×1 → 3×3/2 | max pool 3×3/2.
    D([Chain; 2]),
    /// InceptionE: 1×1 | 1×1 → (1×3 ‖ 3×1) | 1×1 → 3×3 → (1×3 ‖ 3×1) | avg pool → 1×1; the
    /// pairs in parallel and concatenated.
    E {
        branch1x1: Chain,
        branch3x3_1: Chain,
        branch3x3_2: [Chain; 2],
        branch3x3dbl: Chain,
        branch3x3dbl_3: [Chain; 2],
        branch_pool: Chain,
    },
}

impl Mixed {
    fn a(
        store: &mut ParamStore,
        name: &str,
        c: usize,
        pool_features: usize,
        s: u64,
    ) -> Result<Self> {
        Ok(Mixed::A([
            Chain(units(store, name, &[("branch1x1", c, 64, K1, 1, P0)], s)?),
            Chain(units(
                store,
                name,
                &[
                    ("branch5x5_1", c, 48, K1, 1, P0),
                    ("branch5x5_2", 48, 64, [5, 5], 1, [2, 2]),
                ],
                s,
            )?),
            Chain(units(
                store,
                name,
                &[
                    ("branch3x3dbl_1", c, 64, K1, 1, P0),
                    ("branch3x3dbl_2", 64, 96, K3, 1, P1),
                    ("branch3x3dbl_3", 96, 96, K3, 1, P1),
                ],
                s,
            )?),
            Chain(units(
                store,
                name,
                &[("branch_pool", c, pool_features, K1, 1, P0)],
                s,
            )?),
        ]))
    }

    fn b(store: &mut ParamStore, name: &str, c: usize, s: u64) -> Result<Self> {
        Ok(Mixed::B([
            Chain(units(store, name, &[("branch3x3", c, 384, K3, 2, P0)], s)?),
            Chain(units(
                store,
                name,
                &[
                    ("branch3x3dbl_1", c, 64, K1, 1, P0),
                    ("branch3x3dbl_2", 64, 96, K3, 1, P1),
                    ("branch3x3dbl_3", 96, 96, K3, 2, P0),
                ],
                s,
            )?),
        ]))
    }

    fn c(store: &mut ParamStore, name: &str, c: usize, c7: usize, s: u64) -> Result<Self> {
        let (k17, k71, p17, p71) = ([1, 7], [7, 1], [0, 3], [3, 0]);
        Ok(Mixed::C([
            Chain(units(store, name, &[("branch1x1", c, 192, K1, 1, P0)], s)?),
            Chain(units(
                store,
                name,
                &[
                    ("branch7x7_1", c, c7, K1, 1, P0),
                    ("branch7x7_2", c7, c7, k17, 1, p17),
                    ("branch7x7_3", c7, 192, k71, 1, p71),
                ],
                s,
            )?),
            Chain(units(
                store,
                name,
                &[
                    ("branch7x7dbl_1", c, c7, K1, 1, P0),
                    ("branch7x7dbl_2", c7, c7, k71, 1, p71),
                    ("branch7x7dbl_3", c7, c7, k17, 1, p17),
                    ("branch7x7dbl_4", c7, c7, k71, 1, p71),
                    ("branch7x7dbl_5", c7, 192, k17, 1, p17),
                ],
                s,
            )?),
            Chain(units(
                store,
                name,
                &[("branch_pool", c, 192, K1, 1, P0)],
                s,
            )?),
        ]))
    }

    fn d(store: &mut ParamStore, name: &str, c: usize, s: u64) -> Result<Self> {
        Ok(Mixed::D([
            Chain(units(
                store,
                name,
                &[
                    ("branch3x3_1", c, 192, K1, 1, P0),
                    ("branch3x3_2", 192, 320, K3, 2, P0),
                ],
                s,
            )?),
            Chain(units(
                store,
                name,
                &[
                    ("branch7x7x3_1", c, 192, K1, 1, P0),
                    ("branch7x7x3_2", 192, 192, [1, 7], 1, [0, 3]),
                    ("branch7x7x3_3", 192, 192, [7, 1], 1, [3, 0]),
                    ("branch7x7x3_4", 192, 192, K3, 2, P0),
                ],
                s,
            )?),
        ]))
    }

    fn e(store: &mut ParamStore, name: &str, c: usize, s: u64) -> Result<Self> {
        let pair = |store: &mut ParamStore, a: &str, b: &str| -> Result<[Chain; 2]> {
            Ok([
                Chain(units(store, name, &[(a, 384, 384, [1, 3], 1, [0, 1])], s)?),
                Chain(units(store, name, &[(b, 384, 384, [3, 1], 1, [1, 0])], s)?),
            ])
        };
        Ok(Mixed::E {
            branch1x1: Chain(units(store, name, &[("branch1x1", c, 320, K1, 1, P0)], s)?),
            branch3x3_1: Chain(units(
                store,
                name,
                &[("branch3x3_1", c, 384, K1, 1, P0)],
                s,
            )?),
            branch3x3_2: pair(store, "branch3x3_2a", "branch3x3_2b")?,
            branch3x3dbl: Chain(units(
                store,
                name,
                &[
                    ("branch3x3dbl_1", c, 448, K1, 1, P0),
                    ("branch3x3dbl_2", 448, 384, K3, 1, P1),
                ],
                s,
            )?),
            branch3x3dbl_3: pair(store, "branch3x3dbl_3a", "branch3x3dbl_3b")?,
            branch_pool: Chain(units(
                store,
                name,
                &[("branch_pool", c, 192, K1, 1, P0)],
                s,
            )?),
        })
    }

    fn forward(&self, f: &Forward, x: &Var) -> Result<Var> {
        let outputs = match self {
            Mixed::A([b1, b5, b3, pool]) | Mixed::C([b1, b5, b3, pool]) => vec![
                b1.forward(f, x)?,
                b5.forward(f, x)?,
                b3.forward(f, x)?,
                pool.forward(f, &avg_pool_3x3(f, x)?)?,
            ],
            Mixed::B([b3, dbl]) | Mixed::D([b3, dbl]) => {
                vec![
                    b3.forward(f, x)?,
                    dbl.forward(f, x)?,
                    max_pool_3x3_s2(f, x)?,
                ]
            }
            Mixed::E {
                branch1x1,
                branch3x3_1,
                branch3x3_2,
                branch3x3dbl,
                branch3x3dbl_3,
                branch_pool,
            } => {
                let pair = |pair: &[Chain; 2], x: &Var| -> Result<Var> {
                    f.tape
                        .concat_channels(&[&pair[0].forward(f, x)?, &pair[1].forward(f, x)?])
                };
                vec![
                    branch1x1.forward(f, x)?,
                    pair(branch3x3_2, &branch3x3_1.forward(f, x)?)?,
                    pair(branch3x3dbl_3, &branch3x3dbl.forward(f, x)?)?,
                    branch_pool.forward(f, &avg_pool_3x3(f, x)?)?,
                ]
            }
        };
        let refs: Vec<&Var> = outputs.iter().collect();
        f.tape.concat_channels(&refs)
    }
}

/// avg pool 5×5/3 → 1×1 to 128 → 5×5 to 768 → global average → fc.
struct AuxLogits {
    conv0: BasicConv2d,
    conv1: BasicConv2d,
    fc: Linear,
}

pub struct InceptionV3 {
    transform_input: bool,
    dropout: Dropout,
    stem: Vec<BasicConv2d>,
    /// Mixed_5b .. Mixed_7c, with their names.
    mixed: Vec<(String, Mixed)>,
    aux: AuxLogits,
    fc: Linear,
}

impl InceptionV3 {
    pub fn new(store: &mut ParamStore, config: &ModelConfig) -> Result<Self> {
        let s = config.seed;
        let stem_specs = [
            ("Conv2d_1a_3x3", config.in_channels, 32, 3, 2, 0),
            ("Conv2d_2a_3x3", 32, 32, 3, 1, 0),
            ("Conv2d_2b_3x3", 32, 64, 3, 1, 1),
            ("Conv2d_3b_1x1", 64, 80, 1, 1, 0),
            ("Conv2d_4a_3x3", 80, 192, 3, 1, 0),
        ];
        let stem = stem_specs
            .iter()
            .map(|&(name, i, o, k, st, p)| {
                BasicConv2d::square(store, name, i, o, k, st, p, INIT, s)
            })
            .collect::<Result<_>>()?;
        let mixed = vec![
            (
                "Mixed_5b".to_string(),
                Mixed::a(store, "Mixed_5b", 192, 32, s)?,
            ),
            (
                "Mixed_5c".to_string(),
                Mixed::a(store, "Mixed_5c", 256, 64, s)?,
            ),
            (
                "Mixed_5d".to_string(),
                Mixed::a(store, "Mixed_5d", 288, 64, s)?,
            ),
            ("Mixed_6a".to_string(), Mixed::b(store, "Mixed_6a", 288, s)?),
            (
                "Mixed_6b".to_string(),
                Mixed::c(store, "Mixed_6b", 768, 128, s)?,
            ),
            (
                "Mixed_6c".to_string(),
                Mixed::c(store, "Mixed_6c", 768, 160, s)?,
            ),
            (
                "Mixed_6d".to_string(),
                Mixed::c(store, "Mixed_6d", 768, 160, s)?,
            ),
            (
                "Mixed_6e".to_string(),
                Mixed::c(store, "Mixed_6e", 768, 192, s)?,
            ),
            ("Mixed_7a".to_string(), Mixed::d(store, "Mixed_7a", 768, s)?),
            (
                "Mixed_7b".to_string(),
                Mixed::e(store, "Mixed_7b", 1280, s)?,
            ),
            (
                "Mixed_7c".to_string(),
                Mixed::e(store, "Mixed_7c", 2048, s)?,
            ),
        ];
        let aux = AuxLogits {
            conv0: BasicConv2d::square(store, "AuxLogits.conv0", 768, 128, 1, 1, 0, INIT, s)?,
            conv1: BasicConv2d::square(
                store,
                "AuxLogits.conv1",
                128,
                768,
                5,
                1,
                0,
                Init::TruncatedNormal { std: 0.01 },
                s,
            )?,
            fc: Linear::new(
                store,
                "AuxLogits.fc",
                768,
                config.classes,
                Some(Init::TruncatedNormal { std: 0.001 }),
                s,
            )?,
        };
        let fc = Linear::new(store, "fc", 2048, config.classes, Some(INIT), s)?;
        Ok(Self {
            transform_input: config.transform_input,
            dropout: Dropout {
                p: config.dropout.unwrap_or(0.5),
            },
            stem,
            mixed,
            aux,
            fc,
        })
    }
}

impl Classifier for InceptionV3 {
    fn gradcam_layer(&self) -> String {
        "Mixed_7c".to_string()
    }

    fn forward_with_aux(&self, f: &Forward, x: &Var) -> Result<(Var, Vec<Var>)> {
        if let &[_, _, h, w] = x.dims()
            && (h < 75 || w < 75)
        {
            return Err(Error::invalid(
                "inception_v3",
                format!("needs an input of at least 75×75, got {h}×{w}"),
            ));
        }
        let mut x = if self.transform_input {
            transform_input(f, x)?
        } else {
            x.clone()
        };
        for (i, unit) in self.stem.iter().enumerate() {
            x = unit.forward(f, &x)?;
            // max pools after Conv2d_2b_3x3 and Conv2d_4a_3x3
            if i == 2 || i == 4 {
                x = max_pool_3x3_s2(f, &x)?;
            }
        }
        let mut aux = Vec::new();
        for (i, (name, block)) in self.mixed.iter().enumerate() {
            x = block.forward(f, &x)?;
            f.mark(name, &x);
            // AuxLogits reads Mixed_6e's output.
            if i == 7 && f.training() {
                let a = f.tape.avg_pool2d(&x, &Pool2d::new(5).stride(3), true)?;
                let a = self.aux.conv1.forward(f, &self.aux.conv0.forward(f, &a)?)?;
                let a = f.tape.flatten(&f.tape.adaptive_avg_pool2d(&a, [1, 1])?)?;
                aux.push(self.aux.fc.forward(f, &a)?);
            }
        }
        x = f.tape.adaptive_avg_pool2d(&x, [1, 1])?;
        x = self.dropout.forward(f, &x)?;
        x = f.tape.flatten(&x)?;
        Ok((self.fc.forward(f, &x)?, aux))
    }

    fn optional_prefixes(&self) -> &'static [&'static str] {
        &["AuxLogits."]
    }
}
