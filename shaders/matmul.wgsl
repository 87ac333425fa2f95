// matmul.wgsl — batched matrix product C = op(A) · op(B), op = identity or transpose.
//
// Layouts (row-major, f32, batch b offset by b · batch_stride_*; a stride of 0 broadcasts):
//   A: [M, K], or [K, M] when TRANSPOSE_A;  B: [K, N], or [N, K] when TRANSPOSE_B;  C: [M, N].
//
// Entry points:
//   matmul_naive — the reference variant: one invocation per element of C, a dot product over K.
//       Kept for correctness comparisons and as the baseline in benches.
//   matmul — register-tiled: each invocation computes ROWS × (4·COLUMN_VECS) elements of C,
//       keeping them in vec4 accumulators, and walks K four steps at a time, so every value it
//       loads feeds several FMAs. No workgroup memory: on CPU adapters (lavapipe runs invocations
//       8-wide in SIMD lanes) barriers cost more than the reuse they buy, and each load costs a
//       loop over the lanes, so loads per FMA decide the speed (BENCHMARKS.md: 1.0 GFLOP/s
//       naive, 2.8 with a 4×4 tile, 3.8 with 8×8, at 1024³ on lavapipe, Mesa 25).
//       Rows and columns past the edge of C are clamped for loading and skipped when storing,
//       so any M, N, K works without branches in the inner loop.
//   matmul_vec4 — 4×4 tiles loaded as vec4s (bindings 4 and 5 alias A and B); for untransposed
//       operands with K and N multiples of 4, on adapters without 8-lane subgroups. (Where
//       those exist, shaders/matmul_subgroup.wgsl is faster still.)
//   matmul_few_rows_nt — C = A · Bᵀ for at most 4 rows of A, B stored [N, K] as Linear's weight
//       is, K a multiple of 4: one invocation per column n walks row n of B in vec4s, each load
//       feeding every row of A (whose loads are the same for all lanes). A layer's forward at
//       batch 1 to 4 reads its weight once, untransposed: VGG16's classifier.0 had its 411 MB
//       weight read through the tiled kernel at 0.05 GFLOP/s, and classifier.3 transposed
//       (134 MB) before the subgroup kernel. Dispatch: ceil(N / (WORKGROUP_X·WORKGROUP_Y))
//       workgroups folded into a 2-D grid; A and B bound at 4 and 5. For CPU adapters, where
//       an invocation streaming one row is what a core does best.
//   matmul_few_rows_nt_workgroup — the same product for GPUs: one workgroup of REDUCE_LANES
//       invocations per column n, its lanes reading row n of B side by side (coalesced), then
//       a reduction in workgroup memory. The per-invocation kernel gave a GPU too few threads
//       and strided reads: 47 GB/s on an H200 for ResNet-50's fc (BENCHMARKS.md).
//       Dispatch: N workgroups folded into a 2-D grid; A and B bound at 4 and 5.
//   matmul_few_rows_nn — C = A · B for at most 4 rows of A and B stored [K, N], N a multiple
//       of 4 (a Linear layer's input gradient at batch 1 to 4: dy · W): one invocation per 4
//       columns of C walks down K, each vec4 of B feeding every row of A, and neighbouring
//       invocations read neighbouring vec4s of each row of B, which lavapipe loads as one
//       vector. The subgroup kernel it replaces there spent 7 of its 8 rows on nothing and
//       copied B (the weight) into a texture first: VGG16's classifier.0 backward took 145 ms
//       for 411 MB (BENCHMARKS.md). For CPU adapters. Dispatch: ceil(N / (4·WORKGROUP_X·
//       WORKGROUP_Y)) workgroups folded into a 2-D grid; A bound at 1 (scalars), B at 5.
//
// Dispatch: workgroups (ceil(N / (WORKGROUP_X·4·COLUMN_VECS)), ceil(M / (WORKGROUP_Y·ROWS)), batch)
//   for matmul; (ceil(N / WORKGROUP_X), ceil(M / WORKGROUP_Y), batch) for matmul_naive;
//   (ceil(N / (4·WORKGROUP_X)), ceil(M / (4·WORKGROUP_Y)), batch · K_SLICES) for matmul_vec4.
// Bindings: 0 params (uniform), 1 a (read), 2 b (read), 3 c (read_write); matmul_vec4 binds
//   A and B at 4 and 5 instead, as arrays of vec4.
// Overrides:
//   TRANSPOSE_A, TRANSPOSE_B — the operand layouts above.
//   WORKGROUP_X, WORKGROUP_Y — invocations per workgroup along N and along M.
//   ROWS (4 or 8), COLUMN_VECS (1 or 2) — the register tile of one invocation.
//   K_SLICES — matmul_vec4 only: split K into this many equal slices (it divides K / 4), each
//       summed by its own workgroups into its own [M, N] of C, which then holds
//       [batch, K_SLICES, M, N] partial products for the caller to add up. GPUs need it where
//       M and N give few tiles and K is long (weight gradients, 7×7 planes).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch_stride_a: u32,
    batch_stride_b: u32,
    batch_stride_c: u32,
    // matmul_subgroup.wgsl's texture widths and epilogue: the two shaders share one parameter
    // struct in Rust; unused here.
    a_texture_width_log2: u32,
    b_texture_width_log2: u32,
    relu: u32,
    epilogue: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

