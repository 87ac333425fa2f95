//! Per-adapter, per-shape choice of the subgroup matmul's tile, tuned once and kept on disk.
//!
//! `MatmulVariant::Auto` runs the subgroup kernel with [`SubgroupTile::DEFAULT`] unless this
//! adapter's tuning file names a faster tile for the product's shape class (M, N and K each
//! rounded up to a power of two). Tuning is explicit — `gradlens bench --tune` times every tile
//! on the shapes a model uses, with GPU timestamps, and writes the winners — so no process pays
//! for tuning it did not ask for; every later process only reads the file.
//!
//! The file: `$GRADLENS_TUNING_FILE`, else `$XDG_CACHE_HOME/gradlens/tuning.json`, else
//! `~/.cache/gradlens/tuning.json`; JSON `{ adapter: { "MxNxK": [row_groups, column_vecs] } }`.
//! An empty `GRADLENS_TUNING_FILE` turns tuned tiles off (the defaults everywhere).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

use super::matmul::{MatmulOptions, SubgroupTile, auto_subgroup_variant, matmul};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

/// Every tile the subgroup kernel accepts.
pub const SUBGROUP_TILES: [SubgroupTile; 6] = [
    SubgroupTile {
        row_groups: 1,
        column_vecs: 1,
    },
    SubgroupTile {
        row_groups: 2,
        column_vecs: 1,
    },
    SubgroupTile {
        row_groups: 4,
        column_vecs: 1,
    },
    SubgroupTile {
        row_groups: 1,
        column_vecs: 2,
    },
    SubgroupTile {
        row_groups: 2,
        column_vecs: 2,
    },
    SubgroupTile {
        row_groups: 4,
        column_vecs: 2,
    },
];

/// A product's shape class: each of M, N, K rounded up to a power of two.
fn shape_class(m: usize, n: usize, k: usize) -> String {
    let up = |d: usize| d.max(1).next_power_of_two();
    format!("{}x{}x{}", up(m), up(n), up(k))
}

/// The tuned tiles of the adapters seen in this process, by adapter, then shape class; and
/// the shapes recorded while recording is on.
#[derive(Default)]
struct State {
    tiles: HashMap<String, HashMap<String, SubgroupTile>>,
    recorded: Option<Vec<[usize; 3]>>,
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(Mutex::default)
}

/// The adapter as the tuning file keys it: name, driver and backend.
fn adapter_key(gpu: &Gpu) -> String {
    let info = gpu.adapter_info();
    format!(
        "{} | {} {} | {:?}",
        info.name, info.driver, info.driver_info, info.backend
    )
}

fn tuning_file() -> Option<PathBuf> {
    tuning_file_from(|name| std::env::var_os(name))
}

/// `tuning_file` with the environment given (the unit test's).
fn tuning_file_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    if let Some(path) = var("GRADLENS_TUNING_FILE") {
        return (!path.is_empty()).then(|| PathBuf::from(path));
    }
    let cache = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("gradlens").join("tuning.json"))
}

/// The whole file, or an empty object when there is none (or it cannot be parsed: a damaged
/// cache only costs the defaults).
fn read_file() -> Value {
    tuning_file()
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

/// This adapter's tuned tiles from the file, parsed once per process.
fn tiles_for<'a>(state: &'a mut State, gpu: &Gpu) -> &'a mut HashMap<String, SubgroupTile> {
    let key = adapter_key(gpu);
    state.tiles.entry(key.clone()).or_insert_with(|| {
        let file = read_file();
        let Some(entries) = file.get(&key).and_then(Value::as_object) else {
            return HashMap::new();
        };
        entries
            .iter()
            .filter_map(|(class, tile)| {
                let [rows, cols] = [tile.get(0)?.as_u64()?, tile.get(1)?.as_u64()?];
                let tile = SubgroupTile {
                    row_groups: u32::try_from(rows).ok()?,
                    column_vecs: u32::try_from(cols).ok()?,
                };
                SUBGROUP_TILES
                    .contains(&tile)
                    .then(|| (class.clone(), tile))
            })
            .collect()
    })
}

/// The subgroup tile for an M × N × K product on this adapter (recording the shape while
/// recording is on).
pub(crate) fn subgroup_tile(gpu: &Gpu, m: usize, n: usize, k: usize) -> SubgroupTile {
    let mut state = state().lock().expect("tuning lock");
    if let Some(recorded) = state.recorded.as_mut() {
        recorded.push([m, n, k]);
    }
    tiles_for(&mut state, gpu)
        .get(&shape_class(m, n, k))
        .copied()
        .unwrap_or(SubgroupTile::DEFAULT)
}

/// Starts recording the shapes of the subgroup matmuls `Auto` runs.
pub fn record_shapes() {
    state().lock().expect("tuning lock").recorded = Some(Vec::new());
}

