//! The Rust ↔ WGSL boundary, checked: every entry point of every shader is declared by a
//! launcher (`gradlens::kernels::catalogue`), and for each one naga's reading of the WGSL
//! agrees with the declaration on
//! - the uniform struct at binding 0: each member's name, offset, size and type, and the
//!   struct's size (Rust members named `_…` are padding and only count towards the size);
//! - every other binding the entry point uses: group, slot, variable name and kind (read or
//!   read-write storage buffer, read-only storage texture);
//! - where the workgroup size comes from (the `WORKGROUP_SIZE` override, which has no default
//!   in WGSL so that Rust's value is the only one; literals; or tile overrides).
//!
//! The second half mutates each side once per kind of mismatch and asserts that the check
//! reports it, so a checker that passes everything fails here.

use gradlens::kernels::catalogue;
use gradlens::shaders::{
    Access, Binding, BindingKind, EntryInterface, Member, ScalarType, Shader, UniformLayout,
    UniformType, WORKGROUP_SIZE_OVERRIDE, WorkgroupSize,
};
use naga::{AddressSpace, ImageClass, ScalarKind, StorageAccess, TypeInner, VectorSize};

struct Reflected {
    module: naga::Module,
    info: naga::valid::ModuleInfo,
}

fn reflect(name: &str, source: &str) -> Reflected {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|error| panic!("{name}: {}", error.emit_to_string(source)));
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default() | naga::valid::Capabilities::SUBGROUP,
    )
    .validate(&module)
    .unwrap_or_else(|error| panic!("{name}: {}", error.emit_to_string(source)));
    Reflected { module, info }
}

/// Everything on which entry point `index` of `reflected` disagrees with `declared`.
fn mismatches(reflected: &Reflected, index: usize, declared: &EntryInterface) -> Vec<String> {
    let module = &reflected.module;
    let entry = &module.entry_points[index];
    let uses = reflected.info.get_entry_point(index);
    let mut problems = Vec::new();
    let mut bindings = Vec::new();
    let mut uniforms = Vec::new();
    for (handle, var) in module.global_variables.iter() {
        if uses[handle].is_empty() {
            continue;
        }
        let Some(binding) = &var.binding else {
            continue; // workgroup memory
        };
        let name = var.name.clone().unwrap_or_default();
        if binding.group != 0 {
            problems.push(format!("{name} is in group {}, not 0", binding.group));
        }
        match var.space {
            AddressSpace::Uniform => uniforms.push((binding.binding, var.ty)),
            AddressSpace::Storage { access } => {
                let access = match access.contains(StorageAccess::STORE) {
                    true => Access::ReadWrite,
                    false => Access::Read,
                };
                bindings.push((binding.binding, name, BindingKind::Buffer(access)));
            }
            AddressSpace::Handle => match module.types[var.ty].inner {
                TypeInner::Image {
                    class: ImageClass::Storage { access, .. },
                    ..
                } if access == StorageAccess::LOAD => {
                    bindings.push((binding.binding, name, BindingKind::ReadOnlyTexture))
                }
                ref other => problems.push(format!("{name}: unsupported handle {other:?}")),
            },
            other => problems.push(format!("{name}: unsupported address space {other:?}")),
        }
    }
    match uniforms.as_slice() {
        [(0, ty)] => problems.extend(uniform_mismatches(module, *ty, &declared.params)),
        other => problems.push(format!(
            "uses uniforms at {:?}; the parameters belong at binding 0 alone",
            other.iter().map(|(slot, _)| slot).collect::<Vec<_>>()
        )),
    }
    let mut declared_bindings: Vec<(u32, String, BindingKind)> = declared
        .bindings
        .iter()
        .map(|binding| (binding.slot, binding.name.to_string(), binding.kind))
        .collect();
    bindings.sort_by_key(|(slot, ..)| *slot);
    declared_bindings.sort_by_key(|(slot, ..)| *slot);
    if bindings != declared_bindings {
        problems.push(format!(
            "uses bindings {bindings:?}; Rust declares {declared_bindings:?}"
        ));
    }
    problems.extend(workgroup_mismatches(module, entry, declared.workgroup));
    problems
}

