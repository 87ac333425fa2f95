//! Reading a [`Profile`]: per-layer and per-kernel tables, and Chrome trace-event JSON
//! (opens in Perfetto or chrome://tracing).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::gpu::{KernelTiming, Phase, Profile};

/// The kernels of one (phase, layer, kernel), summed.
#[derive(Clone, Debug)]
pub struct Row {
    pub phase: Phase,
    /// The torchvision module name; "(outside any layer)" for unscoped work.
    pub layer: String,
    pub kernel: String,
    pub calls: usize,
    pub flops: u64,
    pub bytes: u64,
    pub ns: f64,
}

impl Row {
    pub fn gflops_per_s(&self) -> Option<f64> {
        (self.flops > 0 && self.ns > 0.0).then(|| self.flops as f64 / self.ns)
    }

    pub fn gbytes_per_s(&self) -> Option<f64> {
        (self.ns > 0.0).then(|| self.bytes as f64 / self.ns)
    }
}

/// Rows by (phase, layer, kernel), in order of first run.
pub fn layer_rows(profile: &Profile) -> Vec<Row> {
    group(profile, |kernel| {
        let layer = match kernel.layer.as_str() {
            "" => "(outside any layer)",
            layer => layer,
        };
        (kernel.phase, layer.to_string())
    })
}

/// Rows by (phase, kernel) over all layers, slowest first.
pub fn kernel_rows(profile: &Profile) -> Vec<Row> {
    let mut rows = group(profile, |kernel| (kernel.phase, String::new()));
    rows.sort_by(|a, b| b.ns.total_cmp(&a.ns));
    rows
}

fn group(profile: &Profile, key: impl Fn(&KernelTiming) -> (Phase, String)) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut index: HashMap<(Phase, String, String), usize> = HashMap::new();
    for kernel in &profile.kernels {
        let (phase, layer) = key(kernel);
        let slot = *index
            .entry((phase, layer.clone(), kernel.kernel.clone()))
            .or_insert_with(|| {
                rows.push(Row {
                    phase,
                    layer,
                    kernel: kernel.kernel.clone(),
                    calls: 0,
                    flops: 0,
                    bytes: 0,
                    ns: 0.0,
                });
                rows.len() - 1
            });
        let row = &mut rows[slot];
        row.calls += 1;
        row.flops += kernel.flops;
        row.bytes += kernel.bytes;
        row.ns += kernel.duration_ns();
    }
    rows
}

/// "1×64×56×56 → 1×64×56×56" for a layer whose forward ops were seen.
fn shapes(profile: &Profile, layer: &str) -> String {
    let dims = |d: &[usize]| d.iter().map(usize::to_string).collect::<Vec<_>>().join("×");
    profile
        .shapes
        .get(layer)
        .map(|(input, output)| format!("{} → {}", dims(input), dims(output)))
        .unwrap_or_default()
}

/// A fixed-width text table of `rows` (from [`layer_rows`] or [`kernel_rows`]), with each
/// row's share of the profile's total kernel time and a closing line naming the timing source.
pub fn format_table(profile: &Profile, rows: &[Row]) -> String {
    let total = profile.total_ns().max(1.0);
    let by_layer = rows.iter().any(|row| !row.layer.is_empty());
    let mut text = String::new();
    let mut line = |cells: [&str; 10]| {
        let [
            phase,
            layer,
            kernel,
            shape,
            gflop,
            mb,
            ms,
            gflops,
            gbs,
            share,
        ] = cells;
        let layer_cells = match by_layer {
            true => format!("{layer:<34} {shape:<32} "),
            false => String::new(),
        };
        text.push_str(&format!(
            "{phase:<8} {layer_cells}{kernel:<48} {gflop:>9} {mb:>9} {ms:>9} {gflops:>8} {gbs:>7} {share:>6}\n"
        ));
    };
    line([
        "phase", "layer", "kernel", "shapes", "GFLOP", "MB", "ms", "GFLOP/s", "GB/s", "share",
    ]);
    let optional = |value: Option<f64>| value.map(|v| format!("{v:.2}")).unwrap_or("-".into());
    for row in rows {
        let kernel = match row.calls {
            1 => row.kernel.clone(),
            calls => format!("{} ×{calls}", row.kernel),
        };
        line([
            row.phase.name(),
            &row.layer,
            &kernel,
            &shapes(profile, &row.layer),
            &format!("{:.3}", row.flops as f64 / 1e9),
            &format!("{:.2}", row.bytes as f64 / 1e6),
            &format!("{:.3}", row.ns / 1e6),
            &optional(row.gflops_per_s()),
            &optional(row.gbytes_per_s()),
            &format!("{:.1}%", 100.0 * row.ns / total),
        ]);
    }
    text.push_str(&format!(
        "total {:.2} ms of kernel time over {} kernels, timed by {}; MB counts each binding's \
         range once.\n",
        total / 1e6,
        profile.kernels.len(),
        profile.source.describe()
    ));
    text
}

/// The profile as Chrome trace events: one complete event per kernel, forward and backward on
/// separate tracks, with the layer, FLOPs, bytes and workgroups as arguments.
pub fn chrome_trace(profile: &Profile) -> Value {
    let track = |phase: Phase| match phase {
        Phase::Forward => 1,
        Phase::Backward => 2,
        Phase::Update => 3,
    };
    let mut events: Vec<Value> = [Phase::Forward, Phase::Backward, Phase::Update]
        .into_iter()
        .map(|phase| {
            json!({
                "name": "thread_name", "ph": "M", "pid": 1, "tid": track(phase),
                "args": { "name": phase.name() },
            })
        })
        .collect();
    events.push(json!({
        "name": "process_name", "ph": "M", "pid": 1,
        "args": { "name": format!("gradlens ({})", profile.source.describe()) },
    }));
    for kernel in &profile.kernels {
        events.push(json!({
            "name": kernel.kernel,
            "cat": kernel.phase.name(),
            "ph": "X",
            "pid": 1,
            "tid": track(kernel.phase),
            "ts": kernel.start_ns / 1e3,
            "dur": kernel.duration_ns() / 1e3,
            "args": {
                "layer": kernel.layer,
                "flops": kernel.flops,
                "bytes": kernel.bytes,
                "workgroups": kernel.workgroups,
            },
        }));
    }
    json!({ "traceEvents": events, "displayTimeUnit": "ms" })
}
