//! Shared test support: one GPU context per test process (poisoning every allocation with NaN),
//! a seeded random generator, and comparisons with explicit relative tolerances.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod binary;
pub mod fine_tune;
pub mod formula;
pub mod op_check;

use std::sync::OnceLock;

use gradlens::{Gpu, GpuOptions, LimitCaps};

/// The process-wide context. Allocations are NaN-poisoned so unwritten outputs fail.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::with_options(test_options())
            .unwrap_or_else(|error| panic!("tests need a GPU adapter: {error}"))
    })
}

/// Poisoned allocations on the adapter `GRADLENS_*` chooses, and, where
/// `GRADLENS_TEST_MAX_WORKGROUPS` is set, at most that many workgroups per grid dimension:
/// CI runs the kernel tests a second time with it low, so that every launch of more
/// workgroups takes the 2-D grid fold that only huge tensors reach otherwise.
fn test_options() -> GpuOptions {
    let request = gradlens::gpu::AdapterRequest::from_env().expect("GRADLENS_* variables");
    let max_workgroups = std::env::var("GRADLENS_TEST_MAX_WORKGROUPS")
        .ok()
        .map(|value| {
            value
                .parse()
                .unwrap_or_else(|_| panic!("GRADLENS_TEST_MAX_WORKGROUPS={value:?} is not a count"))
        });
    // GRADLENS_TEST_CHOOSE_AS=gpu: kernels chosen as for a discrete GPU, so that the variants
    // `Auto` picks only there run (and are checked) on a CPU adapter.
    let choose_as =
        std::env::var("GRADLENS_TEST_CHOOSE_AS")
            .ok()
            .map(|value| match value.as_str() {
                "gpu" => wgpu::DeviceType::DiscreteGpu,
                "cpu" => wgpu::DeviceType::Cpu,
                other => panic!("GRADLENS_TEST_CHOOSE_AS={other:?}: gpu or cpu"),
            });
    GpuOptions {
        request,
        poison_allocations: true,
        caps: LimitCaps {
            max_workgroups_per_dimension: max_workgroups,
            max_binding_bytes: None,
        },
        choose_as,
        kept_copy_bytes: None,
    }
}

/// The fewest elements, one per invocation in workgroups of `workgroup_size`, that need
/// more workgroups than one grid dimension of the test context holds: launches of this many
/// take the 2-D grid fold.
pub fn folded_length(workgroup_size: usize) -> usize {
    let per_dimension = gpu().limits().max_compute_workgroups_per_dimension as usize;
    per_dimension * workgroup_size + 1
}

/// A context of the test's own, for counts that tests running beside it on the shared one
/// would disturb (its pool's statistics, say).
pub fn private_gpu() -> Gpu {
    Gpu::with_options(test_options())
        .unwrap_or_else(|error| panic!("tests need a GPU adapter: {error}"))
}

/// `private_gpu` keeping at most `bytes` of copies from call to call (`gpu::kept_copies`).
pub fn private_gpu_keeping(bytes: u64) -> Gpu {
    let options = GpuOptions {
        kept_copy_bytes: Some(bytes),
        ..test_options()
    };
    Gpu::with_options(options).unwrap_or_else(|error| panic!("tests need a GPU adapter: {error}"))
}

/// Whether `test` must skip for want of `feature` on this adapter (`available` false). A skip
/// is reported on stderr as `SKIP <test>: …`; where `GRADLENS_REQUIRE_FEATURES` is set (CI sets
/// it: lavapipe has every feature these tests use) a missing feature fails the test instead, so
/// no test passes there without having run.
#[track_caller]
pub fn skipped_without(available: bool, test: &str, feature: &str) -> bool {
    if available {
        return false;
    }
    let adapter = gpu().describe();
    if std::env::var_os("GRADLENS_REQUIRE_FEATURES").is_some() {
        panic!("{test}: {adapter} lacks {feature}, and GRADLENS_REQUIRE_FEATURES forbids skipping");
    }
    eprintln!("SKIP {test}: {adapter} lacks {feature}");
    true
}

/// SplitMix64: small, seeded, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1), never exactly zero-heavy: test data must not be all zeros.
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    pub fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.uniform()).collect()
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

/// Fails unless every element satisfies |got - want| <= atol + rtol·|want| (NaN never does,
/// unless both are NaN and `want` is NaN by design).
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() && g.is_nan() {
            continue;
        }
        let error = (g - w).abs();
        let allowed = atol + rtol * w.abs();
        assert!(
            error <= allowed,
            "{what}: element {i} is {g}, want {w} (|error| {error} > {allowed}); \
             {} elements in all",
            got.len()
        );
    }
}

// Profiling (`Gpu::start_profiling`), finite checks (`Gpu::start_finite_checks`) and the
// tuning shape recorder are modes of the whole context or process: a test that uses one needs
// a test binary of its own (tests/profile.rs, tests/finite.rs, tests/tuning.rs), or the other
// tests' work would be recorded with its own.