fn uniform_mismatches(
    module: &naga::Module,
    ty: naga::Handle<naga::Type>,
    declared: &UniformLayout,
) -> Vec<String> {
    let TypeInner::Struct { members, span } = &module.types[ty].inner else {
        return vec!["the uniform at binding 0 is not a struct".into()];
    };
    let mut problems = Vec::new();
    if *span as usize != declared.size {
        problems.push(format!(
            "the uniform struct spans {span} bytes; {} has {}",
            declared.rust_name, declared.size
        ));
    }
    let wgsl: Vec<Member> = members
        .iter()
        .map(|member| {
            let inner = &module.types[member.ty].inner;
            Member {
                name: member.name.clone().unwrap_or_default().leak(),
                offset: member.offset as usize,
                size: inner.size(module.to_ctx()) as usize,
                ty: uniform_type(inner).unwrap_or(UniformType::Scalar(ScalarType::U32)),
            }
        })
        .collect();
    for (member, inner) in members.iter().zip(&wgsl) {
        if uniform_type(&module.types[member.ty].inner).is_none() {
            problems.push(format!(
                "member {} has a type Rust cannot mirror",
                inner.name
            ));
        }
    }
    let rust: Vec<Member> = declared
        .members
        .iter()
        .filter(|member| !member.name.starts_with('_'))
        .copied()
        .collect();
    let differing = (0..wgsl.len().max(rust.len())).find(|&i| wgsl.get(i) != rust.get(i));
    if let Some(i) = differing {
        problems.push(format!(
            "uniform member {i} differs from {}: WGSL {:?}, Rust {:?} ({} members in WGSL, {} in \
             Rust)",
            declared.rust_name,
            wgsl.get(i),
            rust.get(i),
            wgsl.len(),
            rust.len()
        ));
    }
    problems
}

fn uniform_type(inner: &TypeInner) -> Option<UniformType> {
    let scalar = |scalar: naga::Scalar| match (scalar.kind, scalar.width) {
        (ScalarKind::Uint, 4) => Some(ScalarType::U32),
        (ScalarKind::Sint, 4) => Some(ScalarType::I32),
        (ScalarKind::Float, 4) => Some(ScalarType::F32),
        _ => None,
    };
    match *inner {
        TypeInner::Scalar(s) => scalar(s).map(UniformType::Scalar),
        TypeInner::Vector { size, scalar: s } => {
            let lanes = match size {
                VectorSize::Bi => 2,
                VectorSize::Tri => 3,
                VectorSize::Quad => 4,
            };
            scalar(s).map(|s| UniformType::Vector(lanes, s))
        }
        _ => None,
    }
}

fn workgroup_mismatches(
    module: &naga::Module,
    entry: &naga::EntryPoint,
    declared: WorkgroupSize,
) -> Vec<String> {
    let override_names: Vec<Option<&str>> = match &entry.workgroup_size_overrides {
        None => Vec::new(),
        Some(axes) => axes
            .iter()
            .map(|axis| {
                axis.and_then(|expression| match module.global_expressions[expression] {
                    naga::Expression::Override(handle) => module.overrides[handle].name.as_deref(),
                    _ => None,
                })
            })
            .collect(),
    };
    let has_default = |name: &str| {
        module
            .overrides
            .iter()
            .any(|(_, o)| o.name.as_deref() == Some(name) && o.init.is_some())
    };
    let found = format!(
        "workgroup size {:?}, overrides {override_names:?}",
        entry.workgroup_size
    );
    let ok = match declared {
        WorkgroupSize::Override(size) => {
            // A power of two (the tree reductions halve it) within WebGPU's default 256
            // invocations per workgroup.
            size.is_power_of_two()
                && size <= 256
                && override_names == [Some(WORKGROUP_SIZE_OVERRIDE), None, None]
                && entry.workgroup_size[1..] == [1, 1]
                && !has_default(WORKGROUP_SIZE_OVERRIDE)
        }
        WorkgroupSize::Literal(size) => override_names.is_empty() && entry.workgroup_size == size,
        WorkgroupSize::TileOverrides => {
            !override_names.is_empty() && !override_names.contains(&Some(WORKGROUP_SIZE_OVERRIDE))
        }
    };
    match ok {
        true => Vec::new(),
        false => vec![format!(
            "declared {declared:?}; the shader has {found} (WORKGROUP_SIZE must have no default \
             and a power of two of at most 256 declared)"
        )],
    }
}