override TRANSPOSE_A: bool = false;
override TRANSPOSE_B: bool = false;
override WORKGROUP_X: u32 = 8u;
override WORKGROUP_Y: u32 = 8u;
override ROWS: u32 = 4u;
override COLUMN_VECS: u32 = 1u;
override K_SLICES: u32 = 1u;


fn a_at(base: u32, row: u32, kk: u32) -> f32 {
    if TRANSPOSE_A {
        return a[base + kk * params.m + row];
    }
    return a[base + row * params.k + kk];
}

fn b_at(base: u32, kk: u32, col: u32) -> f32 {
    if TRANSPOSE_B {
        return b[base + col * params.k + kk];
    }
    return b[base + kk * params.n + col];
}

@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_naive(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y;
    let col = gid.x;
    if row >= params.m || col >= params.n {
        return;
    }
    let base_a = gid.z * params.batch_stride_a;
    let base_b = gid.z * params.batch_stride_b;
    var sum = 0.0;
    for (var kk = 0u; kk < params.k; kk++) {
        sum += a_at(base_a, row, kk) * b_at(base_b, kk, col);
    }
    c[gid.z * params.batch_stride_c + row * params.n + col] = sum;
}

// A[row, kk..kk+4] as a vec4 (row already clamped into A).
fn load_a_row(base: u32, row: u32, kk: u32) -> vec4<f32> {
    return vec4<f32>(a_at(base, row, kk), a_at(base, row, kk + 1u),
                     a_at(base, row, kk + 2u), a_at(base, row, kk + 3u));
}

// B[kk, col..col+4] as a vec4, columns past N clamped onto the last one.
fn load_b_row(base: u32, kk: u32, col: u32) -> vec4<f32> {
    let last = params.n - 1u;
    return vec4<f32>(b_at(base, kk, min(col, last)), b_at(base, kk, min(col + 1u, last)),
                     b_at(base, kk, min(col + 2u, last)), b_at(base, kk, min(col + 3u, last)));
}

// Rows kk..kk+4 of B at columns col..col+4, as the columns of a matrix: then
// block * a_row = a_row.x·B[kk] + a_row.y·B[kk+1] + a_row.z·B[kk+2] + a_row.w·B[kk+3].
fn load_b_block(base: u32, kk: u32, col: u32) -> mat4x4<f32> {
    return mat4x4<f32>(load_b_row(base, kk, col), load_b_row(base, kk + 1u, col),
                       load_b_row(base, kk + 2u, col), load_b_row(base, kk + 3u, col));
}

