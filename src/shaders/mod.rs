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
    /// The sampling saliency methods' work outside the network.
    Attribution,
    BatchNorm,
    /// Class activation maps and their upsampling.
    Cam,
    Concat,
    Conv2d,
    Conv2dImplicitGemm,
    Fill,
    Finite,
    Elementwise,
    Loss,
    Reduce,
    Matmul,
    Occlusion,
    Optim,
    /// The perturbation methods' mask arithmetic.
    Perturbation,
    /// Needs the SUBGROUP feature: compiled only on adapters that offer it.
    MatmulSubgroup,
    Pool,
    /// The roofline's microkernels: peak arithmetic rate and bandwidth.
    Roofline,
    /// Score-CAM's masked copies of an image.
    ScoreCam,
    Softmax,
    Transpose,
    Winograd,
}

impl Shader {
    pub const ALL: &'static [Shader] = &[
        Shader::Attribution,
        Shader::BatchNorm,
        Shader::Cam,
        Shader::Concat,
        Shader::Conv2d,
        Shader::Conv2dImplicitGemm,
        Shader::Fill,
        Shader::Finite,
        Shader::Elementwise,
        Shader::Loss,
        Shader::Reduce,
        Shader::Matmul,
        Shader::Occlusion,
        Shader::Optim,
        Shader::Perturbation,
        Shader::MatmulSubgroup,
        Shader::Pool,
        Shader::Roofline,
        Shader::ScoreCam,
        Shader::Softmax,
        Shader::Transpose,
        Shader::Winograd,
    ];

    /// The file name in `shaders/`, also the prefix of every kernel label.
    pub fn name(self) -> &'static str {
        match self {
            Shader::Attribution => "attribution",
            Shader::BatchNorm => "batchnorm",
            Shader::Cam => "cam",
            Shader::Concat => "concat",
            Shader::Conv2d => "conv2d",
            Shader::Conv2dImplicitGemm => "conv2d_implicit_gemm",
            Shader::Fill => "fill",
            Shader::Finite => "finite",
            Shader::Elementwise => "elementwise",
            Shader::Loss => "loss",
            Shader::Reduce => "reduce",
            Shader::Matmul => "matmul",
            Shader::Occlusion => "occlusion",
            Shader::Optim => "optim",
            Shader::Perturbation => "perturbation",
            Shader::MatmulSubgroup => "matmul_subgroup",
            Shader::Pool => "pool",
            Shader::Roofline => "roofline",
            Shader::ScoreCam => "score_cam",
            Shader::Softmax => "softmax",
            Shader::Transpose => "transpose",
            Shader::Winograd => "winograd",
        }
    }

    /// The WGSL source: the file, then the common parts it uses from `shaders/common/` (WGSL
    /// lets a module use what it declares later, so the file's own line numbers hold).
    pub fn source(self) -> &'static str {
        // common/grid.wgsl: WORKGROUP_SIZE and the folded grid's indices.
        macro_rules! with_grid {
            ($file:literal $(, $common:literal)*) => {
                concat!(
                    include_str!(concat!("../../shaders/", $file)),
                    $(include_str!(concat!("../../shaders/", $common)),)*
                    include_str!("../../shaders/common/grid.wgsl"),
                )
            };
        }
        match self {
            Shader::Attribution => with_grid!("attribution.wgsl", "common/counter_rng.wgsl"),
            Shader::BatchNorm => with_grid!("batchnorm.wgsl"),
            Shader::Cam => with_grid!("cam.wgsl", "common/bilinear.wgsl"),
            Shader::Concat => with_grid!("concat.wgsl"),
            Shader::Conv2d => with_grid!("conv2d.wgsl", "common/conv.wgsl"),
            Shader::Conv2dImplicitGemm => {
                with_grid!("conv2d_implicit_gemm.wgsl", "common/conv.wgsl")
            }
            Shader::Fill => with_grid!("fill.wgsl"),
            Shader::Finite => with_grid!("finite.wgsl"),
            Shader::Elementwise => with_grid!("elementwise.wgsl"),
            Shader::Loss => with_grid!("loss.wgsl"),
            Shader::Reduce => with_grid!("reduce.wgsl"),
            Shader::Matmul => include_str!("../../shaders/matmul.wgsl"),
            Shader::Occlusion => with_grid!("occlusion.wgsl"),
            Shader::Optim => with_grid!("optim.wgsl"),
            Shader::Perturbation => with_grid!(
                "perturbation.wgsl",
                "common/bilinear.wgsl",
                "common/counter_rng.wgsl"
            ),
            Shader::MatmulSubgroup => include_str!("../../shaders/matmul_subgroup.wgsl"),
            Shader::Pool => with_grid!("pool.wgsl"),
            Shader::Roofline => with_grid!("roofline.wgsl"),
            Shader::ScoreCam => with_grid!("score_cam.wgsl"),
            Shader::Softmax => with_grid!("softmax.wgsl"),
            Shader::Transpose => with_grid!("transpose.wgsl"),
            Shader::Winograd => with_grid!("winograd.wgsl"),
        }
    }
}
