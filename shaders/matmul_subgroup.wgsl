// matmul_subgroup.wgsl — C = A · B (batched) for adapters with 8-lane subgroups (lavapipe).
//
// Why a separate kernel: on lavapipe every storage load whose address differs across the 8 SIMD
// lanes runs as a scalar loop over the lanes, so the cost of a matmul is its number of loads,
// not its FMAs. Here each value of A is loaded once per subgroup, by one lane, and handed to
// the others with subgroupBroadcast (an extract and a splat on lavapipe); each lane loads only
// its own columns of B. Per four steps of K a subgroup loads 4·(8·ROW_GROUPS) values of A and
// 4·(32·COLUMN_VECS) of B for 8·ROW_GROUPS × 32·COLUMN_VECS × 4 FMAs.
//
// Layouts: A [M, K], B [K, N], C [M, N], row-major f32; batch b at b · batch_stride_* (0 shares
//   an operand). K and N must be multiples of 4 (A and B are read as rows of vec4).
// Dispatch: one workgroup = one subgroup of 8 invocations (lane = subgroup_invocation_id);
//   workgroups (ceil(N / (32·COLUMN_VECS)), ceil(M / (8·ROW_GROUPS)), batch). Lane l loads rows
//   row0 + l, row0 + 8 + l, ... of A and owns the vec4 columns col4_0 + l (+ 8) of C.
// Bindings: 0 params (uniform), 1 a (read, vec4), 2 b (read, vec4), 3 c (read_write).
// Overrides: ROW_GROUPS (1, 2 or 4) — rows of C per subgroup in eights;
//   COLUMN_VECS (1 or 2) — vec4 columns of C per lane.
// The tile is spelled out with named accumulators: subgroupBroadcast needs a constant lane,
// and named values stay in registers where indexed arrays would not.

// (No `enable subgroups;`: naga 30 rejects the directive and accepts the built-ins without it.)

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch_stride_a: u32,
    batch_stride_b: u32,
    batch_stride_c: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

override ROW_GROUPS: u32 = 2u;
override COLUMN_VECS: u32 = 1u;

// Writes C[row, 4·col4 .. 4·col4 + 4] unless the row or the column block lies outside C.
fn store_c(base: u32, row: u32, col4: u32, values: vec4<f32>) {
    if row < params.m && col4 < params.n / 4u {
        let at = base + row * params.n + col4 * 4u;
        c[at] = values.x;
        c[at + 1u] = values.y;
        c[at + 2u] = values.z;
        c[at + 3u] = values.w;
    }
}

