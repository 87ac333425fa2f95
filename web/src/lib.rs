//! gradlens in the browser: the library's models, tape and saliency methods on the user's own
//! GPU through WebGPU, behind a small API for `web/index.html`. Everything here is glue —
//! opening the browser's adapter, passing bytes in and maps out, timing — and every readback
//! is awaited; nothing is computed differently from the native build.

#![cfg(target_arch = "wasm32")]

use gradlens::checkpoint::{self, LoadedModel, ModelInfo, imagenet_classes};
use gradlens::imaging::{self, Planes, Preprocess, saliency_overlay};
use gradlens::models::{ARCHS, ModelConfig, build};
use gradlens::nn::ParamStore;
use gradlens::profiling::kernel_rows;
use gradlens::saliency::{self, Explained, Method, MethodSettings, method_maps, top_probabilities};
use gradlens::weights::WeightsFile;
use gradlens::{Gpu, Tensor};
use serde_json::json;
use wasm_bindgen::prelude::*;

mod fine_tune;

/// The smallest storage binding gradlens is useful with: WebGPU's default (128 MiB) is what
/// every conforming adapter offers; below it, say so instead of failing in a kernel.
const MIN_STORAGE_BINDING: u64 = 128 << 20;

/// A GPU context and, once weights are loaded, a model.
#[wasm_bindgen]
pub struct Session {
    gpu: Gpu,
    model: Option<LoadedModel>,
}

/// One image's classification or explanation, ready for the page.
#[wasm_bindgen]
pub struct Analysis {
    pub(crate) summary: String,
    pub(crate) logits: Vec<f32>,
    pub(crate) map: Vec<f32>,
    pub(crate) image_rgba: Vec<u8>,
    pub(crate) overlay_rgba: Vec<u8>,
    pub(crate) width: usize,
    pub(crate) height: usize,
}

#[wasm_bindgen]
impl Analysis {
    /// JSON: the top classes with probabilities, the class explained, the method's time and,
    /// where the browser offers timestamp queries, a per-kernel table.
    #[wasm_bindgen(getter)]
    pub fn summary(&self) -> String {
        self.summary.clone()
    }

    /// The logits (empty from `FineTune.explain`, which only explains).
    #[wasm_bindgen(getter)]
    pub fn logits(&self) -> Vec<f32> {
        self.logits.clone()
    }

    /// The saliency map [height × width] at the model's input resolution (empty when only
    /// classified).
    #[wasm_bindgen(getter)]
    pub fn map(&self) -> Vec<f32> {
        self.map.clone()
    }

    /// The model's input before normalisation (decoded, resized and cropped by gradlens) as
    /// RGBA pixels.
    #[wasm_bindgen(getter, js_name = imageRgba)]
    pub fn image_rgba(&self) -> Vec<u8> {
        self.image_rgba.clone()
    }

    /// The map over the image as RGBA pixels, coloured as `gradlens saliency --out` colours it.
    #[wasm_bindgen(getter, js_name = overlayRgba)]
    pub fn overlay_rgba(&self) -> Vec<u8> {
        self.overlay_rgba.clone()
    }

    #[wasm_bindgen(getter)]
    pub fn width(&self) -> usize {
        self.width
    }

    #[wasm_bindgen(getter)]
    pub fn height(&self) -> usize {
        self.height
    }
}

