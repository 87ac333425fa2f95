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
//   TRANSPOSE_A: A is stored [K, M] (M a multiple of 4 as well); TRANSPOSE_B: B is stored
//   [N, K]. A transposed operand costs the same loads: a 4×4 block read as four vec4s along
//   the other axis and transposed in registers (free on lavapipe, whose vectors are one
//   register per component), so no transpose pass runs before the product.
//   TEXTURES: A and B are read from a_texture and b_texture instead, byte-for-byte copies of
//   their buffers laid into rows of 2^{a,b}_texture_width_log2 texels: texel i (at column
//   i mod width, row i / width) holds the buffer's vec4 i, so every index is the buffer's.
//   Read-only storage-texture loads cost lavapipe about half what storage-buffer loads or
//   sampled-texture fetches do (BENCHMARKS.md). The bindings are declared either way.
// Dispatch: one workgroup = one subgroup of 8 invocations (lane = subgroup_invocation_id);
//   workgroups (ceil(N / (32·COLUMN_VECS)), ceil(M / (8·ROW_GROUPS)), batch). Per group of 8
//   rows of C, each lane loads one vec4 of A per step of 4 along K: untransposed, row
//   row0 + lane; transposed, the 4 rows row0 + 4·(lane / 4) .. at k = 4·kk + lane % 4. Lane l
//   owns the vec4 columns col4_0 + l (+ 8) of C.
// Epilogue (params.epilogue; a convolution's output channels are the rows of C): each value of
//   row r is stored as relu?(value · row_affine[r] + row_affine[M + r]) — an eval-mode BatchNorm
//   folded, and the ReLU, that would follow as a pass. (A residual add is left to that pass:
//   its per-lane loads at every store made llvmpipe's compile several times slower.)
// Bindings: 0 params (uniform), 1 a (read, vec4), 2 b (read, vec4), 3 c (read_write, vec4),
//   4 a_texture, 5 b_texture (rgba32float read-only storage textures), 6 row_affine (read,
//   [2, M]).
// Overrides: ROW_GROUPS (1, 2 or 4) — rows of C per subgroup in eights;
//   COLUMN_VECS (1 or 2) — vec4 columns of C per lane; TRANSPOSE_A, TRANSPOSE_B, TEXTURES
//   (0 or 1). Whether the stores go through the epilogue is a parameter, not an override, so
//   that products with and without it share one pipeline: llvmpipe compiles each pipeline at
//   its first dispatch, and these compiles were a cold start's largest cost (BENCHMARKS.md).
// The tile is spelled out with named accumulators: subgroupBroadcast needs a constant lane,
// and named values stay in registers where indexed arrays would not. (So are its stores: a
// loop over the rows cut their compile on llvmpipe to a quarter, but it kept the accumulators
// in an array in memory, and the products ran 10–20% slower.)

// (No `enable subgroups;`: naga 30 rejects the directive and accepts the built-ins without it.)

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch_stride_a: u32,
    batch_stride_b: u32,
    batch_stride_c: u32,
    a_texture_width_log2: u32,
    b_texture_width_log2: u32,
    // Whether the stores go through the epilogue, and whether it applies a ReLU (uniform
    // branches, not overrides, so that every product of a tile shares one pipeline).
    relu: u32,
    epilogue: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(4) var a_texture: texture_storage_2d<rgba32float, read>;
@group(0) @binding(5) var b_texture: texture_storage_2d<rgba32float, read>;
@group(0) @binding(6) var<storage, read> row_affine: array<f32>;

override ROW_GROUPS: u32 = 2u;
override COLUMN_VECS: u32 = 1u;
override TRANSPOSE_A: u32 = 0u;
override TRANSPOSE_B: u32 = 0u;
override TEXTURES: u32 = 0u;

// Where this lane's vec4 of A for the group of rows starting at first_row lies at kk = 0
// (vec4 units); it moves by a_step() per step of kk. Rows past M are clamped: their results
// are never stored.
fn a_start(base_a: u32, first_row: u32, lane: u32) -> u32 {
    if TRANSPOSE_A != 0u {
        let m4 = params.m / 4u;
        return base_a + (lane % 4u) * m4 + min(first_row / 4u + lane / 4u, m4 - 1u);
    }
    return base_a + min(first_row + lane, params.m - 1u) * (params.k / 4u);
}

fn a_step() -> u32 {
    if TRANSPOSE_A != 0u {
        return params.m; // four rows of Aᵀ: 4 · M / 4 vec4s
    }
    return 1u;
}

