//! An ImageFolder in a zip archive (dropped on the browser page): the names and bytes of its
//! image entries (those `image_folder::list` takes), read with the zip crate. Sizes are capped as they are read, so an entry that
//! lies about its size (a zip bomb) is stopped at the cap.

use std::io::{Cursor, Read};

use super::image_folder::is_listed_image;
use crate::error::{Error, Result};
use crate::imaging::MAX_FILE_BYTES;

/// The most bytes all of an archive's images may take once inflated: what a browser tab can
/// hold beside the model.
pub const MAX_INFLATED_BYTES: u64 = 2 << 30;

/// (path, bytes) of every entry of the zip `bytes` that `image_folder::list` would take for an
/// image (macOS's `__MACOSX` copies are not even inflated), in the archive's order. `name` names the archive in errors.
pub fn image_entries(bytes: &[u8], name: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let fail = |message: String| Error::Image {
        path: name.to_string(),
        message,
    };
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|error| fail(format!("not a readable zip archive: {error}")))?;
    let mut entries = Vec::new();
    let mut inflated = 0u64;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|error| fail(format!("entry {index}: {error}")))?;
        let path = entry.name().to_string();
        if entry.is_dir() || !is_listed_image(&path) {
            continue;
        }
        let cap = MAX_FILE_BYTES.min(MAX_INFLATED_BYTES - inflated);
        let mut data = Vec::new();
        (&mut entry)
            .take(cap + 1)
            .read_to_end(&mut data)
            .map_err(|error| fail(format!("{path}: {error}")))?;
        if data.len() as u64 > cap {
            return Err(fail(format!(
                "{path} inflates beyond {} MiB (at most {} MiB per image and {} MiB in all)",
                cap >> 20,
                MAX_FILE_BYTES >> 20,
                MAX_INFLATED_BYTES >> 20
            )));
        }
        inflated += data.len() as u64;
        entries.push((path, data));
    }
    Ok(entries)
}