#[wasm_bindgen]
impl Session {
    /// Opens the browser's WebGPU adapter with all the limits it offers. Fails with a message
    /// for the page when the browser has no WebGPU, no adapter, or one too small.
    pub async fn open() -> Result<Session, JsError> {
        if !wgpu::util::is_browser_webgpu_supported().await {
            return Err(JsError::new(
                "this browser has no WebGPU (navigator.gpu is missing): use a recent Chrome, \
                 Edge or Safari, or Firefox with WebGPU enabled",
            ));
        }
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
        descriptor.backends = wgpu::Backends::BROWSER_WEBGPU;
        let instance = wgpu::Instance::new(descriptor);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|error| JsError::new(&format!("no WebGPU adapter: {error}")))?;
        let binding = adapter.limits().max_storage_buffer_binding_size;
        if binding < MIN_STORAGE_BINDING {
            return Err(JsError::new(&format!(
                "this GPU's storage buffers are too small for gradlens: {} MiB per binding, \
                 {} MiB needed",
                binding >> 20,
                MIN_STORAGE_BINDING >> 20
            )));
        }
        let gpu = Gpu::open(adapter, false).await.map_err(to_js)?;
        Ok(Session { gpu, model: None })
    }

    /// JSON: the adapter, its backend, the limits that matter to gradlens and whether kernels
    /// can be timed.
    pub fn adapter(&self) -> String {
        let limits = self.gpu.limits();
        json!({
            "adapter": self.gpu.describe(),
            "max_storage_binding_mib": limits.max_storage_buffer_binding_size >> 20,
            "max_buffer_mib": limits.max_buffer_size >> 20,
            "timestamps": self.gpu.features().contains(wgpu::Features::TIMESTAMP_QUERY),
        })
        .to_string()
    }

    /// Loads a safetensors checkpoint (the architecture and classes from its metadata) and
    /// returns JSON describing the model.
    #[wasm_bindgen(js_name = loadWeights)]
    pub fn load_weights(&mut self, bytes: &[u8], name: &str) -> Result<String, JsError> {
        self.model = None;
        let file = WeightsFile::from_bytes(bytes, name).map_err(to_js)?;
        let loaded = checkpoint::load(&self.gpu, &file, None).map_err(to_js)?;
        let description = describe_model(&loaded);
        self.model = Some(loaded);
        Ok(description)
    }

    /// A torchvision architecture with gradlens's seeded random weights, ImageNet-sized (1000
    /// classes, RGB, its usual input size): full-size models and their timing in the browser
    /// without a weights file. Returns JSON as `loadWeights` does.
    #[wasm_bindgen(js_name = randomWeights)]
    pub fn random_weights(&mut self, arch: &str) -> Result<String, JsError> {
        self.model = None;
        let config = ModelConfig::default();
        let mut store = ParamStore::new(&self.gpu);
        let model = build(arch, &mut store, &config).map_err(to_js)?;
        let info = ModelInfo {
            arch: arch.to_string(),
            config,
            class_names: imagenet_classes(),
            preprocess: Preprocess::imagenet(arch),
        };
        let loaded = LoadedModel { info, store, model };
        let description = describe_model(&loaded);
        self.model = Some(loaded);
        Ok(description)
    }

    /// The architectures `randomWeights` builds (torchvision's names).
    pub fn architectures() -> Vec<String> {
        ARCHS.iter().map(|arch| arch.to_string()).collect()
    }

    /// The saliency methods the page offers, by name.
    pub fn methods() -> Vec<String> {
        Method::ALL.iter().map(|m| m.name().to_string()).collect()
    }

    /// Classifies one PNG, JPEG, TIFF or DICOM image and, unless `method` is empty, explains
    /// the top class (or `class` when it is at least 0) with that saliency method. With
    /// `profile`, and where the browser offers timestamp queries, the summary also holds a
    /// per-kernel table. A DICOM image is read at `frame` with the window `window_center`,
    /// `window_width` when both are given (else the file's), as `--frame` and `--window` do.
    #[allow(clippy::too_many_arguments)] // the page's controls, one argument each
    pub async fn run(
        &self,
        image: &[u8],
        name: &str,
        method: &str,
        class: i32,
        profile: bool,
        frame: u32,
        window_center: Option<f64>,
        window_width: Option<f64>,
    ) -> Result<Analysis, JsError> {
        let loaded = self
            .model
            .as_ref()
            .ok_or_else(|| JsError::new("load weights first"))?;
        let explained = Explained {
            model: loaded.model.as_ref(),
            store: &loaded.store,
        };
        let method = match method {
            "" => None,
            name => Some(
                Method::from_name(name)
                    .ok_or_else(|| JsError::new(&format!("no saliency method {name:?}")))?,
            ),
        };
        let info = &loaded.info;
        let window = match (window_center, window_width) {
            (Some(center), Some(width)) if center.is_finite() && width >= 1.0 => {
                Some(imaging::Window { center, width })
            }
            (None, None) => None,
            _ => {
                return Err(JsError::new(
                    "a window is a centre and a width of at least 1, both numbers",
                ));
            }
        };
        let dicom = imaging::DicomOptions {
            window,
            frame: frame as usize,
        };
        let planes =
            imaging::decode_with(image, name, info.preprocess.channels, &dicom).map_err(to_js)?;
        let input = info.preprocess.apply(&planes).map_err(to_js)?;
        let sized = info.preprocess.sized(&planes).map_err(to_js)?;
        let size = info.preprocess.input_size();
        let x = Tensor::from_slice(
            &self.gpu,
            [1, info.preprocess.channels, size, size],
            &input.data,
        )
        .map_err(to_js)?;

        let started = now_ms();
        let logits = saliency::logits(explained, &x).await.map_err(to_js)?.data;
        let classify_ms = now_ms() - started;
        let class = match usize::try_from(class) {
            Ok(class) if class < logits.len() => class,
            Ok(class) => {
                return Err(JsError::new(&format!(
                    "class {class} is out of range: the model has {} classes",
                    logits.len()
                )));
            }
            Err(_) => argmax(&logits),
        };

        let mut summary = json!({
            "top": top_classes(&logits, &info.class_names, 5),
            "class": class,
            "class_name": info.class_names[class],
            "classify_ms": classify_ms,
        });
        let (map, overlay_rgba) = match method {
            None => (Vec::new(), Vec::new()),
            Some(method) => {
                let profiling = profile && self.timestamps();
                if profiling {
                    self.gpu.start_profiling().map_err(to_js)?;
                }
                let started = now_ms();
                let settings = MethodSettings::default();
                let computed = method_maps(explained, &x, &[class], method, &settings).await;
                let elapsed = now_ms() - started;
                // Profiling ends even when the method failed, so the next run can start it.
                if profiling {
                    let profile = self.gpu.finish_profiling().await.map_err(to_js)?;
                    summary["kernels"] = kernel_table(&profile);
                }
                let computed = computed.map_err(to_js)?;
                summary["method"] = json!(method.name());
                summary["method_ms"] = json!(elapsed);
                // Timed kernel by kernel, each in its own pass: slower than a plain run.
                summary["profiled"] = json!(profiling);
                summary["notes"] = json!(computed.notes);
                let map = computed.maps.data;
                let rgba = overlay_rgba(&sized, &map);
                (map, rgba)
            }
        };
        Ok(Analysis {
            summary: summary.to_string(),
            logits,
            map,
            image_rgba: planes_rgba(&sized),
            overlay_rgba,
            width: sized.width,
            height: sized.height,
        })
    }

    /// How many frames a DICOM image holds; 0 for any other image.
    #[wasm_bindgen(js_name = dicomFrames)]
    pub fn dicom_frames(image: &[u8], name: &str) -> Result<u32, JsError> {
        if !imaging::is_dicom(image) {
            return Ok(0);
        }
        Ok(imaging::dicom_frame_count(image, name).map_err(to_js)? as u32)
    }

    /// The overlay (RGBA, `width` × `height`, as `Analysis::overlay_rgba` gives it) as a DICOM
    /// Secondary Capture of the DICOM image `source`: in its study with its patient and study
    /// identifiers, or with `anonymise` without them, as `saliency --secondary-capture` writes.
    #[wasm_bindgen(js_name = secondaryCapture)]
    pub fn secondary_capture(
        source: &[u8],
        name: &str,
        overlay_rgba: &[u8],
        width: usize,
        height: usize,
        description: &str,
        anonymise: bool,
    ) -> Result<Vec<u8>, JsError> {
        let rgb: Vec<u8> = overlay_rgba
            .chunks(4)
            .flat_map(|rgba| [rgba[0], rgba[1], rgba[2]])
            .collect();
        // The time makes each capture's UIDs its own.
        let salt = format!("{name}\0{}", now_ms());
        let derivation = imaging::Derivation {
            description,
            anonymise,
            uid_salt: salt.as_bytes(),
        };
        imaging::secondary_capture(source, name, &rgb, [height, width], &derivation).map_err(to_js)
    }

    fn timestamps(&self) -> bool {
        self.gpu
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }
}

