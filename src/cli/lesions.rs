//! `gradlens lesions`: the synthetic lesion set written as an ImageFolder with its masks, data
//! to try `train`, `evaluate` and `evaluate-saliency` on without patient images:
//! DIR/{train,val}/{healthy,lesion}/<i>.png and DIR/masks/{train,val}/lesion/<i>.png.

use std::path::Path;

use gradlens::train::SyntheticLesions;
use gradlens::{Error, Result};

pub fn run(out: &Path, count: usize, size: usize, validation: f64, seed: u64) -> Result<()> {
    let data = SyntheticLesions {
        size,
        seed,
        ..SyntheticLesions::default()
    };
    let plane = size * size;
    let train_count = ((1.0 - validation) * count as f64).round() as usize;
    // A thousand at a time: host memory bounded by the chunk, not the set.
    for first in (0..count).step_by(1000) {
        let batch = data.generate(first as u64, 1000.min(count - first));
        for (offset, &label) in batch.labels.iter().enumerate() {
            let i = first + offset;
            let split = if i < train_count { "train" } else { "val" };
            let class = ["healthy", "lesion"][label];
            let pixels: Vec<u8> = batch.images[offset * plane..(offset + 1) * plane]
                .iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect();
            write_gray(&out.join(split).join(class), i, size, &pixels)?;
            if label == 1 {
                let mask: Vec<u8> = batch.masks[offset * plane..(offset + 1) * plane]
                    .iter()
                    .map(|&m| if m > 0.5 { 255 } else { 0 })
                    .collect();
                write_gray(&out.join("masks").join(split).join(class), i, size, &mask)?;
            }
        }
    }
    println!(
        "{count} images of {size}×{size} ({train_count} train, {} val) in {}; lesion masks in {}",
        count - train_count,
        out.display(),
        out.join("masks").display()
    );
    Ok(())
}

/// `<folder>/<i>.png`, 8-bit gray, the folder created.
fn write_gray(folder: &Path, i: usize, size: usize, pixels: &[u8]) -> Result<()> {
    let fail = |message: String| Error::Output {
        path: folder.display().to_string(),
        message,
    };
    std::fs::create_dir_all(folder).map_err(|e| fail(format!("cannot create the folder: {e}")))?;
    let side = size as u32;
    image::save_buffer(
        folder.join(format!("{i}.png")),
        pixels,
        side,
        side,
        image::ExtendedColorType::L8,
    )
    .map_err(|e| fail(format!("cannot write {i}.png: {e}")))
}
