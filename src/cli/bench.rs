//! `gradlens bench`: time a model with random weights and input. The first run (pipelines
//! compiled, buffers created) is reported apart; then one warm-up and the median of `runs`
//! timed runs, each ending with its result read back. Optionally forward + backward to the
//! input (the saliency workload: parameters frozen, no weight gradients) and one training step
//! (forward, backward, SGD with momentum), a per-layer profile and a Chrome trace.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};

use gradlens::autograd::{Tape, Var};
use gradlens::gpu::Phase;
use gradlens::kernels::matmul::SubgroupTile;
use gradlens::kernels::tuning;
use gradlens::models::{Classifier, ModelConfig, build};
use gradlens::nn::{Forward, Mode, ParamStore, SplitMix64};
use gradlens::profiling::{format_table, kernel_rows, layer_rows};
use gradlens::train::{Optimizer, Sgd};
use gradlens::weights::write_atomically;
use gradlens::{Error, Gpu, Result, Tensor};

#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long)]
    pub arch: String,
    #[arg(long, default_value_t = 1, value_parser = sizes(1..=1024))]
    pub batch: usize,
    /// Input height and width (torchvision's models take 224; Inception v3 299).
    #[arg(long, default_value_t = 224, value_parser = sizes(1..=4096))]
    pub size: usize,
    /// Timed runs per workload (at least 5).
    #[arg(long, default_value_t = 5, value_parser = sizes(5..=1_000_000))]
    pub runs: usize,
    /// Also time forward + backward to the input (parameters need no gradients).
    #[arg(long)]
    pub backward: bool,
    /// Also time a training step: forward, backward to the parameters, SGD.
    #[arg(long)]
    pub train: bool,
    /// Profile one run of the last workload: per-layer and per-kernel time.
    #[arg(long)]
    pub profile: bool,
    /// Profile the first forward instead (pipelines compiled, buffers created): a cold start's
    /// cost per kernel. Drivers that compile a pipeline at its first dispatch (lavapipe's
    /// llvmpipe) show the compile in that kernel's time.
    #[arg(long)]
    pub profile_first: bool,
    /// Write the profile as Chrome trace-event JSON (needs --profile).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Profile one run of the last workload, measure the adapter's peak FLOP/s and bandwidth
    /// with gradlens's microkernels, and place every kernel against them: a table (and, with
    /// --json, its figures) and the roofline plot written to this SVG file.
    #[arg(long, value_name = "SVG")]
    pub roofline: Option<PathBuf>,
    /// Also print every figure as one JSON object, the last line of the output.
    #[arg(long)]
    pub json: bool,
    /// First tune the subgroup matmul's tile on the model's shapes and keep the winners in
    /// the tuning file ($GRADLENS_TUNING_FILE, else $XDG_CACHE_HOME/gradlens/tuning.json,
    /// else ~/.cache/gradlens/tuning.json), which every later process reads.
    #[arg(long)]
    pub tune: bool,
}

/// A flag's parser for a count within `range`.
fn sizes(range: std::ops::RangeInclusive<u64>) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(range)
}

/// Which workload a timing covers.
#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Forward,
    /// Forward and backward to the input, parameters frozen.
    ForwardBackward,
    /// Forward, backward to the parameters, an optimiser step.
    TrainStep,
}

impl Workload {
    fn describe(self) -> &'static str {
        match self {
            Workload::Forward => "forward",
            Workload::ForwardBackward => "forward + backward to the input",
            Workload::TrainStep => "training step (forward, backward, SGD)",
        }
    }
}

/// A model with random weights, its input and everything one workload needs.
struct Subject {
    gpu: Gpu,
    store: ParamStore,
    model: Box<dyn Classifier>,
    input: Tensor,
    labels: Vec<usize>,
    optimizer: Sgd,
}

impl Subject {
    fn new(gpu: &Gpu, request: &BenchArgs) -> Result<Self> {
        let config = ModelConfig::default();
        let mut store = ParamStore::new(gpu);
        let model = build(&request.arch, &mut store, &config)?;
        let mut rng = SplitMix64::new(7);
        let dims = [
            request.batch,
            config.in_channels,
            request.size,
            request.size,
        ];
        let data: Vec<f32> = (0..dims.iter().product::<usize>())
            .map(|_| rng.uniform_symmetric(2.0))
            .collect();
        let labels = (0..request.batch)
            .map(|_| rng.below(config.classes))
            .collect();
        Ok(Self {
            gpu: gpu.clone(),
            input: Tensor::from_slice(gpu, dims, &data)?,
            store,
            model,
            labels,
            optimizer: Sgd::new(0.9, false, 1e-4),
        })
    }

