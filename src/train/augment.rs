//! Host-side augmentation of image batches [N, C, H, W]. None of these moves a lesion out of
//! the image or changes a label: flips and quarter turns are lossless, crops shift by at most
//! an eighth of the side with mirrored borders, intensity changes are mild.

use crate::nn::SplitMix64;

/// One random augmentation of a training batch. The command line (`--augment`) and the browser
/// page choose from these, by these names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
pub enum Augmentation {
    /// Random left-right and up-down flips.
    Flip,
    /// Random quarter turns (square images).
    Rotate,
    /// Random shifts of up to an eighth of the side, borders mirrored.
    Crop,
    /// Contrast and brightness within ±10%.
    Intensity,
}

impl Augmentation {
    pub const ALL: [Augmentation; 4] = [
        Augmentation::Flip,
        Augmentation::Rotate,
        Augmentation::Crop,
        Augmentation::Intensity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Augmentation::Flip => "flip",
            Augmentation::Rotate => "rotate",
            Augmentation::Crop => "crop",
            Augmentation::Intensity => "intensity",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The augmented batch; every random choice comes from `rng`.
    pub fn apply(self, images: &[f32], dims: [usize; 4], rng: &mut SplitMix64) -> Vec<f32> {
        match self {
            Augmentation::Flip => random_flips(images, dims, rng),
            Augmentation::Rotate => random_quarter_turns(images, dims, rng),
            Augmentation::Crop => random_shift(images, dims, rng),
            Augmentation::Intensity => random_intensity(images, dims, rng),
        }
    }
}

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

/// Each image independently mirrored left-right and/or upside down, each with probability ½.
pub fn random_flips(images: &[f32], dims: [usize; 4], rng: &mut SplitMix64) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let size = c * h * w;
    let mut out = Vec::with_capacity(images.len());
    for b in 0..n {
        let image = &images[b * size..(b + 1) * size];
        out.extend(flip(
            image,
            [1, c, h, w],
            rng.uniform() < 0.5,
            rng.uniform() < 0.5,
        ));
    }
    out
}

/// Each image turned by its own random multiple of 90° (square images).
pub fn random_quarter_turns(images: &[f32], dims: [usize; 4], rng: &mut SplitMix64) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let size = c * h * w;
    let mut out = Vec::with_capacity(images.len());
    for b in 0..n {
        let image = &images[b * size..(b + 1) * size];
        out.extend(rotate_quarter_turns(image, [1, c, h, w], rng.below(4)));
    }
    out
}

/// The flips of epoch `epoch` in a cycle of four (none, left-right, upside down, both): each
/// image is seen in all four orientations over four epochs.
pub fn flip_for_epoch(images: &[f32], dims: [usize; 4], epoch: usize) -> Vec<f32> {
    flip(images, dims, epoch & 1 == 1, epoch & 2 == 2)
}

/// Each image turned by `quarter_turns` × 90° clockwise (square images only; others are
/// returned unchanged).
pub fn rotate_quarter_turns(images: &[f32], dims: [usize; 4], quarter_turns: usize) -> Vec<f32> {
    let [_, _, h, w] = dims;
    if h != w || quarter_turns.is_multiple_of(4) {
        return images.to_vec();
    }
    let mut out = images.to_vec();
    for (plane, source) in out.chunks_mut(h * w).zip(images.chunks(h * w)) {
        for y in 0..h {
            for x in 0..w {
                let (sy, sx) = match quarter_turns % 4 {
                    1 => (h - 1 - x, y),
                    2 => (h - 1 - y, w - 1 - x),
                    _ => (x, w - 1 - y),
                };
                plane[y * w + x] = source[sy * w + sx];
            }
        }
    }
    out
}

/// Each image shifted by a random offset of up to an eighth of its side in each axis, the
/// uncovered border mirrored: a random crop of the reflect-padded image at the same size.
pub fn random_shift(images: &[f32], dims: [usize; 4], rng: &mut SplitMix64) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let mut out = images.to_vec();
    let reflect = |i: isize, size: usize| -> usize {
        let period = 2 * size as isize;
        let m = i.rem_euclid(period);
        (if m < size as isize { m } else { period - 1 - m }) as usize
    };
    for b in 0..n {
        let (ry, rx) = ((h / 8) as isize, (w / 8) as isize);
        let dy = rng.below(2 * ry as usize + 1) as isize - ry;
        let dx = rng.below(2 * rx as usize + 1) as isize - rx;
        for ch in 0..c {
            let base = (b * c + ch) * h * w;
            for y in 0..h {
                for x in 0..w {
                    let sy = reflect(y as isize + dy, h);
                    let sx = reflect(x as isize + dx, w);
                    out[base + y * w + x] = images[base + sy * w + sx];
                }
            }
        }
    }
    out
}

/// Each image's contrast and brightness changed by up to ±10%: v · (1 + a) + b with a, b
/// uniform in [−0.1, 0.1] (in the units of the values given: normalised images shift by up to
/// a tenth of a standard deviation).
pub fn random_intensity(images: &[f32], dims: [usize; 4], rng: &mut SplitMix64) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let size = c * h * w;
    let mut out = images.to_vec();
    for b in 0..n {
        let (gain, offset) = (1.0 + rng.uniform_symmetric(0.1), rng.uniform_symmetric(0.1));
        for v in &mut out[b * size..(b + 1) * size] {
            *v = *v * gain + offset;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarter_turns_compose_and_shifts_keep_values() {
        let image: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let dims = [1, 1, 3, 3];
        assert_eq!(
            rotate_quarter_turns(&image, dims, 1),
            [6.0, 3.0, 0.0, 7.0, 4.0, 1.0, 8.0, 5.0, 2.0]
        );
        let twice = rotate_quarter_turns(&rotate_quarter_turns(&image, dims, 1), dims, 1);
        assert_eq!(twice, rotate_quarter_turns(&image, dims, 2));
        assert_eq!(rotate_quarter_turns(&twice, dims, 2), image);
        let big: Vec<f32> = (0..64).map(|v| v as f32).collect();
        let shifted = random_shift(&big, [1, 1, 8, 8], &mut SplitMix64::new(1));
        assert!(
            shifted.iter().all(|v| big.contains(v)),
            "a shift only moves values"
        );
    }
}
