//! GPU memory: repeated training passes, and zeros in reused buffers. A test binary of its own:
//! the pool's counters are process-wide, and tests running beside these in the same process
//! would move them; the tests here take `POOL` in turn for the same reason.

mod common;

use std::sync::Mutex;

use common::{Rng, gpu};
use gradlens::Tensor;
use gradlens::autograd::Tape;
use gradlens::models::LesionNet;
use gradlens::nn::{Forward, Mode, ParamStore};

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
