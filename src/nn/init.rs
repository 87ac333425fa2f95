//! Deterministic initialisers matching torchvision's schemes. Each parameter's values come from
//! its own stream, seeded by the model seed and the parameter's name, so adding a layer never
//! changes the initial values of the others.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::Tensor;

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// N(0, 2 / fan_out), fan_out = dims[0] · (product of dims[2..]): torchvision's
    /// `kaiming_normal_(mode="fan_out", nonlinearity="relu")` for convolutions.
    KaimingNormalFanOut,
    /// N(0, 2 / fan_in), fan_in = product of dims[1..]: `kaiming_normal_` with its defaults
    /// (torchvision's DenseNet).
    KaimingNormalFanIn,
    /// N(0, std²) (VGG's linear layers: 0.01).
    Normal {
        std: f32,
    },
    /// N(0, std²) redrawn outside [-2, 2] (torch's `trunc_normal_` defaults, as GoogLeNet and
    /// Inception v3 use with std 0.01 / 0.1).
    TruncatedNormal {
        std: f32,
    },
    /// U(-bound, bound).
    Uniform {
        bound: f32,
    },
    /// U(-1/√fan_in, 1/√fan_in), fan_in = product of dims[1..]: nn.Linear's and nn.Conv2d's
    /// own default for weights (kaiming_uniform with a = √5) and biases.
    DefaultFanIn {
        fan_in: usize,
    },
    Constant(f32),
}

impl Init {
    pub fn values(self, dims: &[usize], seed: u64, name: &str) -> Vec<f32> {
        let count = dims.iter().product();
        let mut rng = SplitMix64::new(seed ^ fnv1a(name));
        match self {
            Init::KaimingNormalFanOut => {
                let fan_out =
                    dims.first().copied().unwrap_or(1) * dims.iter().skip(2).product::<usize>();
                let std = (2.0 / fan_out.max(1) as f64).sqrt();
                (0..count).map(|_| (rng.normal() * std) as f32).collect()
            }
            Init::KaimingNormalFanIn => {
                let fan_in = dims.iter().skip(1).product::<usize>();
                let std = (2.0 / fan_in.max(1) as f64).sqrt();
                (0..count).map(|_| (rng.normal() * std) as f32).collect()
            }
            Init::Normal { std } => (0..count)
                .map(|_| (rng.normal() * f64::from(std)) as f32)
                .collect(),
            Init::TruncatedNormal { std } => (0..count)
                .map(|_| {
                    loop {
                        let v = rng.normal() * f64::from(std);
                        if v.abs() <= 2.0 {
                            break v as f32;
                        }
                    }
                })
                .collect(),
            Init::Uniform { bound } => (0..count).map(|_| rng.uniform_symmetric(bound)).collect(),
            Init::DefaultFanIn { fan_in } => {
                let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
                (0..count).map(|_| rng.uniform_symmetric(bound)).collect()
            }
            Init::Constant(value) => vec![value; count],
        }
    }

    pub fn tensor(self, gpu: &Gpu, dims: &[usize], seed: u64, name: &str) -> Result<Tensor> {
        Tensor::from_slice(gpu, dims.to_vec(), &self.values(dims, seed, name))
    }
}

/// SplitMix64: small, fast, and good enough for initialisation and synthetic data.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn uniform_symmetric(&mut self, bound: f32) -> f32 {
        ((self.uniform() * 2.0 - 1.0) * f64::from(bound)) as f32
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// FNV-1a: a stable hash of a parameter name (std's hasher may change between releases).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3)
    })
}
