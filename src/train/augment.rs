//! Host-side augmentation of image batches [N, C, H, W] (labels and lesions are unchanged by
//! these; masks [N, H, W] can be flipped alike with C = 1).

/// Mirrors every image left-right and/or upside down.
pub fn flip(images: &[f32], dims: [usize; 4], horizontal: bool, vertical: bool) -> Vec<f32> {
    let [_, _, h, w] = dims;
    let mut out = images.to_vec();
    for (plane, source) in out.chunks_mut(h * w).zip(images.chunks(h * w)) {
        for y in 0..h {
            let sy = if vertical { h - 1 - y } else { y };
            for x in 0..w {
                let sx = if horizontal { w - 1 - x } else { x };
                plane[y * w + x] = source[sy * w + sx];
            }
        }
    }
    out
}

/// The flips of epoch `epoch` in a cycle of four (none, left-right, upside down, both): each
/// image is seen in all four orientations over four epochs.
pub fn flip_for_epoch(images: &[f32], dims: [usize; 4], epoch: usize) -> Vec<f32> {
    flip(images, dims, epoch & 1 == 1, epoch & 2 == 2)
}
