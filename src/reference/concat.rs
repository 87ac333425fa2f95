//! References for shaders/concat.wgsl: torch.cat(dim=1) and its backward on NCHW data.

/// Concatenates `parts` (each NCHW data with its channel count) along channels, for `batch`
/// samples of `plane` = H·W values per channel.
pub fn concat_channels<T: Copy>(parts: &[(&[T], usize)], batch: usize, plane: usize) -> Vec<T> {
    let mut out = Vec::new();
    for n in 0..batch {
        for &(data, channels) in parts {
            out.extend_from_slice(&data[n * channels * plane..(n + 1) * channels * plane]);
        }
    }
    out
}

/// The backward of `concat_channels`: `data` (with `channels.sum()` channels) split into parts
/// of `channels` each.
pub fn split_channels<T: Copy>(
    data: &[T],
    channels: &[usize],
    batch: usize,
    plane: usize,
) -> Vec<Vec<T>> {
    let total: usize = channels.iter().sum();
    let mut first = 0;
    channels
        .iter()
        .map(|&count| {
            let part = (0..batch)
                .flat_map(|n| {
                    let start = (n * total + first) * plane;
                    data[start..start + count * plane].iter().copied()
                })
                .collect();
            first += count;
            part
        })
        .collect()
}
