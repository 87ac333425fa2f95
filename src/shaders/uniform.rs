//! The uniform parameters a kernel reads at binding 0, declared once in Rust.
//!
//! [`uniform_params!`] declares a `#[repr(C)]` Pod struct and, beside it, its [`UniformLayout`]:
//! each member's name, byte offset (`offset_of!`), size and WGSL type. The kernel interface
//! test (`tests/kernel_interface.rs`) reflects every shader with naga and compares the struct
//! each entry point binds at 0 with that layout, member by member, so a member renamed,
//! retyped, reordered, added or removed on either side fails the suite instead of running.

/// A WGSL scalar type a uniform member may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarType {
    U32,
    I32,
    F32,
}

/// The WGSL type of a uniform member: a scalar, or a vector of 2 to 4 scalars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UniformType {
    Scalar(ScalarType),
    Vector(u8, ScalarType),
}

/// A Rust type that mirrors a WGSL uniform member type of the same size and layout.
pub trait UniformMember {
    const TYPE: UniformType;
}

impl UniformMember for u32 {
    const TYPE: UniformType = UniformType::Scalar(ScalarType::U32);
}
impl UniformMember for i32 {
    const TYPE: UniformType = UniformType::Scalar(ScalarType::I32);
}
impl UniformMember for f32 {
    const TYPE: UniformType = UniformType::Scalar(ScalarType::F32);
}
impl UniformMember for [u32; 4] {
    const TYPE: UniformType = UniformType::Vector(4, ScalarType::U32);
}

/// One member of a uniform struct as Rust lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
    pub ty: UniformType,
}

/// A uniform struct as Rust lays it out: what the interface test compares with naga's reading
/// of the shader.
#[derive(Clone, Copy, Debug)]
pub struct UniformLayout {
    /// The Rust type's name, for messages.
    pub rust_name: &'static str,
    pub size: usize,
    pub members: &'static [Member],
}

/// The uniform parameters of one or more entry points. Implemented by [`uniform_params!`]
/// only (the trait is sealed), so that the layout cannot drift from the struct.
pub trait Uniform: bytemuck::Pod + Sealed {
    const LAYOUT: UniformLayout;
}

mod sealed {
    /// Nameable inside the crate only: no other crate can implement [`super::Uniform`].
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

/// Declares a uniform parameter struct (`#[repr(C)]`, Pod) and its [`Uniform`] layout.
/// Members may be `u32`, `i32`, `f32` or `[u32; 4]` (WGSL `vec4<u32>`).
macro_rules! uniform_params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$member_meta:meta])* $member_vis:vis $member:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $( $(#[$member_meta])* $member_vis $member: $ty ),*
        }

        impl $crate::shaders::Sealed for $name {}

        impl $crate::shaders::Uniform for $name {
            const LAYOUT: $crate::shaders::UniformLayout = $crate::shaders::UniformLayout {
                rust_name: stringify!($name),
                size: ::std::mem::size_of::<$name>(),
                members: &[$(
                    $crate::shaders::Member {
                        name: stringify!($member),
                        offset: ::std::mem::offset_of!($name, $member),
                        size: ::std::mem::size_of::<$ty>(),
                        ty: <$ty as $crate::shaders::UniformMember>::TYPE,
                    }
                ),*],
            };
        }
    };
}
pub(crate) use uniform_params;