    /// Runs the workload once, ending with a readback.
    fn run(&mut self, workload: Workload) -> Result<()> {
        let tape = match workload {
            Workload::Forward => Tape::no_grad(),
            Workload::ForwardBackward => Tape::new().input_gradients_only(),
            Workload::TrainStep => Tape::new(),
        };
        let mode = match workload {
            Workload::TrainStep => Mode::Train,
            _ => Mode::Eval,
        };
        let f = Forward::new(&tape, &self.store, mode);
        let x = match workload {
            Workload::ForwardBackward => tape.input(self.input.clone()),
            _ => Var::constant(self.input.clone()),
        };
        let (logits, aux) = self.model.forward_with_aux(&f, &x)?;
        match workload {
            Workload::Forward => {
                logits.tensor().to_vec()?;
            }
            Workload::ForwardBackward => {
                // One class score per image, as saliency seeds it.
                let classes = logits.dims()[1];
                let mut seed = vec![0.0; logits.tensor().numel()];
                for (row, &label) in self.labels.iter().enumerate() {
                    seed[row * classes + label] = 1.0;
                }
                let seed = Tensor::from_slice(&self.gpu, logits.dims().to_vec(), &seed)?;
                let grads = tape.backward(&logits, Some(seed))?;
                let grad = grads.get(&x).ok_or_else(|| Error::InvalidArgument {
                    op: "bench",
                    message: "the input received no gradient".into(),
                })?;
                grad.to_vec()?;
            }
            Workload::TrainStep => {
                let mut loss = tape.cross_entropy(&logits, &self.labels, None)?;
                for aux in &aux {
                    // torchvision's weighting of GoogLeNet's and Inception v3's aux losses.
                    let aux_loss = tape.cross_entropy(aux, &self.labels, None)?;
                    loss = tape.add(&loss, &tape.scale(&aux_loss, 0.3)?)?;
                }
                let grads = tape.backward(&loss, None)?;
                {
                    let _phase = self.gpu.phase(Phase::Update);
                    self.optimizer.step(&self.store, &grads, 0.01)?;
                }
                loss.tensor().to_vec()?;
            }
        }
        Ok(())
    }
}

