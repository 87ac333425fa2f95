//! The one registry of WGSL sources, and the typed interface to them. Every shader file in
//! `shaders/` is named here, pulled in with `include_str!`, and nowhere else; the pipeline
//! cache and the naga tests iterate over `Shader::ALL`. Each launcher in `kernels/` declares its
//! shader's entry points ([`Entry`]) and uniform parameters ([`uniform_params!`]) with the
//! macros here; `tests/kernel_interface.rs` holds both to what naga reads in the WGSL.

mod entry;
mod uniform;

pub(crate) use entry::entries;
pub use entry::{
    Access, Binding, BindingKind, Entry, EntryInterface, Kernel, WORKGROUP_SIZE_OVERRIDE, WithVec4,
    WorkgroupSize,
};
pub use uniform::{Member, ScalarType, Uniform, UniformLayout, UniformMember, UniformType};
pub(crate) use uniform::{Sealed, uniform_params};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    BatchNorm,
    Concat,
    Conv2d,
    Conv2dImplicitGemm,
    Fill,
    Finite,
    Elementwise,
    Loss,
    Reduce,
    Matmul,
    Optim,
    /// Needs the SUBGROUP feature: compiled only on adapters that offer it.
    MatmulSubgroup,
    Pool,
    Softmax,
    Transpose,
    Winograd,
}

impl Shader {
    pub const ALL: &'static [Shader] = &[
        Shader::BatchNorm,
        Shader::Concat,
        Shader::Conv2d,
        Shader::Conv2dImplicitGemm,
        Shader::Fill,
        Shader::Finite,
        Shader::Elementwise,
        Shader::Loss,
        Shader::Reduce,
        Shader::Matmul,
        Shader::Optim,
        Shader::MatmulSubgroup,
        Shader::Pool,
        Shader::Softmax,
        Shader::Transpose,
        Shader::Winograd,
    ];

    /// The file name in `shaders/`, also the prefix of every kernel label.
    pub fn name(self) -> &'static str {
        match self {
            Shader::BatchNorm => "batchnorm",
            Shader::Concat => "concat",
            Shader::Conv2d => "conv2d",
            Shader::Conv2dImplicitGemm => "conv2d_implicit_gemm",
            Shader::Fill => "fill",
            Shader::Finite => "finite",
            Shader::Elementwise => "elementwise",
            Shader::Loss => "loss",
            Shader::Reduce => "reduce",
            Shader::Matmul => "matmul",
            Shader::Optim => "optim",
            Shader::MatmulSubgroup => "matmul_subgroup",
            Shader::Pool => "pool",
            Shader::Softmax => "softmax",
            Shader::Transpose => "transpose",
            Shader::Winograd => "winograd",
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            Shader::BatchNorm => include_str!("../../shaders/batchnorm.wgsl"),
            Shader::Concat => include_str!("../../shaders/concat.wgsl"),
            Shader::Conv2d => include_str!("../../shaders/conv2d.wgsl"),
            Shader::Conv2dImplicitGemm => include_str!("../../shaders/conv2d_implicit_gemm.wgsl"),
            Shader::Fill => include_str!("../../shaders/fill.wgsl"),
            Shader::Finite => include_str!("../../shaders/finite.wgsl"),
            Shader::Elementwise => include_str!("../../shaders/elementwise.wgsl"),
            Shader::Loss => include_str!("../../shaders/loss.wgsl"),
            Shader::Reduce => include_str!("../../shaders/reduce.wgsl"),
            Shader::Matmul => include_str!("../../shaders/matmul.wgsl"),
            Shader::Optim => include_str!("../../shaders/optim.wgsl"),
            Shader::MatmulSubgroup => include_str!("../../shaders/matmul_subgroup.wgsl"),
            Shader::Pool => include_str!("../../shaders/pool.wgsl"),
            Shader::Softmax => include_str!("../../shaders/softmax.wgsl"),
            Shader::Transpose => include_str!("../../shaders/transpose.wgsl"),
            Shader::Winograd => include_str!("../../shaders/winograd.wgsl"),
        }
    }
}