#[test]
fn every_entry_point_matches_its_rust_declaration() {
    let catalogue = catalogue();
    let mut problems = Vec::new();
    let mut checked = 0;
    for &shader in Shader::ALL {
        let reflected = reflect(shader.name(), shader.source());
        assert!(
            !reflected.module.entry_points.is_empty(),
            "{}: no entry point read",
            shader.name()
        );
        for (index, entry) in reflected.module.entry_points.iter().enumerate() {
            let declared: Vec<&EntryInterface> = catalogue
                .iter()
                .filter(|declared| declared.shader == shader && declared.name == entry.name)
                .collect();
            let [declared] = declared.as_slice() else {
                problems.push(format!(
                    "{}::{}: declared {} times in Rust (kernels::catalogue), not once",
                    shader.name(),
                    entry.name,
                    declared.len()
                ));
                continue;
            };
            for problem in mismatches(&reflected, index, declared) {
                problems.push(format!("{}::{}: {problem}", shader.name(), entry.name));
            }
            checked += 1;
        }
        for declared in catalogue
            .iter()
            .filter(|declared| declared.shader == shader)
        {
            if !reflected
                .module
                .entry_points
                .iter()
                .any(|entry| entry.name == declared.name)
            {
                problems.push(format!(
                    "{}::{}: declared in Rust but not in the shader",
                    shader.name(),
                    declared.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(checked, catalogue.len(), "every declaration was checked");
}

// ---- The check fails on every kind of mismatch ----------------------------------------------

/// fill.wgsl's `copy` and its declaration: the case every mutation below starts from.
fn copy_case() -> (String, EntryInterface) {
    let declared = catalogue()
        .into_iter()
        .find(|entry| entry.shader == Shader::Fill && entry.name == "copy")
        .expect("fill::copy is declared");
    (Shader::Fill.source().to_string(), declared)
}

fn problems_of(source: &str, declared: &EntryInterface) -> Vec<String> {
    let reflected = reflect(&format!("mutated {}.wgsl", declared.shader.name()), source);
    let index = reflected
        .module
        .entry_points
        .iter()
        .position(|entry| entry.name == declared.name)
        .expect("the entry survives the mutation");
    mismatches(&reflected, index, declared)
}

fn replaced(source: &str, from: &str, to: &str) -> String {
    assert!(source.contains(from), "{from:?} not in the source");
    source.replacen(from, to, 1)
}

#[test]
fn the_unmutated_case_passes() {
    let (source, declared) = copy_case();
    assert_eq!(problems_of(&source, &declared), Vec::<String>::new());
}

#[test]
fn a_changed_wgsl_member_or_binding_fails() {
    let (source, declared) = copy_case();
    let mutations = [
        (
            "member renamed",
            source.replace("src_offset", "source_offset"),
        ),
        (
            "member retyped",
            // bitcast<f32> of an f32 still validates.
            replaced(&source, "value_bits: u32", "value_bits: f32"),
        ),
        (
            "members reordered",
            replaced(
                &source,
                "    src_offset: u32,\n    dst_offset: u32,",
                "    dst_offset: u32,\n    src_offset: u32,",
            ),
        ),
        (
            "member added",
            replaced(
                &source,
                "    dst_offset: u32,",
                "    dst_offset: u32,\n    extra: u32,",
            ),
        ),
        (
            "member removed",
            replaced(&source, "    dst_offset: u32,\n", "").replace("params.dst_offset", "0u"),
        ),
        (
            "binding access",
            replaced(
                &source,
                "var<storage, read> src",
                "var<storage, read_write> src",
            ),
        ),
        (
            "binding slot",
            replaced(
                &source,
                "@binding(2) var<storage, read_write> dst",
                "@binding(3) var<storage, read_write> dst",
            ),
        ),
        (
            "binding group",
            replaced(&source, "@group(0) @binding(2)", "@group(1) @binding(2)"),
        ),
        (
            "binding renamed",
            replaced(
                &replaced(&source, "read_write> dst:", "read_write> destination:"),
                "dst[params",
                "destination[params",
            ),
        ),
        (
            "workgroup size literal",
            replaced(
                &source,
                "@compute @workgroup_size(WORKGROUP_SIZE)\nfn copy",
                "@compute @workgroup_size(64)\nfn copy",
            ),
        ),
        (
            "WORKGROUP_SIZE given a default",
            replaced(
                &source,
                "override WORKGROUP_SIZE: u32;",
                "override WORKGROUP_SIZE: u32 = 256u;",
            ),
        ),
    ];
    for (what, mutated) in mutations {
        assert!(
            !problems_of(&mutated, &declared).is_empty(),
            "a WGSL mutation went unnoticed: {what}"
        );
    }
}

#[test]
fn a_changed_rust_member_or_binding_fails() {
    let (source, declared) = copy_case();
    let members = declared.params.members;
    let with_members = |members: Vec<Member>, size: usize| EntryInterface {
        params: UniformLayout {
            members: members.leak(),
            size,
            ..declared.params
        },
        ..declared
    };
    let with_bindings = |bindings: Vec<Binding>| EntryInterface {
        bindings: bindings.leak(),
        ..declared
    };
    let mut renamed = members.to_vec();
    renamed[2].name = "source_offset";
    let mut retyped = members.to_vec();
    retyped[2].ty = UniformType::Scalar(ScalarType::F32);
    let mut reordered = members.to_vec();
    reordered.swap(2, 3);
    let mut added = members.to_vec();
    added.push(Member {
        name: "extra",
        offset: 16,
        size: 4,
        ty: UniformType::Scalar(ScalarType::U32),
    });
    let removed = members[..3].to_vec();
    let mut read_write = declared.bindings.to_vec();
    read_write[0].kind = BindingKind::Buffer(Access::ReadWrite);
    let mut moved = declared.bindings.to_vec();
    moved[1].slot = 3;
    let mut texture = declared.bindings.to_vec();
    texture[0].kind = BindingKind::ReadOnlyTexture;
    let size = declared.params.size;
    let mutations = [
        ("member renamed", with_members(renamed, size)),
        ("member retyped", with_members(retyped, size)),
        ("members reordered", with_members(reordered, size)),
        ("member added", with_members(added, size + 4)),
        ("member removed", with_members(removed, size - 4)),
        ("struct size", with_members(members.to_vec(), size + 16)),
        ("binding access", with_bindings(read_write)),
        ("binding slot", with_bindings(moved)),
        ("binding kind", with_bindings(texture)),
        (
            "binding dropped",
            with_bindings(declared.bindings[..1].to_vec()),
        ),
        (
            "workgroup size kind",
            EntryInterface {
                workgroup: WorkgroupSize::Literal([256, 1, 1]),
                ..declared
            },
        ),
        (
            "tile overrides where WORKGROUP_SIZE is",
            EntryInterface {
                workgroup: WorkgroupSize::TileOverrides,
                ..declared
            },
        ),
        (
            "a workgroup size no tree reduction can halve",
            EntryInterface {
                workgroup: WorkgroupSize::Override(100),
                ..declared
            },
        ),
        (
            "a workgroup size past 256",
            EntryInterface {
                workgroup: WorkgroupSize::Override(512),
                ..declared
            },
        ),
    ];
    for (what, mutated) in mutations {
        assert!(
            !problems_of(&source, &mutated).is_empty(),
            "a Rust mutation went unnoticed: {what}"
        );
    }
}

/// The other two kinds of workgroup size: a literal (pool.wgsl's 8×8 max-pool passes) and the
/// matmul's tile overrides.
#[test]
fn a_changed_literal_or_tile_workgroup_fails() {
    let declared = |shader: Shader, name: &str| {
        catalogue()
            .into_iter()
            .find(|entry| entry.shader == shader && entry.name == name)
            .expect("declared")
    };
    let pool = declared(Shader::Pool, "max_pool2d_with_argmax");
    let source = Shader::Pool.source();
    assert_eq!(problems_of(source, &pool), Vec::<String>::new());
    let literal = "@compute @workgroup_size(8, 8)\nfn max_pool2d_with_argmax";
    let mutated = replaced(
        source,
        literal,
        "@compute @workgroup_size(8, 4)\nfn max_pool2d_with_argmax",
    );
    assert!(
        !problems_of(&mutated, &pool).is_empty(),
        "8×4 for a declared 8×8"
    );
    let as_override = EntryInterface {
        workgroup: WorkgroupSize::Override(64),
        ..pool
    };
    assert!(
        !problems_of(source, &as_override).is_empty(),
        "an override for a literal"
    );

    let tiled = declared(Shader::Matmul, "matmul");
    let source = Shader::Matmul.source();
    assert_eq!(problems_of(source, &tiled), Vec::<String>::new());
    let as_literal = EntryInterface {
        workgroup: WorkgroupSize::Literal([8, 8, 1]),
        ..tiled
    };
    assert!(
        !problems_of(source, &as_literal).is_empty(),
        "a literal for tile overrides"
    );
}

// ---- Every entry fits WebGPU's default limits ------------------------------------------------

/// What `entry` binds past WebGPU's default per-stage limits (8 storage buffers, 4 storage
/// textures): a browser's adapter need offer no more, and the page runs every kernel.
fn over_default_limits(entry: &EntryInterface) -> Option<String> {
    let limits = wgpu::Limits::default();
    let count = |wanted: fn(&BindingKind) -> bool| {
        entry
            .bindings
            .iter()
            .filter(|binding| wanted(&binding.kind))
            .count() as u32
    };
    let buffers = count(|kind| matches!(kind, BindingKind::Buffer(_)));
    let textures = count(|kind| matches!(kind, BindingKind::ReadOnlyTexture));
    let over = buffers > limits.max_storage_buffers_per_shader_stage
        || textures > limits.max_storage_textures_per_shader_stage;
    over.then(|| {
        format!(
            "{}::{} binds {buffers} storage buffers and {textures} storage textures",
            entry.shader.name(),
            entry.name
        )
    })
}

#[test]
fn every_entry_fits_webgpus_default_binding_limits() {
    let problems: Vec<String> = catalogue().iter().filter_map(over_default_limits).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The check fails an entry with one storage buffer too many.
    let (_, copy) = copy_case();
    let nine: Vec<Binding> = (1..=9).map(|slot| Binding::read(slot, "b")).collect();
    let too_many = EntryInterface {
        bindings: Box::leak(nine.into_boxed_slice()),
        ..copy
    };
    assert!(over_default_limits(&too_many).is_some());
}