// Writes one accumulator: C[row, col..col+4], skipping columns past N.
fn store_c(base: u32, row: u32, col: u32, values: vec4<f32>) {
    for (var e = 0u; e < 4u; e++) {
        if col + e < params.n {
            c[base + row * params.n + col + e] = values[e];
        }
    }
}

@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = (wid.y * WORKGROUP_Y + lid.y) * ROWS;
    let col0 = (wid.x * WORKGROUP_X + lid.x) * COLUMN_VECS * 4u;
    let base_a = wid.z * params.batch_stride_a;
    let base_b = wid.z * params.batch_stride_b;

    // Rows past M are clamped for loading (their results are never stored), so the inner
    // loop has no branches. The tile is spelled out, not kept in arrays: indexed arrays
    // would live in memory, named values in registers; blocks for rows 4..7 and for the
    // second column vector vanish when the overrides turn them off.
    let last_row = params.m - 1u;
    let r0 = min(row0 + 0u, last_row);
    let r1 = min(row0 + 1u, last_row);
    let r2 = min(row0 + 2u, last_row);
    let r3 = min(row0 + 3u, last_row);
    let r4 = min(row0 + 4u, last_row);
    let r5 = min(row0 + 5u, last_row);
    let r6 = min(row0 + 6u, last_row);
    let r7 = min(row0 + 7u, last_row);
    var acc00 = vec4<f32>(0.0);
    var acc01 = vec4<f32>(0.0);
    var acc10 = vec4<f32>(0.0);
    var acc11 = vec4<f32>(0.0);
    var acc20 = vec4<f32>(0.0);
    var acc21 = vec4<f32>(0.0);
    var acc30 = vec4<f32>(0.0);
    var acc31 = vec4<f32>(0.0);
    var acc40 = vec4<f32>(0.0);
    var acc41 = vec4<f32>(0.0);
    var acc50 = vec4<f32>(0.0);
    var acc51 = vec4<f32>(0.0);
    var acc60 = vec4<f32>(0.0);
    var acc61 = vec4<f32>(0.0);
    var acc70 = vec4<f32>(0.0);
    var acc71 = vec4<f32>(0.0);

    var kk = 0u;
    for (; kk + 4u <= params.k; kk += 4u) {
        let b0 = load_b_block(base_b, kk, col0);
        var b1 = b0;
        if COLUMN_VECS == 2u {
            b1 = load_b_block(base_b, kk, col0 + 4u);
        }
        let a0 = load_a_row(base_a, r0, kk);
        acc00 += b0 * a0;
        if COLUMN_VECS == 2u { acc01 += b1 * a0; }
        let a1 = load_a_row(base_a, r1, kk);
        acc10 += b0 * a1;
        if COLUMN_VECS == 2u { acc11 += b1 * a1; }
        let a2 = load_a_row(base_a, r2, kk);
        acc20 += b0 * a2;
        if COLUMN_VECS == 2u { acc21 += b1 * a2; }
        let a3 = load_a_row(base_a, r3, kk);
        acc30 += b0 * a3;
        if COLUMN_VECS == 2u { acc31 += b1 * a3; }
        if ROWS == 8u {
            let a4 = load_a_row(base_a, r4, kk);
            acc40 += b0 * a4;
            if COLUMN_VECS == 2u { acc41 += b1 * a4; }
            let a5 = load_a_row(base_a, r5, kk);
            acc50 += b0 * a5;
            if COLUMN_VECS == 2u { acc51 += b1 * a5; }
            let a6 = load_a_row(base_a, r6, kk);
            acc60 += b0 * a6;
            if COLUMN_VECS == 2u { acc61 += b1 * a6; }
            let a7 = load_a_row(base_a, r7, kk);
            acc70 += b0 * a7;
            if COLUMN_VECS == 2u { acc71 += b1 * a7; }
        }
    }
    // The last K % 4 steps, one at a time.
    for (; kk < params.k; kk++) {
        let b0 = load_b_row(base_b, kk, col0);
        let b1 = load_b_row(base_b, kk, col0 + 4u);
        let a0 = a_at(base_a, r0, kk);
        acc00 = fma(vec4<f32>(a0), b0, acc00);
        acc01 = fma(vec4<f32>(a0), b1, acc01);
        let a1 = a_at(base_a, r1, kk);
        acc10 = fma(vec4<f32>(a1), b0, acc10);
        acc11 = fma(vec4<f32>(a1), b1, acc11);
        let a2 = a_at(base_a, r2, kk);
        acc20 = fma(vec4<f32>(a2), b0, acc20);
        acc21 = fma(vec4<f32>(a2), b1, acc21);
        let a3 = a_at(base_a, r3, kk);
        acc30 = fma(vec4<f32>(a3), b0, acc30);
        acc31 = fma(vec4<f32>(a3), b1, acc31);
        if ROWS == 8u {
            let a4 = a_at(base_a, r4, kk);
            acc40 = fma(vec4<f32>(a4), b0, acc40);
            acc41 = fma(vec4<f32>(a4), b1, acc41);
            let a5 = a_at(base_a, r5, kk);
            acc50 = fma(vec4<f32>(a5), b0, acc50);
            acc51 = fma(vec4<f32>(a5), b1, acc51);
            let a6 = a_at(base_a, r6, kk);
            acc60 = fma(vec4<f32>(a6), b0, acc60);
            acc61 = fma(vec4<f32>(a6), b1, acc61);
            let a7 = a_at(base_a, r7, kk);
            acc70 = fma(vec4<f32>(a7), b0, acc70);
            acc71 = fma(vec4<f32>(a7), b1, acc71);
        }
    }

    let base_c = wid.z * params.batch_stride_c;
    let accs = array<vec4<f32>, 16>(
        acc00, acc01,
        acc10, acc11,
        acc20, acc21,
        acc30, acc31,
        acc40, acc41,
        acc50, acc51,
        acc60, acc61,
        acc70, acc71,
    );
    for (var i = 0u; i < ROWS && row0 + i < params.m; i++) {
        store_c(base_c, row0 + i, col0, accs[2u * i]);
        if COLUMN_VECS == 2u {
            store_c(base_c, row0 + i, col0 + 4u, accs[2u * i + 1u]);
        }
    }
}

