//! Archives bigger than one machine: `--shard K/N` keeps the images of one shard of a stable
//! partition, so that N processes (a Slurm array job, a Kubernetes indexed Job) share an
//! archive with no coordinator; `--jsonl FILE` appends one JSON line per finished image and,
//! on a restart, skips the images the file already holds, so a killed shard resumes without
//! redoing or losing an image.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use gradlens::{Error, Result};

use super::model::Source;

/// Shard `index` of `count` (0-based, as SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// `--shard K/N`.
pub fn parse_shard(text: &str) -> std::result::Result<Shard, String> {
    let invalid = || format!("{text:?} is not K/N with 0 ≤ K < N (e.g. 3/16)");
    let (index, count) = text.split_once('/').ok_or_else(invalid)?;
    let (index, count) = (
        index.trim().parse::<usize>().map_err(|_| invalid())?,
        count.trim().parse::<usize>().map_err(|_| invalid())?,
    );
    if count == 0 || index >= count {
        return Err(invalid());
    }
    Ok(Shard { index, count })
}

impl Shard {
    /// Whether the image with partition key `key` belongs to this shard: FNV-1a of the key
    /// modulo the count, the same on every machine and in every run.
    pub fn holds(&self, key: &str) -> bool {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in key.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash % self.count as u64 == self.index as u64
    }
}

/// The images of `shard` (all without one) among `images`, each (path, key): the key is the
/// path below the folder named on the command line, or a file's own name, so that an archive
/// mounted at different places on different machines splits the same way.
pub fn select(images: Vec<Source>, shard: Option<Shard>) -> Vec<Source> {
    images
        .into_iter()
        .filter(|source| shard.is_none_or(|shard| shard.holds(&source.key)))
        .collect()
}

/// A JSON-lines file of finished images, appended to line by line.
pub struct JsonLines {
    path: PathBuf,
    file: std::fs::File,
    done: HashSet<String>,
}

impl JsonLines {
    /// Opens (or creates) the file and reads which images it holds (each line's "key", the
    /// partition key, so that a restart with the archive mounted elsewhere still matches). A
    /// last line without its newline is what a killed process left mid-write: it is cut off,
    /// and its image done again.
    pub fn open(path: &Path) -> Result<Self> {
        let fail = |message: String| Error::Output {
            path: path.display().to_string(),
            message,
        };
        let text = match std::fs::read(path) {
            Ok(bytes) => {
                String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".to_string()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(fail(format!("cannot read: {e}"))),
        };
        let complete = text.rfind('\n').map_or(0, |end| end + 1);
        let mut done = HashSet::new();
        for (number, line) in text[..complete].lines().enumerate() {
            let value: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| fail(format!("line {} is not JSON: {e}", number + 1)))?;
            let key = value["key"]
                .as_str()
                .ok_or_else(|| fail(format!("line {} names no \"key\"", number + 1)))?;
            done.insert(key.to_string());
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| fail(format!("cannot open for appending: {e}")))?;
        if complete < text.len() {
            file.set_len(complete as u64)
                .map_err(|e| fail(format!("cannot cut off the unfinished last line: {e}")))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            done,
        })
    }

    /// Whether a line for the image of partition key `key` is already there.
    pub fn holds(&self, key: &str) -> bool {
        self.done.contains(key)
    }

    /// Appends `line` with the image's partition key `key` added, and syncs it to disk before
    /// returning: once it returns, a kill cannot lose the image.
    pub fn append(&mut self, key: &str, line: &serde_json::Value) -> Result<()> {
        let mut line = line.clone();
        line["key"] = serde_json::Value::from(key);
        let mut text = serde_json::to_string(&line).expect("a JSON value serialises");
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::Output {
                path: self.path.display().to_string(),
                message: format!("cannot append: {e}"),
            })?;
        self.done.insert(key.to_string());
        Ok(())
    }
}
