//! The roofline (Williams, Waterman & Patterson 2009) of a model's step: the adapter's best
//! arithmetic rate and bandwidth, measured with gradlens's own microkernels
//! (shaders/roofline.wgsl), and each kernel of a profile placed against them.
//!
//! A kernel that does `flops` over `bytes` has arithmetic intensity I = flops / bytes. No kernel
//! can beat min(peak FLOP/s, I · peak bandwidth): below the ridge point I = peak FLOP/s / peak
//! bandwidth a kernel is bound by memory, above it by arithmetic. The fraction of that bound a
//! kernel reaches says how much faster it could be without changing the algorithm. Kernels that
//! count no FLOPs (copies, batch norm, elementwise) are held to the bandwidth alone.
//!
//! `bytes` counts each binding's range once (the profiler's model), the least traffic a kernel
//! can have: a kernel that reads its inputs more than once from memory moves more, and one whose
//! data stays in a cache (a CPU adapter's, where a small layer fits) can show more than 100% of
//! the streaming bandwidth. `flops` of a convolution's products count the convolution's own
//! work (`matmul_counted`), as the direct algorithm would do it: a Winograd layer, which does
//! 2.25× or 4× fewer multiplies, can sit above the arithmetic roof.

mod plot;

use std::fmt::Write;

use serde_json::{Value, json};

use crate::error::Result;
use crate::gpu::{Gpu, Profile, TimingSource};
use crate::kernels::roofline::{fma_chain, fma_chain_flops, stream_copy};
use crate::profiling::{Row, kernel_rows, layer_rows};
use crate::tensor::Tensor;
pub use plot::svg;

/// What the adapter reaches at best, by its microkernels.
#[derive(Clone, Copy, Debug)]
pub struct Peaks {
    /// `fma_chain`: independent FMA chains with no memory traffic.
    pub gflops_per_s: f64,
    /// `stream_copy`: a vec4 copy of a buffer far larger than any cache, read plus written.
    pub gbytes_per_s: f64,
    /// How the microkernels were timed.
    pub source: TimingSource,
}

impl Peaks {
    /// The arithmetic intensity (FLOP/byte) where the two bounds meet.
    pub fn ridge(&self) -> f64 {
        self.gflops_per_s / self.gbytes_per_s
    }

    fn to_json(self) -> Value {
        json!({
            "gflops_per_s": self.gflops_per_s,
            "gbytes_per_s": self.gbytes_per_s,
            "ridge_flops_per_byte": self.ridge(),
            "timed_by": self.source.describe(),
        })
    }
}

/// FMA steps per invocation of the arithmetic microkernel.
const FMA_ITERATIONS: u32 = 1024;

/// The arithmetic microkernel runs at least this long (its launch then costs nothing by
/// comparison), on invocations doubled from `FIRST_INVOCATIONS` up to `MAX_INVOCATIONS`.
const MIN_KERNEL_NS: f64 = 20e6;
const FIRST_INVOCATIONS: usize = 1 << 12;
const MAX_INVOCATIONS: usize = 1 << 22;

/// The copy's buffer: larger than any adapter's cache (64 MiB), within one binding.
const COPY_BYTES: u64 = 64 << 20;

/// Timed runs of each microkernel; the fastest counts.
const RUNS: usize = 5;

/// Measures the adapter's peaks (`Peaks`): takes a few tenths of a second on a CPU adapter.
pub async fn measure_peaks(gpu: &Gpu) -> Result<Peaks> {
    let mut invocations = FIRST_INVOCATIONS;
    let arithmetic =
        |invocations| move || fma_chain(gpu, invocations, FMA_ITERATIONS, 0.5, 0.5).map(drop);
    let (mut fma_ns, source) = time_kernel(gpu, arithmetic(invocations)).await?;
    while fma_ns < MIN_KERNEL_NS && invocations < MAX_INVOCATIONS {
        invocations *= 2;
        fma_ns = time_kernel(gpu, arithmetic(invocations)).await?.0;
    }
    for _ in 1..RUNS {
        fma_ns = fma_ns.min(time_kernel(gpu, arithmetic(invocations)).await?.0);
    }
    let flops = fma_chain_flops(invocations, FMA_ITERATIONS) as f64;

    let bytes = COPY_BYTES.min(gpu.max_binding_bytes()) / 16 * 16;
    let elements = (bytes / 4) as usize;
    let src = Tensor::full(gpu, [elements], 1.0)?;
    let dst = Tensor::empty(gpu, [elements])?;
    let mut copy_ns = f64::INFINITY;
    // One more run than timed: the first touches the destination's pages.
    for _ in 0..=RUNS {
        copy_ns = copy_ns.min(time_kernel(gpu, || stream_copy(&src, &dst)).await?.0);
    }
    Ok(Peaks {
        gflops_per_s: flops / fma_ns,
        gbytes_per_s: 2.0 * bytes as f64 / copy_ns,
        source,
    })
}

