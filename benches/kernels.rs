//! Kernel benchmarks (criterion): matmul, convolution, memory-bound kernels.
//!
//! Each case times whole GPU round trips (record, submit, wait) and reports its throughput
//! twice: criterion's own line ("Gelem/s" is GFLOP/s for compute cases, one element being one
//! floating-point operation; "GiB/s" for memory cases), and one summary line with GFLOP/s or
//! GB/s, milliseconds and the adapter's name, printed only for cases criterion actually ran.
//!
//!   cargo bench --bench kernels                   # everything
//!   cargo bench --bench kernels -- matmul/1024    # one case
//!   cargo bench --bench kernels -- conv2d_direct  # one group
//!   cargo bench --bench kernels -- conv2d_bn      # BatchNorm folded into the convolution

use std::cell::Cell;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use gradlens::kernels::matmul::{MatmulOptions, MatmulTile, MatmulVariant, SubgroupTile, matmul};
use gradlens::{Gpu, Tensor};

/// What a case's throughput counts.
#[derive(Clone, Copy)]
enum Work {
    Flops(f64),
    Bytes(f64),
}

fn random_tensor(gpu: &Gpu, dims: Vec<usize>, seed: u64) -> Tensor {
    let mut state = seed;
    let data: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    Tensor::from_slice(gpu, dims, &data).expect("upload")
}

/// Benchmarks `op` (each run waited for) and prints the summary line if criterion ran it.
fn bench_case(
    group: &mut BenchmarkGroup<WallTime>,
    gpu: &Gpu,
    name: &str,
    work: Work,
    op: &dyn Fn() -> Tensor,
) {
    drop(op()); // compile the pipelines and warm the pool outside the measurement
    gpu.synchronize().expect("synchronize");
    let total = Cell::new((Duration::ZERO, 0u64));
    group.throughput(match work {
        Work::Flops(flops) => Throughput::Elements(flops as u64),
        Work::Bytes(bytes) => Throughput::Bytes(bytes as u64),
    });
    group.bench_function(name, |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                drop(op());
                gpu.synchronize().expect("synchronize");
            }
            let elapsed = start.elapsed();
            let (time, count) = total.get();
            total.set((time + elapsed, count + iters));
            elapsed
        })
    });
    let (time, count) = total.get();
    if count > 0 {
        let seconds = time.as_secs_f64() / count as f64;
        let rate = match work {
            Work::Flops(flops) => format!("{:.2} GFLOP/s", flops / seconds / 1e9),
            Work::Bytes(bytes) => format!("{:.2} GB/s", bytes / seconds / 1e9),
        };
        println!(
            "  {name}: {rate} ({:.2} ms mean) on {}",
            seconds * 1e3,
            gpu.describe()
        );
    }
}

fn matmul_benches(c: &mut Criterion) {
    let gpu = Gpu::new().expect("a GPU adapter");
    let mut group = c.benchmark_group("matmul");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let mut cases = vec![
        ("256", 256, 256, 256),
        ("512", 512, 512, 512),
        ("1024", 1024, 1024, 1024),
        ("resnet_3136x64x576", 3136, 64, 576),
    ];
    // Issue 24's GPU target (≥ 50% of the adapter's fp32 peak); at lavapipe's 60 GFLOP/s
    // one product takes over 2 s, so CPU adapters skip it.
    if !gpu.chooses_for_cpu() {
        cases.push(("4096", 4096, 4096, 4096));
    }
    for (name, m, n, k) in cases {
        let a = random_tensor(&gpu, vec![m, k], 1);
        let b = random_tensor(&gpu, vec![k, n], 2);
        let work = Work::Flops(2.0 * (m * n * k) as f64);
        let op = || matmul(&a, &b, MatmulOptions::default()).expect("matmul");
        bench_case(&mut group, &gpu, name, work, &op);
    }
    group.finish();
}