// The same matrices seen as vec4 rows, for matmul_vec4 (which needs K and N multiples of 4).
@group(0) @binding(4) var<storage, read> a_vec4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> b_vec4: array<vec4<f32>>;

// One invocation: rows row0..row0+4 (clamped) × columns 4·col4..4·col4+4, with every load a
// vec4: on lavapipe one vec4 load costs little more than one scalar load, so this kernel loads
// 4× fewer times per FMA than `matmul` (4.8 vs 3.8 GFLOP/s at 1024³ with Mesa 25).
@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k4_slice = params.k / 4u / K_SLICES;
    let k4_first = (gid.z % K_SLICES) * k4_slice;
    let batch = gid.z / K_SLICES;
    let k4 = params.k / 4u;
    let n4 = params.n / 4u;
    let col4 = gid.x;
    let row0 = gid.y * 4u;
    if row0 >= params.m || col4 >= n4 {
        return;
    }
    let base_a = batch * params.batch_stride_a / 4u;
    let base_b = batch * params.batch_stride_b / 4u + col4;
    let last_row = params.m - 1u;
    let a0 = base_a + row0 * k4;
    let a1 = base_a + min(row0 + 1u, last_row) * k4;
    let a2 = base_a + min(row0 + 2u, last_row) * k4;
    let a3 = base_a + min(row0 + 3u, last_row) * k4;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = k4_first; kk < k4_first + k4_slice; kk++) {
        let row_b = base_b + kk * 4u * n4;
        let block = mat4x4<f32>(b_vec4[row_b], b_vec4[row_b + n4], b_vec4[row_b + 2u * n4],
                                b_vec4[row_b + 3u * n4]);
        acc0 += block * a_vec4[a0 + kk];
        acc1 += block * a_vec4[a1 + kk];
        acc2 += block * a_vec4[a2 + kk];
        acc3 += block * a_vec4[a3 + kk];
    }
    let base_c = gid.z * params.batch_stride_c;
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u && row0 + i < params.m; i++) {
        store_c(base_c, row0 + i, col4 * 4u, accs[i]);
    }
}

