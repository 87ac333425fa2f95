//! The profiler: every kernel of a training step timed and charged to torchvision's layer
//! names, FLOPs that match the convolutions' arithmetic, shapes per layer, and a Chrome trace.
//! Its own test binary: profiling is process-wide, so no other test may dispatch meanwhile.

mod common;

use std::collections::HashSet;

use common::{Rng, gpu};
use gradlens::Tensor;
use gradlens::autograd::{Tape, Var};
use gradlens::gpu::{Phase, TimingSource};
use gradlens::models::{ModelConfig, build};
use gradlens::nn::{Forward, Mode, ParamStore};
use gradlens::profiling::{chrome_trace, format_table, kernel_rows, layer_rows};

#[test]
fn a_profiled_training_step_is_charged_to_its_layers() {
    let gpu = gpu();
    let config = ModelConfig {
        classes: 4,
        width: 8,
        ..ModelConfig::default()
    };
    let mut store = ParamStore::new(gpu);
    let model = build("resnet18", &mut store, &config).unwrap();
    let mut rng = Rng::new(3);
    let input = Tensor::from_slice(gpu, [2, 3, 32, 32], &rng.vec(2 * 3 * 32 * 32)).unwrap();

    // The FLOPs an unprofiled forward records, for comparison with the profile's.
    let flops_before = gpu.flops_recorded();
    let tape = Tape::no_grad();
    model
        .forward(
            &Forward::new(&tape, &store, Mode::Eval),
            &tape.input(input.clone()),
        )
        .unwrap()
        .tensor()
        .to_vec()
        .unwrap();
    let forward_flops = gpu.flops_recorded() - flops_before;
    assert!(forward_flops > 0);

    gpu.start_profiling().unwrap();
    assert!(gpu.is_profiling());
    let tape = Tape::new();
    let f = Forward::new(&tape, &store, Mode::Train);
    let logits = model.forward(&f, &Var::constant(input.clone())).unwrap();
    let loss = tape.cross_entropy(&logits, &[0, 3], None).unwrap();
    tape.backward(&loss, None).unwrap();
    let profile = pollster::block_on(gpu.finish_profiling()).unwrap();
    assert!(!gpu.is_profiling());
    assert!(
        pollster::block_on(gpu.finish_profiling()).is_err(),
        "profiling was already finished"
    );

    // Where the adapter offers timestamp queries (lavapipe does), they time the kernels.
    let timestamps = gpu.features().contains(wgpu::Features::TIMESTAMP_QUERY);
    if !common::skipped_without(timestamps, "profile: GPU timestamps", "timestamp queries") {
        assert_eq!(profile.source, TimingSource::GpuTimestamps);
    }
    assert!(
        profile.kernels.len() > 50,
        "{} kernels",
        profile.kernels.len()
    );
    for kernel in &profile.kernels {
        assert!(
            kernel.end_ns >= kernel.start_ns && kernel.start_ns >= 0.0,
            "{kernel:?}"
        );
    }
    assert!(profile.total_ns() > 0.0);

    // The forward phase's FLOPs are the forward's; every FLOP-counting kernel is in a layer
    // that owns a weight (a convolution or the classifier).
    let profiled_forward: u64 = profile
        .kernels
        .iter()
        .filter(|k| k.phase == Phase::Forward)
        .map(|k| k.flops)
        .sum();
    assert_eq!(profiled_forward, forward_flops);
    let parameters: HashSet<&str> = store.parameters().map(|(name, _)| name).collect();
    for kernel in profile.kernels.iter().filter(|k| k.flops > 0) {
        assert!(
            parameters.contains(format!("{}.weight", kernel.layer).as_str()),
            "{} charged to {:?}",
            kernel.kernel,
            kernel.layer
        );
    }

    // conv1: 2·N·C_out·OH·OW·C_in·KH·KW, forward and both backward products (the input's
    // gradient is not needed for the first layer).
    let conv1_flops = 2 * 2 * 8 * 16 * 16 * 3 * 7 * 7;
    let rows = layer_rows(&profile);
    let conv1 = |phase: Phase| -> u64 {
        rows.iter()
            .filter(|row| row.layer == "conv1" && row.phase == phase)
            .map(|row| row.flops)
            .sum()
    };
    assert_eq!(conv1(Phase::Forward), conv1_flops);
    assert_eq!(conv1(Phase::Backward), conv1_flops);
    assert_eq!(
        profile.shapes.get("conv1"),
        Some(&(vec![2, 3, 32, 32], vec![2, 8, 16, 16]))
    );
    assert_eq!(
        profile.shapes.get("layer2.0.downsample.0"),
        Some(&(vec![2, 8, 8, 8], vec![2, 16, 4, 4]))
    );
    for layer in ["bn1", "maxpool", "layer1.0.bn2", "avgpool", "fc"] {
        assert!(
            rows.iter().any(|row| row.layer == layer),
            "no kernel charged to {layer}"
        );
    }
    assert!(
        rows.iter()
            .any(|r| r.layer == "layer3.1.bn2" && r.phase == Phase::Backward)
    );

    let by_kernel = kernel_rows(&profile);
    let calls: usize = by_kernel.iter().map(|row| row.calls).sum();
    assert_eq!(calls, profile.kernels.len());
    assert!(by_kernel.windows(2).all(|pair| pair[0].ns >= pair[1].ns));
    let table = format_table(&profile, &rows);
    assert!(table.contains("layer4.1.conv2") && table.contains(profile.source.describe()));

    let trace = chrome_trace(&profile);
    let events = trace["traceEvents"].as_array().unwrap();
    let complete: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(complete.len(), profile.kernels.len());
    assert!(complete.iter().all(|e| e["dur"].as_f64().unwrap() >= 0.0));
    assert!(
        complete
            .iter()
            .any(|e| e["args"]["layer"] == "layer1.0.conv1")
    );

    // In eval mode a convolution stores its BN's (and ReLU's) values itself where it runs
    // Winograd, as layer1's 3×3 convolutions do here (batch 2 of 8×8: 32 tiles): no
    // batch-norm pass, and nothing charged to the BN layers.
    gpu.start_profiling().unwrap();
    let tape = Tape::no_grad();
    let eval = Forward::new(&tape, &store, Mode::Eval);
    model.forward(&eval, &tape.input(input.clone())).unwrap();
    let profile = pollster::block_on(gpu.finish_profiling()).unwrap();
    // `layer`'s kernels include one named `output_pass` and no batch-norm pass.
    let output_pass_without_bn = |layer: &str, output_pass: &str| {
        let kernels: Vec<&str> = profile
            .kernels
            .iter()
            .filter(|k| k.layer == layer)
            .map(|k| k.kernel.as_str())
            .collect();
        assert!(
            kernels.iter().any(|k| k.contains(output_pass))
                && !kernels.iter().any(|k| k.contains("batch_norm_forward")),
            "{layer}: {kernels:?}"
        );
    };
    for layer in [
        "layer1.0.conv1",
        "layer1.0.conv2",
        "layer1.1.conv1",
        "layer1.1.conv2",
    ] {
        output_pass_without_bn(layer, "winograd::output_transform");
    }
    assert!(
        !profile
            .kernels
            .iter()
            .any(|k| k.layer.starts_with("layer1.") && k.layer.contains(".bn")),
        "a kernel was charged to a BN layer of layer1"
    );
    // Where the subgroup GEMM runs (lavapipe), its stores apply the BN and ReLU of the GEMM
    // convolutions that add no residual: the stem (16×16 outputs), layer2's 1×1 downsample
    // (4×4) and layer4's first 3×3 (1×1 outputs, a plane padded to 4 positions).
    if gradlens::kernels::matmul::subgroup_kernel_available(gpu) {
        for layer in ["conv1", "layer2.0.downsample.0", "layer4.0.conv1"] {
            output_pass_without_bn(layer, "matmul_subgroup");
        }
    }

    // VGG's convolutions apply their bias and ReLU, and VGG-BN's their BN too, in the output
    // pass of the subgroup GEMM or Winograd that runs each of them here: no bias, ReLU or
    // batch-norm pass in `features`.
    if gradlens::kernels::matmul::subgroup_kernel_available(gpu) {
        for arch in ["vgg11", "vgg11_bn"] {
            let config = ModelConfig {
                classes: 4,
                ..ModelConfig::default()
            };
            let mut store = ParamStore::new(gpu);
            let model = build(arch, &mut store, &config).unwrap();
            gpu.start_profiling().unwrap();
            let tape = Tape::no_grad();
            let eval = Forward::new(&tape, &store, Mode::Eval);
            model.forward(&eval, &tape.input(input.clone())).unwrap();
            let profile = pollster::block_on(gpu.finish_profiling()).unwrap();
            let features: Vec<(&str, &str)> = profile
                .kernels
                .iter()
                .filter(|k| k.layer.starts_with("features."))
                .map(|k| (k.layer.as_str(), k.kernel.as_str()))
                .collect();
            assert!(
                features.iter().any(|(_, k)| k.contains("matmul_subgroup")),
                "{arch}: {features:?}"
            );
            for (layer, kernel) in &features {
                let separate_pass = ["relu", "add_channel_bias", "batch_norm_forward"]
                    .iter()
                    .any(|pass| kernel.contains(pass));
                assert!(!separate_pass, "{arch} {layer}: {kernel}");
            }
        }
    }

    // Nothing is recorded once profiling has stopped.
    gpu.start_profiling().unwrap();
    let empty = pollster::block_on(gpu.finish_profiling()).unwrap();
    assert!(empty.kernels.is_empty());
}