/// Every matmul kernel at 1024³: how the defaults were chosen.
fn matmul_variants(c: &mut Criterion) {
    let gpu = Gpu::new().expect("a GPU adapter");
    let n = 1024;
    let a = random_tensor(&gpu, vec![n, n], 3);
    let b = random_tensor(&gpu, vec![n, n], 4);
    let work = Work::Flops(2.0 * (n * n * n) as f64);
    let mut variants: Vec<(String, MatmulVariant)> = [
        (8, 8, 4, 1),
        (8, 8, 4, 2),
        (8, 8, 8, 1),
        (8, 8, 8, 2),
        (8, 1, 8, 2),
        (64, 1, 8, 2),
    ]
    .into_iter()
    .map(|(workgroup_x, workgroup_y, rows, column_vecs)| {
        let tile = MatmulTile {
            workgroup_x,
            workgroup_y,
            rows,
            column_vecs,
        };
        (
            format!("tiled_{workgroup_x}x{workgroup_y}_r{rows}_v{column_vecs}"),
            MatmulVariant::Tiled(tile),
        )
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
            variants.push((name.clone(), MatmulVariant::Subgroup(tile)));
            // The operands from textures (B copied every product, A's copy kept), as Auto runs.
            let name = format!("{name}_textures");
            variants.push((name, MatmulVariant::SubgroupTexture(tile)));
        }
    }
    variants.push(("naive".into(), MatmulVariant::Naive));
    let mut group = c.benchmark_group("matmul_1024_variants");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for (name, variant) in variants {
        let options = MatmulOptions {
            variant,
            ..MatmulOptions::default()
        };
        let op = || matmul(&a, &b, options).expect("matmul");
        bench_case(&mut group, &gpu, &name, work, &op);
    }
    group.finish();
}

/// ResNet-50's convolution shapes at batch 1 (issue 3): (name, C_in, C_out, kernel, stride,
/// padding, input size).
const RESNET50_CONVS: &[(&str, usize, usize, usize, usize, usize, usize)] = &[
    ("7x7s2_3to64_224", 3, 64, 7, 2, 3, 224),
    ("3x3_64to64_56", 64, 64, 3, 1, 1, 56),
    ("1x1_256to64_56", 256, 64, 1, 1, 0, 56),
    ("3x3_128to128_28", 128, 128, 3, 1, 1, 28),
    ("3x3_256to256_14", 256, 256, 3, 1, 1, 14),
    ("3x3_512to512_7", 512, 512, 3, 1, 1, 7),
    ("1x1_1024to256_14", 1024, 256, 1, 1, 0, 14),
];

/// The speed issue's reference convolution (Burn: 5.8 GFLOP/s on this adapter), timed with
/// the default, the GEMM and the two Winograd tiles only (the direct kernels would take
/// minutes).
const LARGE_CONV: (&str, usize, usize, usize, usize, usize, usize) =
    ("3x3_256to256_56", 256, 256, 3, 1, 1, 56);

/// Forward, backward-to-input and backward-to-weight on ResNet-50's shapes, with the default
/// algorithm (group `conv2d`: Winograd for 3×3 stride-1, else GEMM), im2col + GEMM (group
/// `conv2d_gemm`), the implicit GEMM (group `conv2d_implicit`) and the direct reference kernels
/// (group `conv2d_direct`); the 3×3 stride-1 shapes with each Winograd tile (groups
/// `conv2d_winograd_f2`, `conv2d_winograd_f4`).
fn conv_benches(c: &mut Criterion) {
    use gradlens::kernels::conv2d::{
        Conv2d, ConvAlgorithm, ConvGradient, conv2d_backward, conv2d_shapes, conv2d_with,
    };
    let gpu = Gpu::new().expect("a GPU adapter");
    for (group_name, algorithm) in [
        ("conv2d", ConvAlgorithm::Auto),
        ("conv2d_gemm", ConvAlgorithm::Gemm),
        ("conv2d_implicit", ConvAlgorithm::ImplicitGemm),
        ("conv2d_direct", ConvAlgorithm::Direct),
        ("conv2d_winograd_f2", ConvAlgorithm::WinogradF2),
        ("conv2d_winograd_f4", ConvAlgorithm::WinogradF4),
    ] {
        let mut group = c.benchmark_group(group_name);
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(4));
        let forced_tile = matches!(
            algorithm,
            ConvAlgorithm::WinogradF2 | ConvAlgorithm::WinogradF4
        );
        let large = forced_tile || matches!(algorithm, ConvAlgorithm::Auto | ConvAlgorithm::Gemm);
        let shapes = RESNET50_CONVS.iter().chain(large.then_some(&LARGE_CONV));
        for &(name, c_in, c_out, k, stride, pad, size) in shapes {
            if forced_tile && (k, stride) != (3, 1) {
                continue;
            }
            let conv = Conv2d::default().stride(stride).padding(pad);
            let x = random_tensor(&gpu, vec![1, c_in, size, size], 5);
            let w = random_tensor(&gpu, vec![c_out, c_in, k, k], 6);
            let shapes = conv2d_shapes("bench", x.dims(), w.dims(), &conv).expect("valid shape");
            let g = random_tensor(&gpu, shapes.output.to_vec(), 7);
            let work =
                Work::Flops(2.0 * (shapes.output.iter().product::<usize>() * c_in * k * k) as f64);
            let forward = || conv2d_with(&x, &w, None, &conv, algorithm).expect("conv");
            let backward_input = || {
                conv2d_backward(ConvGradient::Input, &x, &w, &g, &conv, algorithm).expect("conv")
            };
            let backward_weight = || {
                conv2d_backward(ConvGradient::Weight, &x, &w, &g, &conv, algorithm).expect("conv")
            };
            bench_case(&mut group, &gpu, &format!("forward/{name}"), work, &forward);
            bench_case(
                &mut group,
                &gpu,
                &format!("backward_input/{name}"),
                work,
                &backward_input,
            );
            bench_case(
                &mut group,
                &gpu,
                &format!("backward_weight/{name}"),
                work,
                &backward_weight,
            );
        }
        group.finish();
    }
}

