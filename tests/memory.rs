//! GPU memory: repeated training passes, zeros in reused buffers, and the budget of kept
//! copies. A test binary of its own:
//! the pool's counters are process-wide, and tests running beside these in the same process
//! would move them; the tests here take `POOL` in turn for the same reason.

mod common;

use std::sync::Mutex;

use common::{Rng, assert_close, gpu, private_gpu_keeping};
use gradlens::Tensor;
use gradlens::autograd::Tape;
use gradlens::kernels::conv2d::{Conv2d, ConvAlgorithm, conv2d_shapes, conv2d_with};
use gradlens::kernels::elementwise::{relu, scale};
use gradlens::models::LesionNet;
use gradlens::nn::{Forward, Mode, ParamStore};
use gradlens::reference::conv2d as reference;

static POOL: Mutex<()> = Mutex::new(());

fn tensor(dims: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_slice(gpu(), dims.to_vec(), data).unwrap()
}

/// Fresh forward + backward passes, repeated: the pool's bytes in use return to the same level
/// and no new buffers are created after the first pass.
#[test]
fn repeated_training_passes_do_not_leak_gpu_memory() {
    let _pool = POOL.lock().unwrap();
    let mut store = ParamStore::new(gpu());
    let model = LesionNet::new(&mut store, 1, 2, [4, 4, 4], 6).unwrap();
    let mut rng = Rng::new(74);
    let x_data = rng.vec(4 * 16 * 16);
    let mut in_use = Vec::new();
    let mut created = Vec::new();
    for _ in 0..4 {
        {
            let tape = Tape::new();
            let f = Forward::new(&tape, &store, Mode::Train);
            let x = tape.input(tensor(&[4, 1, 16, 16], &x_data));
            let logits = model.forward(&f, &x).unwrap();
            let loss = tape.cross_entropy(&logits, &[0, 1, 1, 0], None).unwrap();
            let grads = tape.backward(&loss, None).unwrap();
            grads.get(&x).unwrap().to_vec().unwrap();
        }
        gpu().synchronize().unwrap();
        let stats = gpu().pool_stats();
        in_use.push(stats.in_use_bytes);
        created.push(stats.buffers_created);
    }
    assert!(
        in_use.windows(2).all(|w| w[0] == w[1]),
        "bytes in use per pass: {in_use:?}"
    );
    assert!(
        created[1..].windows(2).all(|w| w[0] == w[1]),
        "buffers created: {created:?}"
    );
}

/// `Tensor::zeros` (a clear on the GPU) zeroes a buffer the pool hands back with other values
/// in it.
#[test]
fn zeros_clear_a_reused_buffer() {
    let _pool = POOL.lock().unwrap();
    let n = 12_345;
    tensor(&[n], &vec![f32::NAN; n]).to_vec().unwrap();
    gpu().synchronize().unwrap();
    let created = gpu().pool_stats().buffers_created;
    let zeros = Tensor::zeros(gpu(), [n]).unwrap();
    assert_eq!(
        gpu().pool_stats().buffers_created,
        created,
        "the zeros reuse the poisoned buffer"
    );
    let values = zeros.to_vec().unwrap();
    let cleared = values.iter().filter(|v| v.to_bits() == 0).count();
    assert_eq!(cleared, n, "{} of {n} values are not +0.0", n - cleared);
}

/// Winograd F(4×4) convolutions whose kept copies (each filter in the Winograd domain, 4× its
/// weight, and that filter's texture copy) do not all fit the budget: what is kept stays
/// within it, a convolution computed from a kept copy and one computed afresh give the same
/// values as the reference and as each other, a weight's new values are seen, and the budget's
/// bytes come back with the weights.
#[test]
fn kept_copies_stay_within_their_budget_and_never_change_a_result() {
    const BUDGET: u64 = 1 << 20;
    let gpu = &private_gpu_keeping(BUDGET);
    let mut rng = Rng::new(75);
    let (x_dims, w_dims) = ([1, 64, 12, 12], [64, 64, 3, 3]);
    let conv = Conv2d::default().padding(1);
    let shapes = conv2d_shapes("test", &x_dims, &w_dims, &conv).unwrap();
    let x_data = rng.vec(x_dims.iter().product());
    let x = Tensor::from_slice(gpu, x_dims, &x_data).unwrap();
    let mut weight_data: Vec<Vec<f32>> = (0..3).map(|_| rng.vec(w_dims.iter().product())).collect();
    let weights: Vec<Tensor> = weight_data
        .iter()
        .map(|data| Tensor::from_slice(gpu, w_dims, data).unwrap())
        .collect();
    let run = |weight: &Tensor| {
        conv2d_with(&x, weight, None, &conv, ConvAlgorithm::WinogradF4)
            .unwrap()
            .to_vec()
            .unwrap()
    };
    let first: Vec<Vec<f32>> = weights.iter().map(run).collect();
    let kept = gpu.pool_stats().kept_copy_bytes;
    assert!(kept > 0, "the first filter fits and is kept");
    assert!(
        kept <= BUDGET,
        "{kept} bytes kept, over the budget of {BUDGET}"
    );
    for (layer, (weight, first)) in weights.iter().zip(&first).enumerate() {
        let want = reference::conv2d(&x_data, &weight_data[layer], None, &shapes);
        assert_close(&format!("layer {layer}"), first, &want, 1e-4, 1e-4);
        assert_eq!(&run(weight), first, "layer {layer} run again");
    }
    assert_eq!(
        gpu.pool_stats().kept_copy_bytes,
        kept,
        "the same copies kept"
    );

    weight_data[0] = rng.vec(w_dims.iter().product());
    weights[0].write(&weight_data[0]).unwrap();
    let want = reference::conv2d(&x_data, &weight_data[0], None, &shapes);
    assert_close("layer 0 rewritten", &run(&weights[0]), &want, 1e-4, 1e-4);
    assert!(gpu.pool_stats().kept_copy_bytes <= BUDGET);

    drop(weights);
    gpu.synchronize().unwrap();
    assert_eq!(
        gpu.pool_stats().kept_copy_bytes,
        0,
        "every kept copy went with its weight"
    );
}

