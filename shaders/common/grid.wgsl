
// common/grid.wgsl — appended by src/shaders/mod.rs to every shader whose workgroup size is
// set from Rust (WGSL lets a module use a declaration that comes after the use).

override WORKGROUP_SIZE: u32; // set from Rust (the entry declarations in src/kernels/)

// A launch of more workgroups than one grid dimension holds (65535) is folded into a 2-D grid
// by `Launch` (src/kernels/launch.rs): rows of num_workgroups.x, x fastest.
fn workgroup_index(wid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wid.y * groups.x + wid.x;
}

// The invocation's index in a 1-D launch of WORKGROUP_SIZE-wide workgroups, folded as above.
fn invocation_index(wid: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    return workgroup_index(wid, groups) * WORKGROUP_SIZE + lid;
}