/// The time of the roofline kernels `run` records (not of what else it records: a poisoning
/// context's fill of the output), and how it was timed.
async fn time_kernel(gpu: &Gpu, run: impl FnOnce() -> Result<()>) -> Result<(f64, TimingSource)> {
    gpu.start_profiling()?;
    let recorded = run();
    let profile = gpu.finish_profiling().await?;
    recorded?;
    let ns = profile
        .kernels
        .iter()
        .filter(|kernel| kernel.kernel.starts_with("roofline::"))
        .map(|kernel| kernel.duration_ns())
        .sum();
    Ok((ns, profile.source))
}

/// Which roof bounds a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Compute,
    Memory,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::Compute => "compute",
            Limit::Memory => "memory",
        }
    }
}

/// One kernel (all its calls in one phase) against the roofline.
#[derive(Clone, Debug)]
pub struct Placed {
    pub row: Row,
    /// FLOP per byte; `None` for kernels that count no FLOPs.
    pub intensity: Option<f64>,
    pub limit: Limit,
    /// Of the roof that applies: achieved GFLOP/s over attainable GFLOP/s where the kernel
    /// counts FLOPs, achieved GB/s over peak GB/s otherwise.
    pub fraction: f64,
}

impl Placed {
    /// The attainable rate: GFLOP/s for kernels that count FLOPs, else GB/s.
    pub fn attainable(&self, peaks: &Peaks) -> f64 {
        match (self.intensity, self.limit) {
            (Some(_), Limit::Compute) => peaks.gflops_per_s,
            (Some(intensity), Limit::Memory) => intensity * peaks.gbytes_per_s,
            (None, _) => peaks.gbytes_per_s,
        }
    }
}

/// Places one row.
pub fn place(row: &Row, peaks: &Peaks) -> Placed {
    let intensity = (row.flops > 0 && row.bytes > 0).then(|| row.flops as f64 / row.bytes as f64);
    let limit = match intensity {
        Some(intensity) if intensity >= peaks.ridge() => Limit::Compute,
        _ => Limit::Memory,
    };
    let mut placed = Placed {
        row: row.clone(),
        intensity,
        limit,
        fraction: 0.0,
    };
    let achieved = match intensity {
        Some(_) => row.gflops_per_s(),
        None => row.gbytes_per_s(),
    };
    placed.fraction = achieved.unwrap_or(0.0) / placed.attainable(peaks);
    placed
}

/// Every kernel of `profile` by (phase, kernel) over all layers, slowest first, placed
/// against `peaks`.
pub fn place_kernels(profile: &Profile, peaks: &Peaks) -> Vec<Placed> {
    kernel_rows(profile)
        .iter()
        .map(|row| place(row, peaks))
        .collect()
}

/// Every kernel of `profile` by (phase, layer, kernel), in the order they first ran, placed
/// against `peaks`: each layer's convolution is a point of its own.
pub fn place_layers(profile: &Profile, peaks: &Peaks) -> Vec<Placed> {
    layer_rows(profile)
        .iter()
        .map(|row| place(row, peaks))
        .collect()
}

/// A fixed-width table: the peaks, then one line per kernel.
pub fn format_table(placed: &[Placed], peaks: &Peaks, total_ns: f64) -> String {
    let mut text = format!(
        "peaks ({}): {:.1} GFLOP/s (fma_chain), {:.1} GB/s (stream_copy); ridge at {:.2} FLOP/byte\n",
        peaks.source.describe(),
        peaks.gflops_per_s,
        peaks.gbytes_per_s,
        peaks.ridge()
    );
    let _ = writeln!(
        text,
        "{:<8} {:<50} {:>9} {:>6} {:>9} {:>8} {:>9} {:>7} {:>12} {:>8}",
        "phase",
        "kernel",
        "ms",
        "share",
        "GFLOP/s",
        "GB/s",
        "FLOP/B",
        "bound",
        "attainable",
        "of bound"
    );
    for placed in placed {
        let row = &placed.row;
        let kernel = match row.calls {
            1 => row.kernel.clone(),
            calls => format!("{} ×{calls}", row.kernel),
        };
        let optional = |value: Option<f64>| value.map_or("-".into(), |v| format!("{v:.2}"));
        let attainable = match placed.intensity {
            Some(_) => format!("{:.1} GFLOP/s", placed.attainable(peaks)),
            None => format!("{:.1} GB/s", placed.attainable(peaks)),
        };
        let _ = writeln!(
            text,
            "{:<8} {:<50} {:>9.3} {:>5.1}% {:>9} {:>8} {:>9} {:>7} {:>12} {:>7.1}%",
            row.phase.name(),
            kernel,
            row.ns / 1e6,
            100.0 * row.ns / total_ns.max(1.0),
            optional(row.gflops_per_s()),
            optional(row.gbytes_per_s()),
            optional(placed.intensity),
            placed.limit.name(),
            attainable,
            100.0 * placed.fraction
        );
    }
    text.push_str(
        "bytes count each binding's range once, the least a kernel moves: over 100% of bandwidth \
         means data served from a cache. A convolution's FLOPs are its direct algorithm's: \
         Winograd layers, doing fewer, can pass 100% of the arithmetic roof.\n",
    );
    text
}

