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
//       8-wide in SIMD lanes) barriers cost more than the reuse they buy, while register tiling
//       is what lifts throughput (~14 GFLOP/s with 4×4 tiles vs 0.8 with a textbook 16×16
//       shared-memory tile, measured on this project's 2-core CI machine).
//       Rows and columns past the edge of C are clamped for loading and skipped when storing,
//       so any M, N, K works without branches in the inner loop.
//
// Dispatch: workgroups (ceil(N / (WORKGROUP_X·4·COLUMN_VECS)), ceil(M / (WORKGROUP_Y·ROWS)), batch)
//   for matmul; (ceil(N / WORKGROUP_X), ceil(M / WORKGROUP_Y), batch) for matmul_naive.
// Bindings: 0 params (uniform), 1 a (read), 2 b (read), 3 c (read_write).
// Overrides:
//   TRANSPOSE_A, TRANSPOSE_B — the operand layouts above.
//   WORKGROUP_X, WORKGROUP_Y — invocations per workgroup along N and along M.
//   ROWS (1..=8), COLUMN_VECS (1..=2) — the register tile of one invocation.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch_stride_a: u32,
    batch_stride_b: u32,
    batch_stride_c: u32,
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

// Register arrays need constant sizes; loops run only to ROWS / COLUMN_VECS, and once the
// overrides are fixed the compiler unrolls them and keeps the used elements in registers.
const MAX_ROWS: u32 = 8u;
const MAX_COLUMN_VECS: u32 = 2u;

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
        sum = fma(a_at(base_a, row, kk), b_at(base_b, kk, col), sum);
    }
    c[gid.z * params.batch_stride_c + row * params.n + col] = sum;
}

@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = (wid.y * WORKGROUP_Y + lid.y) * ROWS;
    let col0 = (wid.x * WORKGROUP_X + lid.x) * COLUMN_VECS * 4u;
    let base_a = wid.z * params.batch_stride_a;
    let base_b = wid.z * params.batch_stride_b;

    // Clamped coordinates: loads never leave the matrices; stores skip the clamped ones.
    var rows: array<u32, MAX_ROWS>;
    for (var i = 0u; i < ROWS; i++) {
        rows[i] = min(row0 + i, params.m - 1u);
    }
    var cols: array<u32, 8>; // 4 · MAX_COLUMN_VECS
    for (var j = 0u; j < COLUMN_VECS * 4u; j++) {
        cols[j] = min(col0 + j, params.n - 1u);
    }

    var acc: array<vec4<f32>, 16>; // MAX_ROWS · MAX_COLUMN_VECS, zero-initialised
    var kk = 0u;
    for (; kk + 4u <= params.k; kk += 4u) {
        // B's 4 × (4·COLUMN_VECS) block at rows kk..kk+4.
        var b_block: array<vec4<f32>, 8>; // 4 · MAX_COLUMN_VECS
        for (var t = 0u; t < 4u; t++) {
            for (var v = 0u; v < COLUMN_VECS; v++) {
                b_block[t * MAX_COLUMN_VECS + v] = vec4<f32>(
                    b_at(base_b, kk + t, cols[v * 4u]),
                    b_at(base_b, kk + t, cols[v * 4u + 1u]),
                    b_at(base_b, kk + t, cols[v * 4u + 2u]),
                    b_at(base_b, kk + t, cols[v * 4u + 3u]));
            }
        }
        for (var i = 0u; i < ROWS; i++) {
            let a_row = vec4<f32>(
                a_at(base_a, rows[i], kk),
                a_at(base_a, rows[i], kk + 1u),
                a_at(base_a, rows[i], kk + 2u),
                a_at(base_a, rows[i], kk + 3u));
            for (var v = 0u; v < COLUMN_VECS; v++) {
                var sum = acc[i * MAX_COLUMN_VECS + v];
                sum = fma(vec4<f32>(a_row.x), b_block[v], sum);
                sum = fma(vec4<f32>(a_row.y), b_block[MAX_COLUMN_VECS + v], sum);
                sum = fma(vec4<f32>(a_row.z), b_block[2u * MAX_COLUMN_VECS + v], sum);
                sum = fma(vec4<f32>(a_row.w), b_block[3u * MAX_COLUMN_VECS + v], sum);
                acc[i * MAX_COLUMN_VECS + v] = sum;
            }
        }
    }
    // The last K % 4 steps, one at a time.
    for (; kk < params.k; kk++) {
        for (var v = 0u; v < COLUMN_VECS; v++) {
            let b_row = vec4<f32>(
                b_at(base_b, kk, cols[v * 4u]),
                b_at(base_b, kk, cols[v * 4u + 1u]),
                b_at(base_b, kk, cols[v * 4u + 2u]),
                b_at(base_b, kk, cols[v * 4u + 3u]));
            for (var i = 0u; i < ROWS; i++) {
                acc[i * MAX_COLUMN_VECS + v] =
                    fma(vec4<f32>(a_at(base_a, rows[i], kk)), b_row, acc[i * MAX_COLUMN_VECS + v]);
            }
        }
    }

    let base_c = wid.z * params.batch_stride_c;
    for (var i = 0u; i < ROWS; i++) {
        let row = row0 + i;
        if row >= params.m {
            break;
        }
        for (var v = 0u; v < COLUMN_VECS; v++) {
            let values = acc[i * MAX_COLUMN_VECS + v];
            for (var e = 0u; e < 4u; e++) {
                let col = col0 + v * 4u + e;
                if col < params.n {
                    c[base_c + row * params.n + col] = values[e];
                }
            }
        }
    }
}
