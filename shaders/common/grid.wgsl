
// common/grid.wgsl — appended by src/shaders/mod.rs to every shader whose workgroup size is
// set from Rust (WGSL lets a module use a declaration that comes after the use).

override WORKGROUP_SIZE: u32; // set from Rust (the entry declarations in src/kernels/)

// Where an entry point's invocation runs: its workgroup, the grid's size in workgroups and its
// index within the workgroup. Each entry point takes one (`fn name(at: Invocation)`).
struct Invocation {
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
}

// A launch of more workgroups than one grid dimension holds (65535) is folded into a 2-D grid
// by `Launch` (src/kernels/launch.rs): rows of num_workgroups.x, x fastest.
fn workgroup_index(at: Invocation) -> u32 {
    return at.wid.y * at.groups.x + at.wid.x;
}

// The invocation's index in a 1-D launch of WORKGROUP_SIZE-wide workgroups, folded as above.
fn invocation_index(at: Invocation) -> u32 {
    return workgroup_index(at) * WORKGROUP_SIZE + at.lid;
}