/// The peaks and every placed kernel, over all layers and by layer, for `--json`.
pub fn to_json(layers: &[Placed], kernels: &[Placed], peaks: &Peaks) -> Value {
    json!({
        "peaks": peaks.to_json(),
        "kernels": placed_json(kernels, peaks),
        "layers": placed_json(layers, peaks),
    })
}

fn placed_json(placed: &[Placed], peaks: &Peaks) -> Vec<Value> {
    placed
        .iter()
        .map(|placed| {
            let row = &placed.row;
            json!({
                "phase": row.phase.name(),
                "layer": row.layer,
                "kernel": row.kernel,
                "calls": row.calls,
                "ms": row.ns / 1e6,
                "flops": row.flops,
                "bytes": row.bytes,
                "gflops_per_s": row.gflops_per_s(),
                "gbytes_per_s": row.gbytes_per_s(),
                "flops_per_byte": placed.intensity,
                "bound": placed.limit.name(),
                "attainable": placed.attainable(peaks),
                "attainable_unit": if placed.intensity.is_some() { "GFLOP/s" } else { "GB/s" },
                "fraction_of_bound": placed.fraction,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::Phase;

    fn row(flops: u64, bytes: u64, ns: f64) -> Row {
        Row {
            phase: Phase::Forward,
            layer: "layer1.0.conv1".into(),
            kernel: "shader::entry".into(),
            calls: 1,
            flops,
            bytes,
            ns,
        }
    }

    const PEAKS: Peaks = Peaks {
        gflops_per_s: 100.0,
        gbytes_per_s: 10.0,
        source: TimingSource::GpuTimestamps,
    };

    #[test]
    fn each_kernel_is_held_to_the_roof_above_its_intensity() {
        assert_eq!(PEAKS.ridge(), 10.0);
        // 40 FLOP/byte, above the ridge: 2 GFLOP in 40 ms is 50 GFLOP/s of 100.
        let compute = place(&row(2_000_000_000, 50_000_000, 40e6), &PEAKS);
        assert_eq!(compute.limit, Limit::Compute);
        assert_eq!(compute.intensity, Some(40.0));
        assert!((compute.fraction - 0.5).abs() < 1e-12);
        assert_eq!(compute.attainable(&PEAKS), 100.0);
        // 2 FLOP/byte, below: the roof is 20 GFLOP/s; 1 GFLOP in 100 ms is 10.
        let memory = place(&row(1_000_000_000, 500_000_000, 100e6), &PEAKS);
        assert_eq!(memory.limit, Limit::Memory);
        assert!((memory.attainable(&PEAKS) - 20.0).abs() < 1e-12);
        assert!((memory.fraction - 0.5).abs() < 1e-12);
        // No FLOPs counted: bandwidth alone; 0.8 GB in 100 ms is 8 GB/s of 10.
        let copy = place(&row(0, 800_000_000, 100e6), &PEAKS);
        assert_eq!((copy.limit, copy.intensity), (Limit::Memory, None));
        assert!((copy.fraction - 0.8).abs() < 1e-12);
    }

    #[test]
    fn the_plot_has_a_circle_per_counted_kernel_and_escapes_names() {
        let mut named = row(2_000_000_000, 50_000_000, 40e6);
        named.layer = "features<0>&".into();
        let layers = vec![
            place(&named, &PEAKS),
            place(&row(1_000_000_000, 500_000_000, 100e6), &PEAKS),
            place(&row(0, 800_000_000, 100e6), &PEAKS),
        ];
        let svg = svg(&layers, &layers, &PEAKS, "a <title>");
        assert_eq!(svg.matches("<circle").count(), 2);
        assert_eq!(
            svg.matches("<rect x=").count(),
            3 + 3,
            "three bars, three legend keys"
        );
        assert!(svg.contains("features&lt;0&gt;&amp;") && svg.contains("a &lt;title&gt;"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}
