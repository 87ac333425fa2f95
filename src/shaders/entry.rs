//! Typed kernels. An [`Entry`] names one entry point of one shader, the Rust type of the
//! uniform parameters it reads at binding 0, every other binding it uses (slot, WGSL name and
//! kind) and where its workgroup size comes from. Launchers record dispatches through a
//! [`Kernel`] made from an entry, so the compiler checks the parameters' type and the context
//! checks the bound slots; the interface test (`tests/kernel_interface.rs`) checks every entry
//! against naga's reading of the shader.

use std::marker::PhantomData;

use super::Shader;
use super::uniform::{Uniform, UniformLayout};

/// How a shader binds a storage buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

/// What sits at a binding other than the uniform parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    /// `var<storage, read>` or `var<storage, read_write>`.
    Buffer(Access),
    /// `texture_storage_2d<rgba32float, read>`: the matmul's texture operands.
    ReadOnlyTexture,
}

/// One binding of group 0 (binding 0, the uniform parameters, is implied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    pub slot: u32,
    /// The WGSL variable's name.
    pub name: &'static str,
    pub kind: BindingKind,
}

impl Binding {
    pub const fn read(slot: u32, name: &'static str) -> Self {
        Self {
            slot,
            name,
            kind: BindingKind::Buffer(Access::Read),
        }
    }

    pub const fn read_write(slot: u32, name: &'static str) -> Self {
        Self {
            slot,
            name,
            kind: BindingKind::Buffer(Access::ReadWrite),
        }
    }

    pub const fn texture(slot: u32, name: &'static str) -> Self {
        Self {
            slot,
            name,
            kind: BindingKind::ReadOnlyTexture,
        }
    }
}

/// Where an entry point's workgroup size comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkgroupSize {
    /// `@workgroup_size(WORKGROUP_SIZE)`, a 1-D size set from here: the shader gives the
    /// override no default, so this is the only place the number is written. A launcher that
    /// sizes workgroups per call replaces it ([`Kernel::with_override`]), never above this
    /// value (`Entry::invocations` is the launchers' upper bound). A power of two: the tree
    /// reductions halve it (the interface test checks).
    Override(u32),
    /// Literal in the shader, e.g. `@workgroup_size(8, 8)`; the interface test reads it there.
    Literal([u32; 3]),
    /// Derived from tile-shape overrides the launcher sets (the matmul's WORKGROUP_X ×
    /// WORKGROUP_Y); the interface test checks that it names no `WORKGROUP_SIZE`.
    TileOverrides,
}

/// The override constant behind [`WorkgroupSize::Override`].
pub const WORKGROUP_SIZE_OVERRIDE: &str = "WORKGROUP_SIZE";

/// One entry point of one shader, with the type of its uniform parameters `P`.
pub struct Entry<P> {
    pub shader: Shader,
    pub name: &'static str,
    pub workgroup: WorkgroupSize,
    pub bindings: &'static [Binding],
    params: PhantomData<fn() -> P>,
}

impl<P> Entry<P> {
    /// Used by [`entries!`]; a launcher's entries are declared there, where the catalogue
    /// (and so the interface test) sees them.
    pub(crate) const fn new(
        shader: Shader,
        name: &'static str,
        workgroup: WorkgroupSize,
        bindings: &'static [Binding],
    ) -> Self {
        Self {
            shader,
            name,
            workgroup,
            bindings,
            params: PhantomData,
        }
    }

    /// The declared invocations per workgroup along x: a [`WorkgroupSize::Override`] entry's
    /// size (the most a launcher that sizes per call may set), or a literal's x.
    pub const fn invocations(&self) -> u32 {
        match self.workgroup {
            WorkgroupSize::Override(size) => size,
            WorkgroupSize::Literal([x, _, _]) => x,
            WorkgroupSize::TileOverrides => panic!("a tiled entry has no fixed workgroup size"),
        }
    }
}

impl<P: Uniform> Entry<P> {
    /// The kernel to dispatch, with the workgroup size override set where the entry has one.
    pub fn kernel(&'static self) -> Kernel<P> {
        let kernel = Kernel {
            entry: self,
            overrides: Vec::new(),
        };
        match self.workgroup {
            WorkgroupSize::Override(size) => {
                kernel.with_override(WORKGROUP_SIZE_OVERRIDE, f64::from(size))
            }
            WorkgroupSize::Literal(_) | WorkgroupSize::TileOverrides => kernel,
        }
    }

    /// The entry without its Rust type: what the interface test and the catalogue list.
    pub fn interface(&self) -> EntryInterface {
        EntryInterface {
            shader: self.shader,
            name: self.name,
            workgroup: self.workgroup,
            bindings: self.bindings,
            params: P::LAYOUT,
        }
    }
}

