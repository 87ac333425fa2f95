//! Every shader in the registry parses and validates with naga, independently of any device.

use gradlens::shaders::Shader;

#[test]
fn every_shader_parses_and_validates() {
    for &shader in Shader::ALL {
        let module = naga::front::wgsl::parse_str(shader.source()).unwrap_or_else(|error| {
            panic!(
                "{}: {}",
                shader.name(),
                error.emit_to_string(shader.source())
            )
        });
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            // Subgroup operations are validated too; the runtime only compiles them where offered.
            naga::valid::Capabilities::default() | naga::valid::Capabilities::SUBGROUP,
        )
        .validate(&module)
        .unwrap_or_else(|error| {
            panic!(
                "{}: {}",
                shader.name(),
                error.emit_to_string(shader.source())
            )
        });
    }
}

/// What the runtime reads off each source as writable (it forgets texture copies of buffers
/// bound there) is what naga finds: every group-0 storage buffer with write access.
#[test]
fn writable_bindings_match_naga() {
    for &shader in Shader::ALL {
        let module = naga::front::wgsl::parse_str(shader.source()).expect("parses");
        let mut from_naga: Vec<u32> = module
            .global_variables
            .iter()
            .filter(|(_, var)| match var.space {
                naga::AddressSpace::Storage { access } => {
                    access.contains(naga::StorageAccess::STORE)
                }
                _ => false,
            })
            .filter_map(|(_, var)| var.binding.as_ref())
            .map(|binding| {
                assert_eq!(binding.group, 0, "{}: only group 0 is bound", shader.name());
                binding.binding
            })
            .collect();
        let mut read_off = shader.writable_bindings();
        from_naga.sort();
        read_off.sort();
        assert_eq!(read_off, from_naga, "{}", shader.name());
        assert!(!from_naga.is_empty(), "{} writes nothing", shader.name());
    }
}

#[test]
fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".wgsl"))
        .collect();
    files.sort();
    let mut registered: Vec<String> = Shader::ALL
        .iter()
        .map(|shader| format!("{}.wgsl", shader.name()))
        .collect();
    registered.sort();
    assert_eq!(
        files, registered,
        "shaders/ and Shader::ALL must list the same files"
    );
}

#[test]
fn every_shader_opens_with_a_header_comment() {
    for &shader in Shader::ALL {
        let first = shader.source().lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("// {}.wgsl", shader.name())),
            "{} must open with its header comment",
            shader.name()
        );
    }
}
