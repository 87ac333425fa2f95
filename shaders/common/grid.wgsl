
// common/grid.wgsl — appended by src/shaders/mod.rs to every shader whose workgroup size is
// set from Rust (WGSL lets a module use a declaration that comes after the use).

override WORKGROUP_SIZE: u32; // set from Rust (the entry declarations in src/kernels/)

// Where an entry point's workgroup lies: its id and the grid's size in workgroups, the same for
// every invocation of the workgroup (so WGSL's uniformity analysis lets a workgroup return
// early on them before a barrier). Each entry point takes one beside its invocation's index in
// the workgroup: `fn name(at: Workgroup, @builtin(local_invocation_index) lid: u32)`.
struct Workgroup {
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
}

// A launch of more workgroups than one grid dimension holds (65535) is folded into a 2-D grid
// by `Launch` (src/kernels/launch.rs): rows of num_workgroups.x, x fastest.
fn workgroup_index(at: Workgroup) -> u32 {
    return at.wid.y * at.groups.x + at.wid.x;
}

// The invocation's index in a 1-D launch of WORKGROUP_SIZE-wide workgroups, folded as above.
fn invocation_index(at: Workgroup, lid: u32) -> u32 {
    return workgroup_index(at) * WORKGROUP_SIZE + lid;
}