/// Milliseconds of each of `runs` runs after one warm-up.
fn time_runs(subject: &mut Subject, workload: Workload, runs: usize) -> Result<Vec<f64>> {
    subject.run(workload)?;
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            subject.run(workload)?;
            Ok(start.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() % 2 {
        1 => sorted[middle],
        _ => (sorted[middle - 1] + sorted[middle]) / 2.0,
    }
}

/// The largest random input bench makes (1 GiB of f32): batch · 3 · size² beyond it is refused
/// before anything is allocated.
const MAX_INPUT_ELEMENTS: usize = 1 << 28;

pub fn run(request: &BenchArgs) -> Result<()> {
    let elements = request.batch * 3 * request.size * request.size;
    if elements > MAX_INPUT_ELEMENTS {
        return Err(Error::InvalidArgument {
            op: "bench",
            message: format!(
                "a batch of {} at {}×{} is {elements} input values, more than {MAX_INPUT_ELEMENTS}",
                request.batch, request.size, request.size
            ),
        });
    }
    if let Some(trace) = &request.trace
        && !request.profile
    {
        return Err(Error::InvalidArgument {
            op: "--trace",
            message: format!("{} needs --profile", trace.display()),
        });
    }
    let gpu = Gpu::new()?;
    let info = gpu.adapter_info();
    let mut report = json!({
        "arch": request.arch,
        "batch": request.batch,
        "size": request.size,
        "adapter": info.name,
        "backend": format!("{:?}", info.backend),
        "runs": request.runs,
    });
    let say = |line: String| {
        if !request.json {
            println!("{line}");
        }
    };
    say(format!(
        "{} batch {} at {}×{} on {}",
        request.arch,
        request.batch,
        request.size,
        request.size,
        gpu.describe()
    ));

    let mut subject = Subject::new(&gpu, request)?;
    if request.tune {
        report["tuning"] = tune_for(&gpu, &mut subject, request, &say)?;
    }
    let flops_before = gpu.flops_recorded();
    if request.profile_first {
        gpu.start_profiling()?;
    }
    let start = Instant::now();
    subject.run(Workload::Forward)?;
    let first_run_ms = start.elapsed().as_secs_f64() * 1e3;
    if request.profile_first {
        let profile = pollster::block_on(gpu.finish_profiling())?;
        say(profile_tables(&profile, "the first forward"));
        report["profile_first"] = profile_summary(&profile);
    }
    let gflop_forward = (gpu.flops_recorded() - flops_before) as f64 / 1e9;
    say(format!(
        "first forward (pipelines compiled, buffers created): {first_run_ms:.1} ms"
    ));
    gpu.reset_peak_memory();
    let forward = time_runs(&mut subject, Workload::Forward, request.runs)?;
    let forward_ms = median(&forward);
    let peak_bytes = gpu.pool_stats().peak_in_use_bytes;
    say(format!(
        "forward: median {forward_ms:.1} ms over {} runs (min {:.1}, max {:.1}); {gflop_forward:.2} \
         GFLOP → {:.2} GFLOP/s; peak GPU memory {:.1} MB",
        request.runs,
        forward.iter().copied().fold(f64::INFINITY, f64::min),
        forward.iter().copied().fold(0.0, f64::max),
        gflop_forward / forward_ms * 1e3,
        peak_bytes as f64 / 1e6
    ));
    report["first_run_ms"] = json!(first_run_ms);
    report["forward_ms"] = json!(forward_ms);
    report["forward_runs_ms"] = json!(forward);
    report["gflop_forward"] = json!(gflop_forward);
    report["peak_bytes"] = json!(peak_bytes);

    let mut profiled = Workload::Forward;
    for (wanted, workload, key) in [
        (
            request.backward,
            Workload::ForwardBackward,
            "forward_backward",
        ),
        (request.train, Workload::TrainStep, "train_step"),
    ] {
        if !wanted {
            continue;
        }
        // The same weights throughout: training, which changes them, comes last.
        gpu.reset_peak_memory();
        let times = time_runs(&mut subject, workload, request.runs)?;
        let ms = median(&times);
        let peak = gpu.pool_stats().peak_in_use_bytes;
        say(format!(
            "{}: median {ms:.1} ms over {} runs; peak GPU memory {:.1} MB",
            workload.describe(),
            request.runs,
            peak as f64 / 1e6
        ));
        report[format!("{key}_ms")] = json!(ms);
        report[format!("{key}_runs_ms")] = json!(times);
        report[format!("peak_bytes_{key}")] = json!(peak);
        profiled = workload;
    }

    let memory = gpu.pool_stats();
    say(format!(
        "kept copies (Winograd filters, operand textures): {:.1} MB of a {:.1} MB budget \
         (${}); device memory held, free buffers included: {:.1} MB",
        memory.kept_copy_bytes as f64 / 1e6,
        memory.kept_copy_budget as f64 / 1e6,
        gradlens::gpu::kept_copies::KEPT_COPIES_VAR,
        memory.allocated_bytes as f64 / 1e6
    ));
    report["kept_copy_bytes"] = json!(memory.kept_copy_bytes);
    report["kept_copy_budget"] = json!(memory.kept_copy_budget);
    report["allocated_bytes"] = json!(memory.allocated_bytes);

    if request.profile || request.roofline.is_some() {
        gpu.start_profiling()?;
        subject.run(profiled)?;
        let profile = pollster::block_on(gpu.finish_profiling())?;
        if let Some(path) = &request.roofline {
            report["roofline"] = roofline(&gpu, &profile, request, profiled, path, &say)?;
        }
        if request.profile {
            say(profile_tables(
                &profile,
                &format!("one {}", profiled.describe()),
            ));
            report["profile"] = profile_summary(&profile);
            if let Some(path) = &request.trace {
                let trace = gradlens::profiling::chrome_trace(&profile);
                write_atomically(path, trace.to_string().as_bytes()).map_err(|error| {
                    Error::Output {
                        path: path.display().to_string(),
                        message: format!("cannot write the trace: {error}"),
                    }
                })?;
                say(format!(
                    "trace written to {} (open it in https://ui.perfetto.dev)",
                    path.display()
                ));
            }
        }
    }
    if request.json {
        println!("{report}");
    }
    Ok(())
}

/// The per-layer and per-kernel tables of `profile`, titled with what it profiled.
fn profile_tables(profile: &gradlens::gpu::Profile, what: &str) -> String {
    format!(
        "\nProfile of {what} ({}):\n{}\nBy kernel:\n{}",
        profile.source.describe(),
        format_table(profile, &layer_rows(profile)),
        format_table(profile, &kernel_rows(profile))
    )
}

/// Measures the adapter's peaks, places every kernel of `profile` against them, prints the
/// table, writes the plot to `path` and returns the figures for --json.
fn roofline(
    gpu: &Gpu,
    profile: &gradlens::gpu::Profile,
    request: &BenchArgs,
    workload: Workload,
    path: &std::path::Path,
    say: &dyn Fn(String),
) -> Result<Value> {
    let peaks = pollster::block_on(gradlens::roofline::measure_peaks(gpu))?;
    let kernels = gradlens::roofline::place_kernels(profile, &peaks);
    let layers = gradlens::roofline::place_layers(profile, &peaks);
    say(format!(
        "\nRoofline of one {} ({:.1} ms of kernel time):",
        workload.describe(),
        profile.total_ns() / 1e6
    ));
    say(gradlens::roofline::format_table(
        &kernels,
        &peaks,
        profile.total_ns(),
    ));
    let title = format!(
        "{} batch {} at {}², {} — {}",
        request.arch,
        request.batch,
        request.size,
        workload.describe(),
        gpu.describe()
    );
    let svg = gradlens::roofline::svg(&layers, &kernels, &peaks, &title);
    write_atomically(path, svg.as_bytes()).map_err(|error| Error::Output {
        path: path.display().to_string(),
        message: format!("cannot write the roofline plot: {error}"),
    })?;
    say(format!("roofline plot written to {}", path.display()));
    Ok(gradlens::roofline::to_json(&layers, &kernels, &peaks))
}

/// Records the subgroup matmul shapes of every requested workload, tunes their tiles (written
/// to the tuning file for later processes) and reports what each shape class gained.
fn tune_for(
    gpu: &Gpu,
    subject: &mut Subject,
    request: &BenchArgs,
    say: &dyn Fn(String),
) -> Result<Value> {
    tuning::record_shapes();
    subject.run(Workload::Forward)?;
    if request.backward {
        subject.run(Workload::ForwardBackward)?;
    }
    let shapes = tuning::recorded_shapes();
    let tuned = tuning::tune(gpu, &shapes, 3)?;
    say(format!(
        "tuned the subgroup matmul for {} shapes ({} classes) into {}:",
        shapes.len(),
        tuned.len(),
        tuning::tuning_file_path().map_or("(nowhere)".into(), |p| p.display().to_string())
    ));
    let mut rows = Vec::new();
    for result in &tuned {
        let time = |tile: SubgroupTile| {
            result
                .times
                .iter()
                .find(|(t, _)| *t == tile)
                .map_or(f64::NAN, |(_, ms)| *ms)
        };
        let (default_ms, best_ms) = (time(SubgroupTile::DEFAULT), time(result.best));
        let [m, n, k] = result.shape;
        let every_tile: Vec<String> = result
            .times
            .iter()
            .map(|(tile, ms)| format!("{}×{} {ms:.2}", 8 * tile.row_groups, 32 * tile.column_vecs))
            .collect();
        say(format!(
            "  {m}×{n}×{k} ({}): {}×{} tile {best_ms:.2} ms, default {default_ms:.2} ms (every tile, ms: {})",
            result.class,
            8 * result.best.row_groups,
            32 * result.best.column_vecs,
            every_tile.join(", ")
        ));
        rows.push(json!({
            "shape": result.shape,
            "class": result.class,
            "tile": [result.best.row_groups, result.best.column_vecs],
            "best_ms": best_ms,
            "default_ms": default_ms,
        }));
    }
    Ok(Value::Array(rows))
}

/// The profile's source and total, and its per-layer rows, for --json.
fn profile_summary(profile: &gradlens::gpu::Profile) -> Value {
    let rows: Vec<Value> = layer_rows(profile)
        .iter()
        .map(|row| {
            json!({
                "phase": row.phase.name(),
                "layer": row.layer,
                "kernel": row.kernel,
                "calls": row.calls,
                "flops": row.flops,
                "bytes": row.bytes,
                "ms": row.ns / 1e6,
            })
        })
        .collect();
    json!({
        "source": profile.source.describe(),
        "total_ms": profile.total_ns() / 1e6,
        "layers": rows,
    })
}