/// Stops recording and returns the distinct shapes seen, first seen first.
pub fn recorded_shapes() -> Vec<[usize; 3]> {
    let recorded = state().lock().expect("tuning lock").recorded.take();
    let mut distinct = Vec::new();
    for shape in recorded.unwrap_or_default() {
        if !distinct.contains(&shape) {
            distinct.push(shape);
        }
    }
    distinct
}

/// One shape class's tuning: each tile's best time, and the winner.
pub struct Tuned {
    pub shape: [usize; 3],
    pub class: String,
    /// (tile, milliseconds) for every tile, in `SUBGROUP_TILES` order.
    pub times: Vec<(SubgroupTile, f64)>,
    pub best: SubgroupTile,
}

/// Times every subgroup tile on each shape (one warm-up, then the best of `repeats` runs,
/// each timed with the profiler), keeps the fastest per shape class for this adapter, and
/// writes the tuning file (atomically). Shapes of one class are tuned once, on the first.
pub fn tune(gpu: &Gpu, shapes: &[[usize; 3]], repeats: usize) -> Result<Vec<Tuned>> {
    let mut results = Vec::new();
    let mut classes = Vec::new();
    for &[m, n, k] in shapes {
        let class = shape_class(m, n, k);
        if classes.contains(&class) {
            continue;
        }
        classes.push(class.clone());
        let a = Tensor::full(gpu, [m, k], 0.5)?;
        let b = Tensor::full(gpu, [k, n], 0.25)?;
        let mut times = Vec::new();
        for tile in SUBGROUP_TILES {
            // The variant Auto will run: operands from textures where they fit (the copies
            // into them cost every tile alike).
            let options = MatmulOptions {
                variant: auto_subgroup_variant(gpu, [m, n, k], tile),
                ..MatmulOptions::default()
            };
            matmul(&a, &b, options)?;
            let mut best = f64::INFINITY;
            for _ in 0..repeats.max(1) {
                gpu.start_profiling()?;
                matmul(&a, &b, options)?;
                let profile = pollster::block_on(gpu.finish_profiling())?;
                best = best.min(profile.total_ns() / 1e6);
            }
            times.push((tile, best));
        }
        let best = times
            .iter()
            .min_by(|x, y| x.1.total_cmp(&y.1))
            .map(|&(tile, _)| tile)
            .unwrap_or(SubgroupTile::DEFAULT);
        results.push(Tuned {
            shape: [m, n, k],
            class,
            times,
            best,
        });
    }
    let mut state = state().lock().expect("tuning lock");
    let tiles = tiles_for(&mut state, gpu);
    for tuned in &results {
        tiles.insert(tuned.class.clone(), tuned.best);
    }
    let ours: BTreeMap<&String, [u32; 2]> = tiles
        .iter()
        .map(|(class, tile)| (class, [tile.row_groups, tile.column_vecs]))
        .collect();
    let mut file = read_file();
    file[adapter_key(gpu)] = json!(ours);
    write_file(&file)?;
    Ok(results)
}

fn write_file(file: &Value) -> Result<()> {
    let Some(path) = tuning_file() else {
        return Err(Error::invalid(
            "tune",
            "no place for the tuning file: set GRADLENS_TUNING_FILE, XDG_CACHE_HOME or HOME",
        ));
    };
    let fail = |message: String| Error::Output {
        path: path.display().to_string(),
        message,
    };
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)
            .map_err(|e| fail(format!("cannot create its folder: {e}")))?;
    }
    let text = serde_json::to_string_pretty(file).expect("JSON values serialise");
    crate::weights::write_atomically(&path, text.as_bytes())
        .map_err(|e| fail(format!("cannot write the tuning file: {e}")))
}

/// Where the tuning file is read from and written to.
pub fn tuning_file_path() -> Option<PathBuf> {
    tuning_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GRADLENS_TUNING_FILE, else $XDG_CACHE_HOME/gradlens/tuning.json, else
    /// ~/.cache/gradlens/tuning.json; an empty GRADLENS_TUNING_FILE means no file.
    #[test]
    fn the_tuning_file_follows_the_environment() {
        let path = |vars: &[(&str, &str)]| {
            tuning_file_from(|name| {
                vars.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value.into())
            })
        };
        let all = [
            ("GRADLENS_TUNING_FILE", "/t/file.json"),
            ("XDG_CACHE_HOME", "/xdg"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(path(&all), Some(PathBuf::from("/t/file.json")));
        assert_eq!(
            path(&all[1..]),
            Some(PathBuf::from("/xdg/gradlens/tuning.json"))
        );
        assert_eq!(
            path(&all[2..]),
            Some(PathBuf::from("/home/u/.cache/gradlens/tuning.json"))
        );
        assert_eq!(path(&[("GRADLENS_TUNING_FILE", ""), all[1]]), None);
        assert_eq!(path(&[]), None);
    }
}