// Rows 0–3 (lanes 0–3) or 4–7 (lanes 4–7) of the group as the columns of a matrix, each
// column one row's 4 values along K, from the vec4 every lane loaded.
fn group_rows(v: vec4<f32>, first_lane: u32) -> mat4x4<f32> {
    var rows: mat4x4<f32>;
    if first_lane == 0u {
        rows = mat4x4<f32>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u),
                           subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u));
    } else {
        rows = mat4x4<f32>(subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u),
                           subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
    }
    if TRANSPOSE_A != 0u {
        // Lanes held one k each for four rows: the columns become rows.
        return transpose(rows);
    }
    return rows;
}

// B's 4×4 block of batch `batch` at step kk for this lane's vec4 column col4 (clamped: never
// stored past N): column j is row 4·kk + j of B, so block * x sums x.j · B[4kk + j].
fn b_block(batch: u32, col4: u32, kk: u32) -> mat4x4<f32> {
    let n4 = params.n / 4u;
    let col = min(col4, n4 - 1u);
    let base_b = batch * params.batch_stride_b / 4u;
    if TRANSPOSE_B != 0u {
        // Bᵀ stored [N, K]: this lane's 4 columns are 4 rows of it, read along K.
        let k4 = params.k / 4u;
        let at = base_b + 4u * col * k4 + kk;
        return transpose(mat4x4<f32>(b_vec4(at), b_vec4(at + k4), b_vec4(at + 2u * k4),
                                     b_vec4(at + 3u * k4)));
    }
    let at = base_b + col + kk * 4u * n4;
    return mat4x4<f32>(b_vec4(at), b_vec4(at + n4), b_vec4(at + 2u * n4), b_vec4(at + 3u * n4));
}

// The vec4 `index` of A's or B's buffer, from the buffer or its texture (see TEXTURES above).
fn a_vec4(index: u32) -> vec4<f32> {
    if TEXTURES != 0u {
        return texel(a_texture, params.a_texture_width_log2, index);
    }
    return a[index];
}

fn b_vec4(index: u32) -> vec4<f32> {
    if TEXTURES != 0u {
        return texel(b_texture, params.b_texture_width_log2, index);
    }
    return b[index];
}

// Texel `index` of a texture whose rows are 2^width_log2 texels.
fn texel(texture: texture_storage_2d<rgba32float, read>, width_log2: u32, index: u32)
    -> vec4<f32> {
    let column = index & ((1u << width_log2) - 1u);
    return textureLoad(texture, vec2<u32>(column, index >> width_log2));
}

// Writes C[row, 4·col4 .. 4·col4 + 4], through the epilogue with the row's (scale, shift)
// `affine`, unless the row or the column block lies outside C.
fn store_c(base: u32, row: u32, col4: u32, values: vec4<f32>, affine: vec2<f32>) {
    if row < params.m && col4 < params.n / 4u {
        let at = base + row * (params.n / 4u) + col4;
        c[at] = finished(values, affine);
    }
}

// The (scale, shift) of row first_row + lane, for the group of 8 rows from first_row to hand
// around with subgroupBroadcast: one load per lane where every lane loading every row's
// constants would cost 8 (loads are what this kernel spends its time on). (1, 0) without the
// epilogue; rows past M are clamped.
fn lane_affine(first_row: u32, lane: u32) -> vec2<f32> {
    if params.epilogue == 0u {
        return vec2<f32>(1.0, 0.0);
    }
    let row = min(first_row + lane, params.m - 1u);
    return vec2<f32>(row_affine[row], row_affine[params.m + row]);
}

// The epilogue (see above) for four values of a row with (scale, shift) `affine`.
fn finished(values: vec4<f32>, affine: vec2<f32>) -> vec4<f32> {
    let y = values * affine.x + affine.y;
    return select(y, max(y, vec4<f32>(0.0)), params.relu != 0u);
}

