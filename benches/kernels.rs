//! Kernel benchmarks (criterion). Throughput is reported as elements/s where one "element" is
//! one floating-point operation, so criterion's "Gelem/s" reads as GFLOP/s; each group also
//! prints its median in GFLOP/s with the adapter's name.
//!
//!   cargo bench --bench kernels                 # everything
//!   cargo bench --bench kernels -- matmul/1024  # one case

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gradlens::kernels::matmul::{MatmulOptions, MatmulTile, MatmulVariant, SubgroupTile, matmul};
use gradlens::{Gpu, Tensor};

fn random(gpu: &Gpu, dims: [usize; 2], seed: u64) -> Tensor {
    let mut state = seed;
    let data: Vec<f32> = (0..dims[0] * dims[1])
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    Tensor::from_slice(gpu, dims, &data).expect("upload")
}

/// Times `iters` products, each waited for, and prints the GFLOP/s of the whole run.
fn time_matmul(a: &Tensor, b: &Tensor, options: MatmulOptions, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let c = matmul(a, b, options).expect("matmul");
        drop(c);
        a.gpu().synchronize().expect("synchronize");
    }
    start.elapsed()
}

fn report(gpu: &Gpu, name: &str, flops: f64, a: &Tensor, b: &Tensor, options: MatmulOptions) {
    // A separate median over a few runs, printed in the units the issues use.
    let mut times: Vec<f64> = (0..5)
        .map(|_| time_matmul(a, b, options, 1).as_secs_f64())
        .collect();
    times.sort_by(f64::total_cmp);
    let median = times[2];
    println!(
        "{name}: {:.1} GFLOP/s ({:.2} ms) on {}",
        flops / median / 1e9,
        median * 1e3,
        gpu.describe()
    );
}

fn matmul_benches(c: &mut Criterion) {
    let gpu = Gpu::new().expect("a GPU adapter");
    // (name, M, N, K)
    let shapes = [
        ("256", 256, 256, 256),
        ("512", 512, 512, 512),
        ("1024", 1024, 1024, 1024),
        ("resnet_3136x64x576", 3136, 64, 576),
    ];
    let mut group = c.benchmark_group("matmul");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for (name, m, n, k) in shapes {
        let a = random(&gpu, [m, k], 1);
        let b = random(&gpu, [k, n], 2);
        let flops = 2.0 * (m * n * k) as f64;
        let options = MatmulOptions::default();
        time_matmul(&a, &b, options, 1); // compile the pipeline, warm the pool
        report(&gpu, &format!("matmul/{name}"), flops, &a, &b, options);
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |bench| {
            bench.iter_custom(|iters| time_matmul(&a, &b, options, iters))
        });
    }
    group.finish();
}

/// The tile candidates and the naive reference kernel at 1024³: how the default was chosen.
fn matmul_variants(c: &mut Criterion) {
    let gpu = Gpu::new().expect("a GPU adapter");
    let n = 1024;
    let a = random(&gpu, [n, n], 3);
    let b = random(&gpu, [n, n], 4);
    let flops = 2.0 * (n * n * n) as f64;
    let tiles = [
        MatmulTile::DEFAULT,
        MatmulTile {
            workgroup_x: 8,
            workgroup_y: 8,
            rows: 4,
            column_vecs: 2,
        },
        MatmulTile {
            workgroup_x: 8,
            workgroup_y: 8,
            rows: 8,
            column_vecs: 1,
        },
        MatmulTile {
            workgroup_x: 8,
            workgroup_y: 8,
            rows: 8,
            column_vecs: 2,
        },
        MatmulTile {
            workgroup_x: 8,
            workgroup_y: 1,
            rows: 8,
            column_vecs: 2,
        },
        MatmulTile {
            workgroup_x: 8,
            workgroup_y: 1,
            rows: 8,
            column_vecs: 1,
        },
        MatmulTile {
            workgroup_x: 8,
            workgroup_y: 1,
            rows: 4,
            column_vecs: 2,
        },
        MatmulTile {
            workgroup_x: 32,
            workgroup_y: 1,
            rows: 8,
            column_vecs: 2,
        },
        MatmulTile {
            workgroup_x: 64,
            workgroup_y: 1,
            rows: 8,
            column_vecs: 2,
        },
    ];
    let mut variants: Vec<(String, MatmulVariant)> = tiles
        .iter()
        .map(|t| {
            let name = format!(
                "tiled_{}x{}_r{}_v{}",
                t.workgroup_x, t.workgroup_y, t.rows, t.column_vecs
            );
            (name, MatmulVariant::Tiled(*t))
        })
        .collect();
    variants.push(("vec4".into(), MatmulVariant::Vec4));
    if gradlens::kernels::matmul::subgroup_kernel_available(&gpu) {
        for (row_groups, column_vecs) in [(1, 1), (2, 1), (4, 1), (1, 2), (2, 2), (4, 2)] {
            let tile = SubgroupTile {
                row_groups,
                column_vecs,
            };
            let name = format!("subgroup_{}rows_{}cols", 8 * row_groups, 32 * column_vecs);
            variants.push((name, MatmulVariant::Subgroup(tile)));
        }
    }
    variants.push(("naive".into(), MatmulVariant::Naive));
    let mut group = c.benchmark_group("matmul_1024_variants");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(flops as u64));
    for (name, variant) in variants {
        let options = MatmulOptions {
            variant,
            ..MatmulOptions::default()
        };
        time_matmul(&a, &b, options, 1);
        report(
            &gpu,
            &format!("matmul_1024_variants/{name}"),
            flops,
            &a,
            &b,
            options,
        );
        group.bench_function(BenchmarkId::from_parameter(&name), |bench| {
            bench.iter_custom(|iters| time_matmul(&a, &b, options, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, matmul_benches, matmul_variants);
criterion_main!(benches);