/// A convolution followed by its eval-mode BatchNorm and ReLU (and a residual add, `_residual`)
/// on ResNet-50's shapes: the convolution then the batch-norm pass (`separate`) against the
/// BatchNorm folded into the convolution's output pass where it applies (`folded`,
/// `conv2d_then`). Throughput counts the convolution's FLOPs.
fn conv_batch_norm_benches(c: &mut Criterion) {
    use gradlens::kernels::batchnorm::{Epilogue, EvalBatchNorm};
    use gradlens::kernels::conv2d::{ChannelAffine, Conv2d, conv2d, conv2d_shapes, conv2d_then};
    let gpu = Gpu::new().expect("a GPU adapter");
    let mut group = c.benchmark_group("conv2d_bn");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for &(name, c_in, c_out, k, stride, pad, size) in RESNET50_CONVS {
        let conv = Conv2d::default().stride(stride).padding(pad);
        let x = random_tensor(&gpu, vec![1, c_in, size, size], 5);
        let w = random_tensor(&gpu, vec![c_out, c_in, k, k], 6);
        let shapes = conv2d_shapes("bench", x.dims(), w.dims(), &conv).expect("valid shape");
        let residual = random_tensor(&gpu, shapes.output.to_vec(), 7);
        let [mean, weight, bias] = [8, 9, 10].map(|seed| random_tensor(&gpu, vec![c_out], seed));
        let variance = Tensor::full(&gpu, [c_out], 0.7).expect("variance");
        let bn = EvalBatchNorm {
            mean: &mean,
            variance: &variance,
            weight: &weight,
            bias: &bias,
            eps: 1e-5,
        };
        let work =
            Work::Flops(2.0 * (shapes.output.iter().product::<usize>() * c_in * k * k) as f64);
        for with_residual in [false, true] {
            let then = Epilogue {
                residual: with_residual.then_some(&residual),
                relu: true,
            };
            let suffix = if with_residual { "_residual" } else { "" };
            let separate = || {
                let out = conv2d(&x, &w, None, &conv).expect("conv");
                bn.forward(&out, then).expect("batch norm")
            };
            let affine = ChannelAffine::BatchNorm {
                bn: &bn,
                conv_bias: None,
            };
            let folded = || conv2d_then(&x, &w, &conv, affine, then).expect("conv + bn");
            let separate_name = format!("separate{suffix}/{name}");
            bench_case(&mut group, &gpu, &separate_name, work, &separate);
            let folded_name = format!("folded{suffix}/{name}");
            bench_case(&mut group, &gpu, &folded_name, work, &folded);
        }
    }
    group.finish();
}

