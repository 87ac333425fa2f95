//! References for shaders/softmax.wgsl (over the last axis, rows of `cols` values).

pub fn softmax(x: &[f32], cols: usize) -> Vec<f32> {
    x.chunks(cols)
        .flat_map(|row| {
            let max = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let sum: f64 = row.iter().map(|&v| (f64::from(v) - max).exp()).sum();
            row.iter()
                .map(move |&v| ((f64::from(v) - max).exp() / sum) as f32)
        })
        .collect()
}

pub fn log_softmax(x: &[f32], cols: usize) -> Vec<f32> {
    x.chunks(cols)
        .flat_map(|row| {
            let max = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let log_sum = row
                .iter()
                .map(|&v| (f64::from(v) - max).exp())
                .sum::<f64>()
                .ln();
            row.iter()
                .map(move |&v| (f64::from(v) - max - log_sum) as f32)
        })
        .collect()
}
