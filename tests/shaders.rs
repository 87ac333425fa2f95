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