@compute @workgroup_size(8)
fn matmul_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32) {
    let k4 = params.k / 4u;
    let n4 = params.n / 4u;
    let row0 = wid.y * 8u * ROW_GROUPS;
    let col4_0 = wid.x * 8u * COLUMN_VECS + lane;
    let col4_1 = col4_0 + 8u;
    let last_row = params.m - 1u;
    let base_a = wid.z * params.batch_stride_a / 4u;
    let base_b = wid.z * params.batch_stride_b / 4u;
    // This lane's rows of A (clamped: their results are never stored) and columns of B.
    let a_row0 = base_a + min(row0 + 0u + lane, last_row) * k4;
    let a_row1 = base_a + min(row0 + 8u + lane, last_row) * k4;
    let a_row2 = base_a + min(row0 + 16u + lane, last_row) * k4;
    let a_row3 = base_a + min(row0 + 24u + lane, last_row) * k4;
    let b_col0 = base_b + min(col4_0, n4 - 1u);
    let b_col1 = base_b + min(col4_1, n4 - 1u);

    var acc0_0 = vec4<f32>(0.0);
    var acc0_1 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0);
    var acc1_1 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0);
    var acc2_1 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0);
    var acc3_1 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0);
    var acc4_1 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0);
    var acc5_1 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0);
    var acc6_1 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0);
    var acc7_1 = vec4<f32>(0.0);
    var acc8_0 = vec4<f32>(0.0);
    var acc8_1 = vec4<f32>(0.0);
    var acc9_0 = vec4<f32>(0.0);
    var acc9_1 = vec4<f32>(0.0);
    var acc10_0 = vec4<f32>(0.0);
    var acc10_1 = vec4<f32>(0.0);
    var acc11_0 = vec4<f32>(0.0);
    var acc11_1 = vec4<f32>(0.0);
    var acc12_0 = vec4<f32>(0.0);
    var acc12_1 = vec4<f32>(0.0);
    var acc13_0 = vec4<f32>(0.0);
    var acc13_1 = vec4<f32>(0.0);
    var acc14_0 = vec4<f32>(0.0);
    var acc14_1 = vec4<f32>(0.0);
    var acc15_0 = vec4<f32>(0.0);
    var acc15_1 = vec4<f32>(0.0);
    var acc16_0 = vec4<f32>(0.0);
    var acc16_1 = vec4<f32>(0.0);
    var acc17_0 = vec4<f32>(0.0);
    var acc17_1 = vec4<f32>(0.0);
    var acc18_0 = vec4<f32>(0.0);
    var acc18_1 = vec4<f32>(0.0);
    var acc19_0 = vec4<f32>(0.0);
    var acc19_1 = vec4<f32>(0.0);
    var acc20_0 = vec4<f32>(0.0);
    var acc20_1 = vec4<f32>(0.0);
    var acc21_0 = vec4<f32>(0.0);
    var acc21_1 = vec4<f32>(0.0);
    var acc22_0 = vec4<f32>(0.0);
    var acc22_1 = vec4<f32>(0.0);
    var acc23_0 = vec4<f32>(0.0);
    var acc23_1 = vec4<f32>(0.0);
    var acc24_0 = vec4<f32>(0.0);
    var acc24_1 = vec4<f32>(0.0);
    var acc25_0 = vec4<f32>(0.0);
    var acc25_1 = vec4<f32>(0.0);
    var acc26_0 = vec4<f32>(0.0);
    var acc26_1 = vec4<f32>(0.0);
    var acc27_0 = vec4<f32>(0.0);
    var acc27_1 = vec4<f32>(0.0);
    var acc28_0 = vec4<f32>(0.0);
    var acc28_1 = vec4<f32>(0.0);
    var acc29_0 = vec4<f32>(0.0);
    var acc29_1 = vec4<f32>(0.0);
    var acc30_0 = vec4<f32>(0.0);
    var acc30_1 = vec4<f32>(0.0);
    var acc31_0 = vec4<f32>(0.0);
    var acc31_1 = vec4<f32>(0.0);

    for (var kk = 0u; kk < k4; kk++) {
        let row_b = kk * 4u * n4;
        // Columns: rows kk·4 .. kk·4+4 of B, so block * a_r sums a_r.x·B[4kk] + ... + a_r.w·B[4kk+3].
        let block0 = mat4x4<f32>(b[b_col0 + row_b], b[b_col0 + row_b + n4],
                                 b[b_col0 + row_b + 2u * n4], b[b_col0 + row_b + 3u * n4]);
        var block1 = block0;
        if COLUMN_VECS == 2u {
            block1 = mat4x4<f32>(b[b_col1 + row_b], b[b_col1 + row_b + n4],
                                 b[b_col1 + row_b + 2u * n4], b[b_col1 + row_b + 3u * n4]);
        }
        let a0 = a[a_row0 + kk];
        let x0 = subgroupBroadcast(a0, 0u);
        acc0_0 += block0 * x0;
        if COLUMN_VECS == 2u { acc0_1 += block1 * x0; }
        let x1 = subgroupBroadcast(a0, 1u);
        acc1_0 += block0 * x1;
        if COLUMN_VECS == 2u { acc1_1 += block1 * x1; }
        let x2 = subgroupBroadcast(a0, 2u);
        acc2_0 += block0 * x2;
        if COLUMN_VECS == 2u { acc2_1 += block1 * x2; }
        let x3 = subgroupBroadcast(a0, 3u);
        acc3_0 += block0 * x3;
        if COLUMN_VECS == 2u { acc3_1 += block1 * x3; }
        let x4 = subgroupBroadcast(a0, 4u);
        acc4_0 += block0 * x4;
        if COLUMN_VECS == 2u { acc4_1 += block1 * x4; }
        let x5 = subgroupBroadcast(a0, 5u);
        acc5_0 += block0 * x5;
        if COLUMN_VECS == 2u { acc5_1 += block1 * x5; }
        let x6 = subgroupBroadcast(a0, 6u);
        acc6_0 += block0 * x6;
        if COLUMN_VECS == 2u { acc6_1 += block1 * x6; }
        let x7 = subgroupBroadcast(a0, 7u);
        acc7_0 += block0 * x7;
        if COLUMN_VECS == 2u { acc7_1 += block1 * x7; }
        if ROW_GROUPS >= 2u {
            let a1 = a[a_row1 + kk];
            let x8 = subgroupBroadcast(a1, 0u);
            acc8_0 += block0 * x8;
            if COLUMN_VECS == 2u { acc8_1 += block1 * x8; }
            let x9 = subgroupBroadcast(a1, 1u);
            acc9_0 += block0 * x9;
            if COLUMN_VECS == 2u { acc9_1 += block1 * x9; }
            let x10 = subgroupBroadcast(a1, 2u);
            acc10_0 += block0 * x10;
            if COLUMN_VECS == 2u { acc10_1 += block1 * x10; }
            let x11 = subgroupBroadcast(a1, 3u);
            acc11_0 += block0 * x11;
            if COLUMN_VECS == 2u { acc11_1 += block1 * x11; }
            let x12 = subgroupBroadcast(a1, 4u);
            acc12_0 += block0 * x12;
            if COLUMN_VECS == 2u { acc12_1 += block1 * x12; }
            let x13 = subgroupBroadcast(a1, 5u);
            acc13_0 += block0 * x13;
            if COLUMN_VECS == 2u { acc13_1 += block1 * x13; }
            let x14 = subgroupBroadcast(a1, 6u);
            acc14_0 += block0 * x14;
            if COLUMN_VECS == 2u { acc14_1 += block1 * x14; }
            let x15 = subgroupBroadcast(a1, 7u);
            acc15_0 += block0 * x15;
            if COLUMN_VECS == 2u { acc15_1 += block1 * x15; }
        }
        if ROW_GROUPS == 4u {
            let a2 = a[a_row2 + kk];
            let x16 = subgroupBroadcast(a2, 0u);
            acc16_0 += block0 * x16;
            if COLUMN_VECS == 2u { acc16_1 += block1 * x16; }
            let x17 = subgroupBroadcast(a2, 1u);
            acc17_0 += block0 * x17;
            if COLUMN_VECS == 2u { acc17_1 += block1 * x17; }
            let x18 = subgroupBroadcast(a2, 2u);
            acc18_0 += block0 * x18;
            if COLUMN_VECS == 2u { acc18_1 += block1 * x18; }
            let x19 = subgroupBroadcast(a2, 3u);
            acc19_0 += block0 * x19;
            if COLUMN_VECS == 2u { acc19_1 += block1 * x19; }
            let x20 = subgroupBroadcast(a2, 4u);
            acc20_0 += block0 * x20;
            if COLUMN_VECS == 2u { acc20_1 += block1 * x20; }
            let x21 = subgroupBroadcast(a2, 5u);
            acc21_0 += block0 * x21;
            if COLUMN_VECS == 2u { acc21_1 += block1 * x21; }
            let x22 = subgroupBroadcast(a2, 6u);
            acc22_0 += block0 * x22;
            if COLUMN_VECS == 2u { acc22_1 += block1 * x22; }
            let x23 = subgroupBroadcast(a2, 7u);
            acc23_0 += block0 * x23;
            if COLUMN_VECS == 2u { acc23_1 += block1 * x23; }
            let a3 = a[a_row3 + kk];
            let x24 = subgroupBroadcast(a3, 0u);
            acc24_0 += block0 * x24;
            if COLUMN_VECS == 2u { acc24_1 += block1 * x24; }
            let x25 = subgroupBroadcast(a3, 1u);
            acc25_0 += block0 * x25;
            if COLUMN_VECS == 2u { acc25_1 += block1 * x25; }
            let x26 = subgroupBroadcast(a3, 2u);
            acc26_0 += block0 * x26;
            if COLUMN_VECS == 2u { acc26_1 += block1 * x26; }
            let x27 = subgroupBroadcast(a3, 3u);
            acc27_0 += block0 * x27;
            if COLUMN_VECS == 2u { acc27_1 += block1 * x27; }
            let x28 = subgroupBroadcast(a3, 4u);
            acc28_0 += block0 * x28;
            if COLUMN_VECS == 2u { acc28_1 += block1 * x28; }
            let x29 = subgroupBroadcast(a3, 5u);
            acc29_0 += block0 * x29;
            if COLUMN_VECS == 2u { acc29_1 += block1 * x29; }
            let x30 = subgroupBroadcast(a3, 6u);
            acc30_0 += block0 * x30;
            if COLUMN_VECS == 2u { acc30_1 += block1 * x30; }
            let x31 = subgroupBroadcast(a3, 7u);
            acc31_0 += block0 * x31;
            if COLUMN_VECS == 2u { acc31_1 += block1 * x31; }
        }
    }

    let base_c = wid.z * params.batch_stride_c;
    store_c(base_c, row0 + 0u, col4_0, acc0_0);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 0u, col4_1, acc0_1); }
    store_c(base_c, row0 + 1u, col4_0, acc1_0);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 1u, col4_1, acc1_1); }
    store_c(base_c, row0 + 2u, col4_0, acc2_0);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 2u, col4_1, acc2_1); }
    store_c(base_c, row0 + 3u, col4_0, acc3_0);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 3u, col4_1, acc3_1); }
    store_c(base_c, row0 + 4u, col4_0, acc4_0);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 4u, col4_1, acc4_1); }
    store_c(base_c, row0 + 5u, col4_0, acc5_0);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 5u, col4_1, acc5_1); }
    store_c(base_c, row0 + 6u, col4_0, acc6_0);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 6u, col4_1, acc6_1); }
    store_c(base_c, row0 + 7u, col4_0, acc7_0);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 7u, col4_1, acc7_1); }
    if ROW_GROUPS >= 2u {
        store_c(base_c, row0 + 8u, col4_0, acc8_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 8u, col4_1, acc8_1); }
        store_c(base_c, row0 + 9u, col4_0, acc9_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 9u, col4_1, acc9_1); }
        store_c(base_c, row0 + 10u, col4_0, acc10_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 10u, col4_1, acc10_1); }
        store_c(base_c, row0 + 11u, col4_0, acc11_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 11u, col4_1, acc11_1); }
        store_c(base_c, row0 + 12u, col4_0, acc12_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 12u, col4_1, acc12_1); }
        store_c(base_c, row0 + 13u, col4_0, acc13_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 13u, col4_1, acc13_1); }
        store_c(base_c, row0 + 14u, col4_0, acc14_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 14u, col4_1, acc14_1); }
        store_c(base_c, row0 + 15u, col4_0, acc15_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 15u, col4_1, acc15_1); }
    }
    if ROW_GROUPS == 4u {
        store_c(base_c, row0 + 16u, col4_0, acc16_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 16u, col4_1, acc16_1); }
        store_c(base_c, row0 + 17u, col4_0, acc17_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 17u, col4_1, acc17_1); }
        store_c(base_c, row0 + 18u, col4_0, acc18_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 18u, col4_1, acc18_1); }
        store_c(base_c, row0 + 19u, col4_0, acc19_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 19u, col4_1, acc19_1); }
        store_c(base_c, row0 + 20u, col4_0, acc20_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 20u, col4_1, acc20_1); }
        store_c(base_c, row0 + 21u, col4_0, acc21_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 21u, col4_1, acc21_1); }
        store_c(base_c, row0 + 22u, col4_0, acc22_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 22u, col4_1, acc22_1); }
        store_c(base_c, row0 + 23u, col4_0, acc23_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 23u, col4_1, acc23_1); }
        store_c(base_c, row0 + 24u, col4_0, acc24_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 24u, col4_1, acc24_1); }
        store_c(base_c, row0 + 25u, col4_0, acc25_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 25u, col4_1, acc25_1); }
        store_c(base_c, row0 + 26u, col4_0, acc26_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 26u, col4_1, acc26_1); }
        store_c(base_c, row0 + 27u, col4_0, acc27_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 27u, col4_1, acc27_1); }
        store_c(base_c, row0 + 28u, col4_0, acc28_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 28u, col4_1, acc28_1); }
        store_c(base_c, row0 + 29u, col4_0, acc29_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 29u, col4_1, acc29_1); }
        store_c(base_c, row0 + 30u, col4_0, acc30_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 30u, col4_1, acc30_1); }
        store_c(base_c, row0 + 31u, col4_0, acc31_0);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 31u, col4_1, acc31_1); }
    }
}
