// finite.wgsl — `--check-finite`: flags a tensor that holds NaN or ±Inf.
//
//   flag_non_finite: flags[slot] becomes 1 if any x[i] has an all-ones exponent (NaN or ±Inf;
//                    WGSL has no isNan, and fast-math compilers may fold x != x away, so the
//                    test is on the bits)
//
// Many tensors share one flags buffer, one u32 slot each, zeroed when the buffer is created;
// nothing is read back until the caller asks which slot was flagged first.
// Dispatch: one invocation per element, WORKGROUP_SIZE per workgroup, folded into a 2-D grid
// (linear id = wid.y · nx + wid.x).
// Bindings: 0 params, 1 x (read), 2 flags (read_write, atomic).
// Overrides: WORKGROUP_SIZE — invocations per workgroup, set from Rust.

struct Params {
    count: u32,
    slot: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> flags: array<atomic<u32>>;


@compute @workgroup_size(WORKGROUP_SIZE)
fn flag_non_finite(at: Workgroup, @builtin(local_invocation_index) lid: u32) {
    let i = invocation_index(at, lid);
    if i >= params.count {
        return;
    }
    if (x[i] & 0x7f800000u) == 0x7f800000u {
        atomicMax(&flags[params.slot], 1u);
    }
}