/// VGG-16's convolutions with their bias and ReLU: the convolution with its bias then the
/// ReLU's pass (`separate`) against both applied by the convolution's output pass where it
/// can (`folded`, `conv2d_then`). Throughput counts the convolution's FLOPs.
fn conv_relu_benches(c: &mut Criterion) {
    use gradlens::kernels::batchnorm::Epilogue;
    use gradlens::kernels::conv2d::{ChannelAffine, Conv2d, conv2d, conv2d_shapes, conv2d_then};
    use gradlens::kernels::elementwise::relu;
    const VGG16_CONVS: &[(&str, usize, usize, usize)] = &[
        ("3x3_3to64_224", 3, 64, 224),
        ("3x3_64to64_224", 64, 64, 224),
        ("3x3_256to256_56", 256, 256, 56),
        ("3x3_512to512_14", 512, 512, 14),
    ];
    let gpu = Gpu::new().expect("a GPU adapter");
    let mut group = c.benchmark_group("conv2d_relu");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for &(name, c_in, c_out, size) in VGG16_CONVS {
        let conv = Conv2d::default().padding(1);
        let x = random_tensor(&gpu, vec![1, c_in, size, size], 11);
        let w = random_tensor(&gpu, vec![c_out, c_in, 3, 3], 12);
        let bias = random_tensor(&gpu, vec![c_out], 13);
        let shapes = conv2d_shapes("bench", x.dims(), w.dims(), &conv).expect("valid shape");
        let work = Work::Flops(2.0 * (shapes.output.iter().product::<usize>() * c_in * 9) as f64);
        let separate = || relu(&conv2d(&x, &w, Some(&bias), &conv).expect("conv")).expect("relu");
        let then = Epilogue {
            residual: None,
            relu: true,
        };
        let folded =
            || conv2d_then(&x, &w, &conv, ChannelAffine::Bias(&bias), then).expect("conv + relu");
        bench_case(
            &mut group,
            &gpu,
            &format!("separate/{name}"),
            work,
            &separate,
        );
        bench_case(&mut group, &gpu, &format!("folded/{name}"), work, &folded);
    }
    group.finish();
}

/// Memory-bound kernels in GB/s (bytes read + written), beside a plain buffer copy.
fn memory_bound_benches(c: &mut Criterion) {
    use gradlens::kernels::batchnorm::{Epilogue, batch_norm_forward, batch_norm_statistics};
    use gradlens::kernels::concat::concat_channels;
    use gradlens::kernels::elementwise::{sigmoid, silu_backward};
    use gradlens::kernels::fill::copy;
    use gradlens::kernels::pool::{Pool2d, max_pool2d};
    let gpu = Gpu::new().expect("a GPU adapter");
    // ResNet-50's stem output: 64 channels at 112×112.
    let x = random_tensor(&gpu, vec![1, 64, 112, 112], 8);
    let per_channel = random_tensor(&gpu, vec![64], 9);
    let bytes = (x.numel() * 4) as f64;
    let pool = Pool2d::new(3).stride(2).padding(1);
    let mut group = c.benchmark_group("memory_bound");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let copy_op = || copy(&x).expect("copy");
    bench_case(&mut group, &gpu, "copy", Work::Bytes(2.0 * bytes), &copy_op);
    let pool_op = || max_pool2d(&x, &pool).expect("pool");
    bench_case(
        &mut group,
        &gpu,
        "max_pool_3x3s2",
        Work::Bytes(1.25 * bytes),
        &pool_op,
    );
    let stats_op = || batch_norm_statistics(&x).expect("bn").mean;
    bench_case(
        &mut group,
        &gpu,
        "batch_norm_statistics",
        Work::Bytes(bytes),
        &stats_op,
    );
    let bn_op = || {
        batch_norm_forward(
            &x,
            &per_channel,
            &per_channel,
            &per_channel,
            &per_channel,
            1e-5,
            Epilogue::default(),
        )
        .expect("bn")
    };
    bench_case(
        &mut group,
        &gpu,
        "batch_norm_forward",
        Work::Bytes(2.0 * bytes),
        &bn_op,
    );
    let sigmoid_op = || sigmoid(&x).expect("sigmoid");
    bench_case(
        &mut group,
        &gpu,
        "sigmoid",
        Work::Bytes(2.0 * bytes),
        &sigmoid_op,
    );
    let silu_backward_op = || silu_backward(&x, &x).expect("silu_backward");
    bench_case(
        &mut group,
        &gpu,
        "silu_backward",
        Work::Bytes(3.0 * bytes),
        &silu_backward_op,
    );
    let concat_op = || concat_channels(&[&x, &x]).expect("concat");
    bench_case(
        &mut group,
        &gpu,
        "concat_2x64ch",
        Work::Bytes(4.0 * bytes),
        &concat_op,
    );
    group.finish();
}

criterion_group!(
    benches,
    matmul_benches,
    matmul_variants,
    conv_benches,
    conv_batch_norm_benches,
    conv_relu_benches,
    memory_bound_benches
);
criterion_main!(benches);