/// An operation's entry points: one value per invocation, and where the shader has one, its
/// `_vec4` twin taking four (through vec4 views of the same tensors, at other slots).
pub struct WithVec4<P: 'static> {
    pub scalar: &'static Entry<P>,
    pub vec4: Option<&'static Entry<P>>,
}

// Derived Clone and Copy would ask P: Copy.
impl<P> Clone for WithVec4<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P> Copy for WithVec4<P> {}

impl<P> WithVec4<P> {
    pub const fn new(scalar: &'static Entry<P>, vec4: &'static Entry<P>) -> Self {
        Self {
            scalar,
            vec4: Some(vec4),
        }
    }

    pub const fn scalar_only(scalar: &'static Entry<P>) -> Self {
        Self { scalar, vec4: None }
    }

    /// The vec4 entry where there is one and the data allow it (`vec4_fits`: counts or planes
    /// in multiples of 4), else the scalar one.
    pub fn pick(&self, vec4_fits: bool) -> &'static Entry<P> {
        match self.vec4 {
            Some(vec4) if vec4_fits => vec4,
            _ => self.scalar,
        }
    }
}

/// An [`Entry`] described as data.
#[derive(Clone, Copy, Debug)]
pub struct EntryInterface {
    pub shader: Shader,
    pub name: &'static str,
    pub workgroup: WorkgroupSize,
    pub bindings: &'static [Binding],
    pub params: UniformLayout,
}

/// An entry with its override constants: what the pipeline cache compiles and keys on.
pub struct Kernel<P: 'static> {
    entry: &'static Entry<P>,
    overrides: Vec<(&'static str, f64)>,
}

// Derived Clone would ask P: Clone.
impl<P> Clone for Kernel<P> {
    fn clone(&self) -> Self {
        Self {
            entry: self.entry,
            overrides: self.overrides.clone(),
        }
    }
}

impl<P> Kernel<P> {
    /// Sets an override constant, replacing an earlier value of the same name.
    pub fn with_override(mut self, name: &'static str, value: f64) -> Self {
        match self.overrides.iter_mut().find(|(set, _)| *set == name) {
            Some(slot) => slot.1 = value,
            None => self.overrides.push((name, value)),
        }
        self
    }

    pub fn entry(&self) -> &'static Entry<P> {
        self.entry
    }

    /// The invocations per workgroup along x this kernel runs with: its `WORKGROUP_SIZE`
    /// override where the launcher set one, else the entry's declared size.
    pub fn invocations(&self) -> u32 {
        self.overrides
            .iter()
            .find(|(name, _)| *name == WORKGROUP_SIZE_OVERRIDE)
            .map_or(self.entry.invocations(), |&(_, value)| value as u32)
    }

    pub fn overrides(&self) -> &[(&'static str, f64)] {
        &self.overrides
    }

    /// `shader::entry`, the label of its pipeline and bind groups, used in error messages.
    pub fn label(&self) -> String {
        format!("{}::{}", self.entry.shader.name(), self.entry.name)
    }
}

/// Declares a shader's entries as statics of [`Entry`], and a function (named first) that
/// lists their interfaces for the catalogue (`kernels::catalogue`), so that an entry cannot be
/// declared and left out of the interface test. The shader's bindings (other than the
/// parameters at 0) are declared once, by WGSL name, access and slot, in a module named as the
/// function; each entry lists the ones it uses:
///
/// ```ignore
/// entries! {
///     entries for Shader::Fill, Params;
///     bindings { src: read 1, out: read_write 2 }
///     FILL = "fill", WorkgroupSize::Override(256), [out];
///     COPY = "copy", WorkgroupSize::Override(256), [src, out];
/// }
/// ```
macro_rules! entries {
    (
        $list:ident for $shader:expr, $params:ty;
        bindings { $($binding:ident: $access:ident $slot:literal),+ $(,)? }
        $( $(#[$meta:meta])* $vis:vis $static:ident = $name:literal, $workgroup:expr,
           [$($uses:ident),+ $(,)?]; )+
    ) => {
        /// The shader's bindings, named as in WGSL.
        #[allow(non_upper_case_globals)]
        mod $list {
            use $crate::shaders::Binding;
            $(pub const $binding: Binding = Binding::$access($slot, stringify!($binding));)+
        }

        $(
            $(#[$meta])*
            $vis static $static: $crate::shaders::Entry<$params> =
                $crate::shaders::Entry::new($shader, $name, $workgroup, &[$($list::$uses),+]);
        )+

        /// Every entry declared here, as data.
        pub(crate) fn $list() -> Vec<$crate::shaders::EntryInterface> {
            vec![$($static.interface()),+]
        }
    };
}
pub(crate) use entries;
