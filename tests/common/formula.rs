//! The weight formula of tools/make_model_fixtures.py, reproduced bit-exactly: fixtures of
//! whole models need no weight files.

use gradlens::Tensor;
use gradlens::nn::ParamStore;

use super::gpu;

/// FNV-1a, 32 bits.
fn fnv1a32(text: &str) -> u32 {
    text.bytes().fold(0x811C_9DC5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// u in [0, 1) for element `i` of the tensor named `name` (SplitMix64's finaliser).
fn uniform(name_hash: u32, i: u64) -> f64 {
    let mut z = i.wrapping_add(u64::from(name_hash) << 32);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The dot product of `values` with sketch vector `k` of parameter `name`: the generator under
/// "sketch<k>.<name>" with value 2u − 1 in f64, as tools/make_model_fixtures.py's `sketch`.
pub fn sketch_product(k: usize, name: &str, values: &[f32]) -> f64 {
    let h = fnv1a32(&format!("sketch{k}.{name}"));
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| (2.0 * uniform(h, i as u64) - 1.0) * f64::from(v))
        .sum()
}

/// The fixture formula's values for one state_dict entry.
pub fn formula(name: &str, dims: &[usize], is_batch_norm: bool) -> Vec<f32> {
    let h = fnv1a32(name);
    let count: usize = dims.iter().product();
    let value = |u: f64| -> f64 {
        if name.ends_with("running_mean") {
            (u - 0.5) * 0.2
        } else if name.ends_with("running_var") {
            0.5 + u
        } else if is_batch_norm && name.ends_with(".weight") {
            0.5 + 0.5 * u
        } else if dims.len() >= 2 {
            let fan_in: usize = dims[1..].iter().product();
            (2.0 * u - 1.0) * (6.0 / fan_in as f64).sqrt()
        } else {
            (u - 0.5) * 0.2
        }
    };
    (0..count as u64)
        .map(|i| value(uniform(h, i)) as f32)
        .collect()
}

/// The formula's values put into every parameter and buffer of `store`.
pub fn fill_with_formula(store: &mut ParamStore) {
    let entries: Vec<(String, Vec<usize>)> = store
        .shapes()
        .map(|(n, d, _)| (n.to_string(), d.to_vec()))
        .collect();
    for (name, dims) in &entries {
        let prefix = name.rsplit_once('.').map_or("", |(p, _)| p);
        let is_batch_norm = store.contains(&format!("{prefix}.running_mean"));
        let values = formula(name, dims, is_batch_norm);
        store
            .set(
                name,
                Tensor::from_slice(gpu(), dims.clone(), &values).unwrap(),
            )
            .unwrap();
    }
}