/// JSON: a model's architecture, classes, input and parameter count.
fn describe_model(loaded: &LoadedModel) -> String {
    let info = &loaded.info;
    json!({
        "arch": info.arch,
        "classes": info.class_names,
        "channels": info.preprocess.channels,
        "input_size": info.preprocess.input_size(),
        "parameters": loaded.store.parameter_count(),
    })
    .to_string()
}

pub(crate) fn to_js(error: gradlens::Error) -> JsError {
    JsError::new(&error.to_string())
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

pub(crate) fn argmax(values: &[f32]) -> usize {
    (0..values.len())
        .max_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap_or(0)
}

/// The `count` most probable classes: index, name and softmax probability.
fn top_classes(logits: &[f32], names: &[String], count: usize) -> serde_json::Value {
    top_probabilities(logits, count)
        .into_iter()
        .map(|(class, probability)| {
            json!({ "class": class, "name": names[class], "probability": probability })
        })
        .collect()
}

/// An image in [0, 1] (gray or RGB) as RGBA bytes for a canvas.
pub(crate) fn planes_rgba(image: &Planes) -> Vec<u8> {
    let plane = image.height * image.width;
    let byte = |channel: usize, p: usize| {
        let value = image.data[channel.min(image.channels - 1) * plane + p];
        (value.clamp(0.0, 1.0) * 255.0).round() as u8
    };
    (0..plane)
        .flat_map(|p| [byte(0, p), byte(1, p), byte(2, p), 255])
        .collect()
}

/// `saliency_overlay` with an opaque alpha channel, for a canvas.
pub(crate) fn overlay_rgba(image: &Planes, map: &[f32]) -> Vec<u8> {
    saliency_overlay(image, map)
        .chunks(3)
        .flat_map(|rgb| [rgb[0], rgb[1], rgb[2], 255])
        .collect()
}

/// Per kernel and phase: calls, milliseconds, share of the total, GFLOP/s where it counts FLOPs.
fn kernel_table(profile: &gradlens::gpu::Profile) -> serde_json::Value {
    let total = profile.total_ns().max(1.0);
    kernel_rows(profile)
        .iter()
        .map(|row| {
            json!({
                "kernel": row.kernel,
                "phase": row.phase.name(),
                "calls": row.calls,
                "ms": row.ns / 1e6,
                "share": row.ns / total,
                "gflops": row.gflops_per_s(),
            })
        })
        .collect()
}