// Row n of B times each of the (up to four) rows of A, over the vec4 steps first, first + step,
// … of K: one sum per row of A, packed in a vec4. Rows of A past M read row 0 again (their sums
// are not stored).
fn few_rows_sums(n: u32, first: u32, step: u32) -> vec4<f32> {
    let k4 = params.k / 4u;
    let rows = params.m;
    let b_row = n * k4;
    let a1 = select(0u, k4, rows > 1u);
    let a2 = select(0u, 2u * k4, rows > 2u);
    let a3 = select(0u, 3u * k4, rows > 3u);
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var s3 = vec4<f32>(0.0);
    for (var kk = first; kk < k4; kk += step) {
        let b = b_vec4[b_row + kk];
        s0 += a_vec4[kk] * b;
        s1 += a_vec4[a1 + kk] * b;
        s2 += a_vec4[a2 + kk] * b;
        s3 += a_vec4[a3 + kk] * b;
    }
    let ones = vec4<f32>(1.0);
    return vec4<f32>(dot(s0, ones), dot(s1, ones), dot(s2, ones), dot(s3, ones));
}

// Column n of C's (up to four) rows.
fn store_few_rows(n: u32, sums: vec4<f32>) {
    for (var row = 0u; row < params.m; row++) {
        c[row * params.n + n] = sums[row];
    }
}

@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_few_rows_nt(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) groups: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let n = (wid.y * groups.x + wid.x) * WORKGROUP_X * WORKGROUP_Y + lid;
    if n >= params.n {
        return;
    }
    store_few_rows(n, few_rows_sums(n, 0u, 1u));
}

const REDUCE_LANES: u32 = 64u;
// Each lane's sums of the (up to) four rows, then the reduction's partial sums.
var<workgroup> row_sums: array<vec4<f32>, REDUCE_LANES>;

@compute @workgroup_size(REDUCE_LANES)
fn matmul_few_rows_nt_workgroup(@builtin(workgroup_id) wid: vec3<u32>,
                                @builtin(num_workgroups) groups: vec3<u32>,
                                @builtin(local_invocation_index) lid: u32) {
    // The fold may overshoot N: those workgroups compute column N − 1 and store nothing
    // (no early return, for the barriers' sake).
    let n = wid.y * groups.x + wid.x;
    row_sums[lid] = few_rows_sums(min(n, params.n - 1u), lid, REDUCE_LANES);
    workgroupBarrier();
    for (var stride = REDUCE_LANES / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            row_sums[lid] += row_sums[lid + stride];
        }
        workgroupBarrier();
    }
    if lid == 0u && n < params.n {
        store_few_rows(n, row_sums[0]);
    }
}

@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_few_rows_nn(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) groups: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let n4 = params.n / 4u;
    let column = (wid.y * groups.x + wid.x) * WORKGROUP_X * WORKGROUP_Y + lid;
    if column >= n4 {
        return;
    }
    // Rows of A past M read row 0 again (their sums are not stored).
    let rows = params.m;
    let a1 = select(0u, params.k, rows > 1u);
    let a2 = select(0u, 2u * params.k, rows > 2u);
    let a3 = select(0u, 3u * params.k, rows > 3u);
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var s3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < params.k; kk++) {
        let b = b_vec4[kk * n4 + column];
        s0 += a[kk] * b;
        s1 += a[a1 + kk] * b;
        s2 += a[a2 + kk] * b;
        s3 += a[a3 + kk] * b;
    }
    let sums = array<vec4<f32>, 4>(s0, s1, s2, s3);
    for (var row = 0u; row < rows; row++) {
        let first = row * params.n + 4u * column;
        for (var lane = 0u; lane < 4u; lane++) {
            c[first + lane] = sums[row][lane];
        }
    }
}