@compute @workgroup_size(8)
fn matmul_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32) {
    let k4 = params.k / 4u;
    let row0 = wid.y * 8u * ROW_GROUPS;
    let col4_0 = wid.x * 8u * COLUMN_VECS + lane;
    let col4_1 = col4_0 + 8u;
    let base_a = wid.z * params.batch_stride_a / 4u;
    let a_row0 = a_start(base_a, row0, lane);
    let a_row1 = a_start(base_a, row0 + 8u, lane);
    let a_row2 = a_start(base_a, row0 + 16u, lane);
    let a_row3 = a_start(base_a, row0 + 24u, lane);
    let step_a = a_step();

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
        let block0 = b_block(wid.z, col4_0, kk);
        var block1 = block0;
        if COLUMN_VECS == 2u {
            block1 = b_block(wid.z, col4_1, kk);
        }
        let a0 = a_vec4(a_row0 + kk * step_a);
        let lo0 = group_rows(a0, 0u);
        let hi0 = group_rows(a0, 4u);
        let x0 = lo0[0];
        acc0_0 += block0 * x0;
        if COLUMN_VECS == 2u { acc0_1 += block1 * x0; }
        let x1 = lo0[1];
        acc1_0 += block0 * x1;
        if COLUMN_VECS == 2u { acc1_1 += block1 * x1; }
        let x2 = lo0[2];
        acc2_0 += block0 * x2;
        if COLUMN_VECS == 2u { acc2_1 += block1 * x2; }
        let x3 = lo0[3];
        acc3_0 += block0 * x3;
        if COLUMN_VECS == 2u { acc3_1 += block1 * x3; }
        let x4 = hi0[0];
        acc4_0 += block0 * x4;
        if COLUMN_VECS == 2u { acc4_1 += block1 * x4; }
        let x5 = hi0[1];
        acc5_0 += block0 * x5;
        if COLUMN_VECS == 2u { acc5_1 += block1 * x5; }
        let x6 = hi0[2];
        acc6_0 += block0 * x6;
        if COLUMN_VECS == 2u { acc6_1 += block1 * x6; }
        let x7 = hi0[3];
        acc7_0 += block0 * x7;
        if COLUMN_VECS == 2u { acc7_1 += block1 * x7; }
        if ROW_GROUPS >= 2u {
            let a1 = a_vec4(a_row1 + kk * step_a);
            let lo1 = group_rows(a1, 0u);
            let hi1 = group_rows(a1, 4u);
            let x8 = lo1[0];
            acc8_0 += block0 * x8;
            if COLUMN_VECS == 2u { acc8_1 += block1 * x8; }
            let x9 = lo1[1];
            acc9_0 += block0 * x9;
            if COLUMN_VECS == 2u { acc9_1 += block1 * x9; }
            let x10 = lo1[2];
            acc10_0 += block0 * x10;
            if COLUMN_VECS == 2u { acc10_1 += block1 * x10; }
            let x11 = lo1[3];
            acc11_0 += block0 * x11;
            if COLUMN_VECS == 2u { acc11_1 += block1 * x11; }
            let x12 = hi1[0];
            acc12_0 += block0 * x12;
            if COLUMN_VECS == 2u { acc12_1 += block1 * x12; }
            let x13 = hi1[1];
            acc13_0 += block0 * x13;
            if COLUMN_VECS == 2u { acc13_1 += block1 * x13; }
            let x14 = hi1[2];
            acc14_0 += block0 * x14;
            if COLUMN_VECS == 2u { acc14_1 += block1 * x14; }
            let x15 = hi1[3];
            acc15_0 += block0 * x15;
            if COLUMN_VECS == 2u { acc15_1 += block1 * x15; }
        }
        if ROW_GROUPS == 4u {
            let a2 = a_vec4(a_row2 + kk * step_a);
            let lo2 = group_rows(a2, 0u);
            let hi2 = group_rows(a2, 4u);
            let x16 = lo2[0];
            acc16_0 += block0 * x16;
            if COLUMN_VECS == 2u { acc16_1 += block1 * x16; }
            let x17 = lo2[1];
            acc17_0 += block0 * x17;
            if COLUMN_VECS == 2u { acc17_1 += block1 * x17; }
            let x18 = lo2[2];
            acc18_0 += block0 * x18;
            if COLUMN_VECS == 2u { acc18_1 += block1 * x18; }
            let x19 = lo2[3];
            acc19_0 += block0 * x19;
            if COLUMN_VECS == 2u { acc19_1 += block1 * x19; }
            let x20 = hi2[0];
            acc20_0 += block0 * x20;
            if COLUMN_VECS == 2u { acc20_1 += block1 * x20; }
            let x21 = hi2[1];
            acc21_0 += block0 * x21;
            if COLUMN_VECS == 2u { acc21_1 += block1 * x21; }
            let x22 = hi2[2];
            acc22_0 += block0 * x22;
            if COLUMN_VECS == 2u { acc22_1 += block1 * x22; }
            let x23 = hi2[3];
            acc23_0 += block0 * x23;
            if COLUMN_VECS == 2u { acc23_1 += block1 * x23; }
            let a3 = a_vec4(a_row3 + kk * step_a);
            let lo3 = group_rows(a3, 0u);
            let hi3 = group_rows(a3, 4u);
            let x24 = lo3[0];
            acc24_0 += block0 * x24;
            if COLUMN_VECS == 2u { acc24_1 += block1 * x24; }
            let x25 = lo3[1];
            acc25_0 += block0 * x25;
            if COLUMN_VECS == 2u { acc25_1 += block1 * x25; }
            let x26 = lo3[2];
            acc26_0 += block0 * x26;
            if COLUMN_VECS == 2u { acc26_1 += block1 * x26; }
            let x27 = lo3[3];
            acc27_0 += block0 * x27;
            if COLUMN_VECS == 2u { acc27_1 += block1 * x27; }
            let x28 = hi3[0];
            acc28_0 += block0 * x28;
            if COLUMN_VECS == 2u { acc28_1 += block1 * x28; }
            let x29 = hi3[1];
            acc29_0 += block0 * x29;
            if COLUMN_VECS == 2u { acc29_1 += block1 * x29; }
            let x30 = hi3[2];
            acc30_0 += block0 * x30;
            if COLUMN_VECS == 2u { acc30_1 += block1 * x30; }
            let x31 = hi3[3];
            acc31_0 += block0 * x31;
            if COLUMN_VECS == 2u { acc31_1 += block1 * x31; }
        }
    }

    let base_c = wid.z * params.batch_stride_c / 4u;
    let affine0 = lane_affine(row0 + 0u, lane);
    let row_affine0 = subgroupBroadcast(affine0, 0u);
    let row_affine1 = subgroupBroadcast(affine0, 1u);
    let row_affine2 = subgroupBroadcast(affine0, 2u);
    let row_affine3 = subgroupBroadcast(affine0, 3u);
    let row_affine4 = subgroupBroadcast(affine0, 4u);
    let row_affine5 = subgroupBroadcast(affine0, 5u);
    let row_affine6 = subgroupBroadcast(affine0, 6u);
    let row_affine7 = subgroupBroadcast(affine0, 7u);
    store_c(base_c, row0 + 0u, col4_0, acc0_0, row_affine0);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 0u, col4_1, acc0_1, row_affine0); }
    store_c(base_c, row0 + 1u, col4_0, acc1_0, row_affine1);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 1u, col4_1, acc1_1, row_affine1); }
    store_c(base_c, row0 + 2u, col4_0, acc2_0, row_affine2);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 2u, col4_1, acc2_1, row_affine2); }
    store_c(base_c, row0 + 3u, col4_0, acc3_0, row_affine3);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 3u, col4_1, acc3_1, row_affine3); }
    store_c(base_c, row0 + 4u, col4_0, acc4_0, row_affine4);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 4u, col4_1, acc4_1, row_affine4); }
    store_c(base_c, row0 + 5u, col4_0, acc5_0, row_affine5);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 5u, col4_1, acc5_1, row_affine5); }
    store_c(base_c, row0 + 6u, col4_0, acc6_0, row_affine6);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 6u, col4_1, acc6_1, row_affine6); }
    store_c(base_c, row0 + 7u, col4_0, acc7_0, row_affine7);
    if COLUMN_VECS == 2u { store_c(base_c, row0 + 7u, col4_1, acc7_1, row_affine7); }
    if ROW_GROUPS >= 2u {
        let affine1 = lane_affine(row0 + 8u, lane);
        let row_affine8 = subgroupBroadcast(affine1, 0u);
        let row_affine9 = subgroupBroadcast(affine1, 1u);
        let row_affine10 = subgroupBroadcast(affine1, 2u);
        let row_affine11 = subgroupBroadcast(affine1, 3u);
        let row_affine12 = subgroupBroadcast(affine1, 4u);
        let row_affine13 = subgroupBroadcast(affine1, 5u);
        let row_affine14 = subgroupBroadcast(affine1, 6u);
        let row_affine15 = subgroupBroadcast(affine1, 7u);
        store_c(base_c, row0 + 8u, col4_0, acc8_0, row_affine8);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 8u, col4_1, acc8_1, row_affine8); }
        store_c(base_c, row0 + 9u, col4_0, acc9_0, row_affine9);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 9u, col4_1, acc9_1, row_affine9); }
        store_c(base_c, row0 + 10u, col4_0, acc10_0, row_affine10);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 10u, col4_1, acc10_1, row_affine10); }
        store_c(base_c, row0 + 11u, col4_0, acc11_0, row_affine11);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 11u, col4_1, acc11_1, row_affine11); }
        store_c(base_c, row0 + 12u, col4_0, acc12_0, row_affine12);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 12u, col4_1, acc12_1, row_affine12); }
        store_c(base_c, row0 + 13u, col4_0, acc13_0, row_affine13);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 13u, col4_1, acc13_1, row_affine13); }
        store_c(base_c, row0 + 14u, col4_0, acc14_0, row_affine14);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 14u, col4_1, acc14_1, row_affine14); }
        store_c(base_c, row0 + 15u, col4_0, acc15_0, row_affine15);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 15u, col4_1, acc15_1, row_affine15); }
    }
    if ROW_GROUPS == 4u {
        let affine2 = lane_affine(row0 + 16u, lane);
        let row_affine16 = subgroupBroadcast(affine2, 0u);
        let row_affine17 = subgroupBroadcast(affine2, 1u);
        let row_affine18 = subgroupBroadcast(affine2, 2u);
        let row_affine19 = subgroupBroadcast(affine2, 3u);
        let row_affine20 = subgroupBroadcast(affine2, 4u);
        let row_affine21 = subgroupBroadcast(affine2, 5u);
        let row_affine22 = subgroupBroadcast(affine2, 6u);
        let row_affine23 = subgroupBroadcast(affine2, 7u);
        let affine3 = lane_affine(row0 + 24u, lane);
        let row_affine24 = subgroupBroadcast(affine3, 0u);
        let row_affine25 = subgroupBroadcast(affine3, 1u);
        let row_affine26 = subgroupBroadcast(affine3, 2u);
        let row_affine27 = subgroupBroadcast(affine3, 3u);
        let row_affine28 = subgroupBroadcast(affine3, 4u);
        let row_affine29 = subgroupBroadcast(affine3, 5u);
        let row_affine30 = subgroupBroadcast(affine3, 6u);
        let row_affine31 = subgroupBroadcast(affine3, 7u);
        store_c(base_c, row0 + 16u, col4_0, acc16_0, row_affine16);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 16u, col4_1, acc16_1, row_affine16); }
        store_c(base_c, row0 + 17u, col4_0, acc17_0, row_affine17);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 17u, col4_1, acc17_1, row_affine17); }
        store_c(base_c, row0 + 18u, col4_0, acc18_0, row_affine18);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 18u, col4_1, acc18_1, row_affine18); }
        store_c(base_c, row0 + 19u, col4_0, acc19_0, row_affine19);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 19u, col4_1, acc19_1, row_affine19); }
        store_c(base_c, row0 + 20u, col4_0, acc20_0, row_affine20);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 20u, col4_1, acc20_1, row_affine20); }
        store_c(base_c, row0 + 21u, col4_0, acc21_0, row_affine21);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 21u, col4_1, acc21_1, row_affine21); }
        store_c(base_c, row0 + 22u, col4_0, acc22_0, row_affine22);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 22u, col4_1, acc22_1, row_affine22); }
        store_c(base_c, row0 + 23u, col4_0, acc23_0, row_affine23);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 23u, col4_1, acc23_1, row_affine23); }
        store_c(base_c, row0 + 24u, col4_0, acc24_0, row_affine24);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 24u, col4_1, acc24_1, row_affine24); }
        store_c(base_c, row0 + 25u, col4_0, acc25_0, row_affine25);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 25u, col4_1, acc25_1, row_affine25); }
        store_c(base_c, row0 + 26u, col4_0, acc26_0, row_affine26);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 26u, col4_1, acc26_1, row_affine26); }
        store_c(base_c, row0 + 27u, col4_0, acc27_0, row_affine27);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 27u, col4_1, acc27_1, row_affine27); }
        store_c(base_c, row0 + 28u, col4_0, acc28_0, row_affine28);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 28u, col4_1, acc28_1, row_affine28); }
        store_c(base_c, row0 + 29u, col4_0, acc29_0, row_affine29);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 29u, col4_1, acc29_1, row_affine29); }
        store_c(base_c, row0 + 30u, col4_0, acc30_0, row_affine30);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 30u, col4_1, acc30_1, row_affine30); }
        store_c(base_c, row0 + 31u, col4_0, acc31_0, row_affine31);
        if COLUMN_VECS == 2u { store_c(base_c, row0 + 31u, col4_1, acc31_1, row_affine31); }
    }
}