/// A buffer released while the batch that reads it is still pending: an upload never lands in
/// it (the upload would run before that read), while a kernel's output may, and does.
#[test]
fn released_buffers_serve_recorded_writes_at_once_and_uploads_after_submission() {
    let _pool = POOL.lock().unwrap();
    let n = 54_321;
    let (values, read_pending) = relu_pending_on_a_released_buffer(n, 76);
    let uploaded = tensor(&[n], &vec![-1.0; n]);
    assert_relu_of(&read_pending, &values);
    assert_eq!(differing(&uploaded.to_vec().unwrap(), &vec![-1.0; n]), 0);

    // A chain of kernels, each output dropped once the next is recorded, all in one batch:
    // two buffers take turns rather than one per step.
    let start = tensor(&[n], &values);
    gpu().synchronize().unwrap();
    let created = gpu().pool_stats().buffers_created;
    let mut value = scale(&start, 1.0).unwrap();
    for _ in 0..8 {
        value = scale(&value, 2.0).unwrap();
    }
    let created_by_chain = gpu().pool_stats().buffers_created - created;
    let want: Vec<f32> = values.iter().map(|v| v * 256.0).collect();
    assert_eq!(differing(&value.to_vec().unwrap(), &want), 0);
    assert!(
        created_by_chain <= 2,
        "{created_by_chain} buffers created for 9 steps that each free the last one's"
    );
}

/// More uploads than the context stages before handing them to the queue (32 MiB), made while
/// a batch that reads a released buffer is pending: the uploads start early, yet none lands in
/// that buffer before the pending read, each holds its own values, and kernels recorded after
/// them read them.
#[test]
fn uploads_handed_to_the_queue_early_keep_their_order() {
    let _pool = POOL.lock().unwrap();
    let (values, read_pending) = relu_pending_on_a_released_buffer(54_321, 77);
    let size = 1 << 20;
    let uploads: Vec<(Vec<f32>, Tensor)> = (0..10)
        .map(|i| {
            let data: Vec<f32> = (0..size).map(|j| (i * size + j) as f32).collect();
            let uploaded = tensor(&[size], &data);
            (data, uploaded)
        })
        .collect();
    let doubled = scale(&uploads[9].1, 2.0).unwrap();
    assert_relu_of(&read_pending, &values);
    for (i, (data, uploaded)) in uploads.iter().enumerate() {
        let wrong = differing(&uploaded.to_vec().unwrap(), data);
        assert_eq!(wrong, 0, "upload {i}: {wrong} of {size} values differ");
    }
    let want: Vec<f32> = uploads[9].0.iter().map(|v| v * 2.0).collect();
    assert_eq!(differing(&doubled.to_vec().unwrap(), &want), 0);
}

/// `n` random values (from `seed`) and their ReLU, recorded and still pending when the
/// buffer it reads is released: what no upload may overwrite before the batch runs.
fn relu_pending_on_a_released_buffer(n: usize, seed: u64) -> (Vec<f32>, Tensor) {
    let values = Rng::new(seed).vec(n);
    let source = tensor(&[n], &values);
    gpu().synchronize().unwrap();
    let read_pending = relu(&source).unwrap();
    drop(source);
    (values, read_pending)
}

/// That `got` holds the ReLU of `values` bit for bit: the pending read saw no later upload.
fn assert_relu_of(got: &Tensor, values: &[f32]) {
    let want: Vec<f32> = values.iter().map(|v| v.max(0.0)).collect();
    let wrong = differing(&got.to_vec().unwrap(), &want);
    assert_eq!(
        wrong,
        0,
        "the pending relu read a later upload at {wrong} of {} places",
        values.len()
    );
}

/// How many values differ (bitwise) between `got` and `want` of the same length.
fn differing(got: &[f32], want: &[f32]) -> usize {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .filter(|(got, want)| got.to_bits() != want.to_bits())
        .count()
}
