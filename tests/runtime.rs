//! The runtime itself: pool reuse, poisoning, batching, pipeline caching, error reporting.

mod common;

use common::gpu;
use gradlens::kernels::{elementwise, matmul};
use gradlens::{Error, Tensor};

#[test]
fn poisoned_allocations_read_back_as_nan() {
    let t = Tensor::empty(gpu(), [3, 7]).unwrap();
    assert!(t.to_vec().unwrap().iter().all(|v| v.is_nan()));
}

#[test]
fn upload_and_download_round_trip_exactly() {
    let data: Vec<f32> = (0..1001).map(|i| (i as f32 * 0.37).sin() * 1e3).collect();
    let t = Tensor::from_slice(gpu(), [7, 11, 13], &data).unwrap();
    assert_eq!(t.to_vec().unwrap(), data);
    let fresh: Vec<f32> = data.iter().map(|v| -v).collect();
    t.write(&fresh).unwrap();
    assert_eq!(t.to_vec().unwrap(), fresh);
}

#[test]
fn wrong_data_lengths_name_the_shape() {
    let error = Tensor::from_slice(gpu(), [2, 3], &[1.0; 5])
        .unwrap_err()
        .to_string();
    assert!(error.contains("[2, 3]") && error.contains('5'), "{error}");
    let t = Tensor::zeros(gpu(), [4]).unwrap();
    assert!(matches!(
        t.write(&[1.0; 3]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(t.reshape([3]), Err(Error::ShapeMismatch { .. })));
}

/// A steady loop (same shapes every step) allocates nothing new once warm. On a
/// context of its own: the other tests' allocations on the shared one (hundreds, from the
/// recording test beside it) would count too.
#[test]
fn the_pool_reuses_buffers_in_a_steady_loop() {
    let gpu = common::private_gpu();
    let ones = vec![1.0f32; 4096];
    let step = || {
        let a = Tensor::from_slice(&gpu, [64, 64], &ones).unwrap();
        let b = elementwise::relu(&a).unwrap();
        let c = matmul::matmul(&a, &b, Default::default()).unwrap();
        let d = elementwise::add(&c, &a).unwrap();
        d.to_vec().unwrap()
    };
    // Two warm-up steps: the second still allocates a few buffers the first held in flight.
    for _ in 0..2 {
        assert_eq!(step()[0], 65.0);
    }
    let created_before = gpu.pool_stats().buffers_created;
    for _ in 0..20 {
        assert_eq!(step()[0], 65.0);
    }
    let created = gpu.pool_stats().buffers_created - created_before;
    assert_eq!(
        created, 0,
        "{created} buffers created in 20 identical steps"
    );
}

#[test]
fn recording_does_not_wait_for_the_gpu() {
    // Hundreds of dispatches are recorded before a single readback; the result must still
    // reflect every one of them in order.
    let mut t = Tensor::full(gpu(), [1000], 1.0).unwrap();
    for _ in 0..700 {
        t = elementwise::scale(&t, 1.001).unwrap();
    }
    let want = 1.001f32.powi(700);
    let got = t.to_vec().unwrap();
    assert!(
        (got[999] - want).abs() < want * 1e-4,
        "{} vs {want}",
        got[999]
    );
}

#[test]
fn pipelines_are_built_once_per_kernel() {
    let a = Tensor::full(gpu(), [10], 2.0).unwrap();
    elementwise::mul(&a, &a).unwrap().to_vec().unwrap();
    let count = gpu().pipeline_count();
    for _ in 0..5 {
        elementwise::mul(&a, &a).unwrap();
    }
    gpu().synchronize().unwrap();
    // Other tests may add their own pipelines concurrently, but never five of `mul`.
    assert!(gpu().pipeline_count() < count + 5);
}

#[test]
fn oversized_bindings_are_refused_or_split_before_dispatch() {
    let limit = gpu().limits().max_storage_buffer_binding_size;
    let elements = (limit / 4 + 1) as usize;
    if (elements as u64) * 4 > gpu().limits().max_buffer_size {
        return; // this adapter's buffers cannot exceed its binding limit
    }
    let values: Vec<f32> = (0..elements).map(|i| (i % 7) as f32 - 3.0).collect();
    let big = Tensor::from_slice(gpu(), [1, elements], &values).unwrap();
    // A softmax binds its whole row at once: refused, naming the kernel, shape and sizes.
    let error = gradlens::kernels::softmax::softmax(&big).unwrap_err();
    assert!(matches!(error, Error::BindingTooLarge { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("softmax::softmax"), "{message}");
    assert!(
        message.contains(&format!("shape [1, {elements}]")),
        "{message}"
    );
    assert!(message.contains(&(elements * 4).to_string()) && message.contains(&limit.to_string()));
    // An elementwise pass runs piece by piece instead, every element included.
    let relu = elementwise::relu(&big).unwrap().to_vec().unwrap();
    let want: Vec<f32> = values.iter().map(|v| v.max(0.0)).collect();
    assert!(relu == want, "relu over binding-sized pieces");
}

/// A lost device ends every later call with an error, never a panic or a hang.
#[test]
fn a_lost_device_is_an_error_not_a_panic() {
    let gpu = gradlens::Gpu::new().unwrap();
    let x = Tensor::from_slice(&gpu, [4], &[1.0, -2.0, 3.0, -4.0]).unwrap();
    assert_eq!(
        elementwise::relu(&x).unwrap().to_vec().unwrap(),
        [1.0, 0.0, 3.0, 0.0]
    );
    gpu.destroy_device();
    let failed = elementwise::relu(&x).and_then(|y| y.to_vec());
    let error = failed.unwrap_err();
    assert!(matches!(error, Error::DeviceLost { .. }), "{error}");
    assert!(Tensor::zeros(&gpu, [8]).and_then(|t| t.to_vec()).is_err());
    assert!(gpu.synchronize().is_err());
}
