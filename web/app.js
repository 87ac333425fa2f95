// The page's glue: files in, gradlens (wasm) on WebGPU, results drawn. No network requests
// beyond this folder (the demo checkpoint and image sit beside the page).
//
// `?test=m1,m2` loads the demo checkpoint and image, runs each method in turn and leaves
// everything it computed in `window.gradlensTest` for web/e2e/test.mjs; `?big=arch` does the
// same for gradient saliency on a full-size architecture with random weights.

import init, { Session } from "./pkg/gradlens_web.js";

const $ = (id) => document.getElementById(id);
const statusBox = $("status");

function setStatus(text, state = "busy") {
  statusBox.textContent = text;
  statusBox.dataset.state = state;
}

let session = null;
let modelReady = false;
let image = null; // { bytes, name }

async function fetchBytes(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function fileBytes(file) {
  return new Uint8Array(await file.arrayBuffer());
}

function loadWeights(bytes, name) {
  modelReady = false;
  return showModel(JSON.parse(session.loadWeights(bytes, name)), name);
}

function randomWeights(arch) {
  modelReady = false;
  return showModel(JSON.parse(session.randomWeights(arch)), `random ${arch}`);
}

function showModel(model, name) {
  modelReady = true;
  $("model").textContent =
    `${name}: ${model.arch}, ${model.parameters.toLocaleString()} parameters, ` +
    `${model.channels === 1 ? "grayscale" : model.channels + " channels"} ` +
    `${model.input_size}×${model.input_size} input, ` +
    (model.classes.length <= 10 ? `classes: ${model.classes.join(", ")}` : `${model.classes.length} classes`);
  updateRunButton();
  return model;
}

function setImage(bytes, name) {
  // A DICOM file gets its frames to choose from and a window to set (a broken one is refused
  // here, by name).
  const frames = Session.dicomFrames(bytes, name);
  image = { bytes, name, frames };
  lastOverlay = null;
  $("capture").hidden = true;
  $("drop").firstChild.textContent = `${name} — drop another, or `;
  $("dicom-controls").hidden = frames === 0;
  $("frame").replaceChildren(...Array.from({ length: frames }, (_, k) => new Option(`${k + 1} of ${frames}`, k)));
  updateRunButton();
}

// The frame and window the DICOM controls ask for (a blank window: the file's own).
function dicomChoice() {
  const number = (id) => ($(id).value.trim() === "" ? undefined : Number($(id).value));
  return { frame: Number($("frame").value || 0), center: number("window-center"), width: number("window-width") };
}

function updateRunButton() {
  $("run").disabled = !(session && modelReady && image);
}

function drawRgba(canvas, rgba, width, height) {
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
}

function showClasses(summary) {
  const rows = summary.top.map((entry) =>
    `<tr><td>${escapeHtml(entry.name)}</td><td class="num">${(entry.probability * 100).toFixed(2)}%</td></tr>`);
  $("classes").innerHTML = `<tr><th>class</th><th>probability</th></tr>${rows.join("")}`;
}

function showTiming(summary, timestamps) {
  let text = `classified in ${summary.classify_ms.toFixed(1)} ms`;
  if (summary.method) {
    text += `; ${summary.method} for “${summary.class_name}” in ${summary.method_ms.toFixed(1)} ms`;
    if (summary.profiled) text += " (timing each kernel, which serialises them)";
  }
  for (const note of summary.notes ?? []) text += `. ${note}`;
  $("timing").textContent = text;
  if (summary.kernels) {
    const rows = summary.kernels.slice(0, 15).map((k) =>
      `<tr><td><code>${escapeHtml(k.kernel)}</code></td><td>${k.phase}</td><td class="num">${k.calls}</td>` +
      `<td class="num">${k.ms.toFixed(3)}</td><td class="num">${(k.share * 100).toFixed(1)}%</td>` +
      `<td class="num">${k.gflops == null ? "" : k.gflops.toFixed(2)}</td></tr>`);
    $("kernels").innerHTML =
      `<p class="muted">GPU time per kernel of the explanation (timestamp queries; top 15):</p>` +
      `<table><tr><th>kernel</th><th>phase</th><th>calls</th><th>ms</th><th>share</th><th>GFLOP/s</th></tr>${rows.join("")}</table>`;
  } else {
    $("kernels").innerHTML = timestamps
      ? ""
      : `<p class="muted">This browser's adapter offers no timestamp queries, so there is no per-kernel table.</p>`;
  }
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

// The last overlay drawn, for a Secondary Capture of a DICOM image.
let lastOverlay = null;

// Classifies `image`, explains its top class with `method`, and draws everything; a DICOM image
// is read as `dicom` (default: the DICOM controls) says.
async function analyse(method, dicom = dicomChoice()) {
  const timestamps = JSON.parse(session.adapter()).timestamps;
  const result = await session.run(image.bytes, image.name, method, -1, $("profile").checked,
    dicom.frame ?? 0, dicom.center, dicom.width);
  const summary = JSON.parse(result.summary);
  lastOverlay = { rgba: result.overlayRgba, width: result.width, height: result.height, method, summary };
  $("capture").hidden = !(method && image.frames > 0);
  drawRgba($("image-view"), result.imageRgba, result.width, result.height);
  drawRgba($("overlay-view"), result.overlayRgba, result.width, result.height);
  $("overlay-caption").textContent = `${method}, class “${summary.class_name}”`;
  showClasses(summary);
  showTiming(summary, timestamps);
  return { summary, logits: Array.from(result.logits), map: Array.from(result.map),
           width: result.width, height: result.height };
}

// The last overlay as a DICOM Secondary Capture of the DICOM image shown.
function secondaryCapture(anonymise) {
  const { rgba, width, height, method, summary } = lastOverlay;
  return Session.secondaryCapture(image.bytes, image.name, rgba, width, height,
    `gradlens saliency (browser): ${method}, class ${summary.class} (${summary.class_name})`, anonymise);
}

async function runTests(methods) {
  const test = { done: false, error: null, adapter: null, results: {} };
  window.gradlensTest = test;
  try {
    test.adapter = JSON.parse(session.adapter());
    loadWeights(await fetchBytes("demo/lesions.safetensors"), "lesions.safetensors");
    // DICOM files in compressed transfer syntaxes, decoded in the page.
    test.dicom = {};
    for (const name of ["scan_rle.dcm", "scan_jpeg.dcm"]) {
      setImage(await fetchBytes(`demo/${name}`), name);
      test.dicom[name] = (await analyse("gradient")).logits;
    }
    setImage(await fetchBytes("demo/lesion.png"), "lesion.png");
    for (const method of methods) {
      $("method").value = method;
      setStatus(`test: ${method}…`);
      test.results[method] = await analyse(method);
    }
    // DICOM read as --window and --frame read it, and the overlay as a Secondary Capture.
    setImage(await fetchBytes("demo/scan_rle.dcm"), "scan_rle.dcm");
    test.dicomWindow = (await analyse("gradient", { frame: 0, center: 1000, width: 800 })).logits;
    const cine = await fetchBytes("demo/cine.dcm");
    setImage(cine, "cine.dcm");
    test.cineFrames = Session.dicomFrames(cine, "cine.dcm");
    test.cineFrame2 = (await analyse("gradient", { frame: 2 })).logits;
    test.captures = {};
    for (const anonymise of [false, true]) {
      test.captures[anonymise ? "anonymised" : "kept"] = Array.from(secondaryCapture(anonymise));
    }
    // A file that is no image must be refused with a message naming it.
    try {
      await session.run(new Uint8Array([1, 2, 3]), "broken.png", "gradient", -1, false);
      test.brokenImage = "accepted";
    } catch (error) {
      test.brokenImage = String(error?.message ?? error);
    }
    setStatus(`test finished: ${methods.join(", ")}`, "done");
  } catch (error) {
    test.error = String(error?.message ?? error);
    setStatus(test.error, "error");
  }
  test.done = true;
}

// A full-size architecture with random weights explains the demo image (resized to its input):
// the page records the times and whether the map is whole and finite.
async function runBig(arch) {
  const test = { done: false, error: null, adapter: null, results: {} };
  window.gradlensTest = test;
  try {
    test.adapter = JSON.parse(session.adapter());
    test.model = randomWeights(arch);
    setImage(await fetchBytes("demo/lesion.png"), "lesion.png");
    setStatus(`test: ${arch}, gradient…`);
    const result = await analyse("gradient");
    test.results.gradient = {
      summary: result.summary,
      width: result.width,
      height: result.height,
      mapLength: result.map.length,
      mapFinite: result.map.every(Number.isFinite),
      mapNonZero: result.map.filter((v) => v !== 0).length,
      logitsFinite: result.logits.every(Number.isFinite),
    };
    setStatus(`test finished: ${arch}`, "done");
  } catch (error) {
    test.error = String(error?.message ?? error);
    setStatus(test.error, "error");
  }
  test.done = true;
}

async function main() {
  // Offline once loaded (sw.js caches this folder's files).
  navigator.serviceWorker?.register("sw.js").catch(() => {});
  try {
    await init();
    for (const name of Session.methods()) {
      $("method").add(new Option(name, name));
    }
    for (const arch of Session.architectures()) {
      $("random-arch").add(new Option(arch, arch, arch === "resnet50", arch === "resnet50"));
    }
    session = await Session.open();
  } catch (error) {
    setStatus(`gradlens cannot run here: ${error?.message ?? error}`, "error");
    window.gradlensTest = { done: true, error: String(error?.message ?? error), results: {} };
    return;
  }
  const adapter = JSON.parse(session.adapter());
  setStatus(`Ready on ${adapter.adapter} (storage bindings up to ${adapter.max_storage_binding_mib} MiB` +
    `${adapter.timestamps ? ", kernel timestamps" : ""}). Pick weights and an image.`, "ready");

  const wrap = (action) => async (...args) => {
    try {
      await action(...args);
    } catch (error) {
      setStatus(String(error?.message ?? error), "error");
    }
  };
  $("weights-file").addEventListener("change", wrap(async (event) => {
    const file = event.target.files[0];
    if (file) loadWeights(await fileBytes(file), file.name);
  }));
  $("demo-weights").addEventListener("click", wrap(async () => {
    loadWeights(await fetchBytes("demo/lesions.safetensors"), "lesions.safetensors");
  }));
  $("random-weights").addEventListener("click", wrap(async () => {
    setStatus(`building ${$("random-arch").value}…`);
    randomWeights($("random-arch").value);
    setStatus("Ready.", "ready");
  }));
  $("image-file").addEventListener("change", wrap(async (event) => {
    const file = event.target.files[0];
    if (file) setImage(await fileBytes(file), file.name);
  }));
  $("demo-image").addEventListener("click", wrap(async () => {
    setImage(await fetchBytes("demo/lesion.png"), "lesion.png");
  }));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", wrap(async (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) setImage(await fileBytes(file), file.name);
  }));
  $("capture-button").addEventListener("click", wrap(async () => {
    const bytes = secondaryCapture($("anonymise").checked);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([bytes], { type: "application/dicom" }));
    link.download = `${image.name.replace(/\.(dcm|dicom)$/i, "")}_${lastOverlay.method}.dcm`;
    link.click();
    // Revoked once the download has surely started with it.
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  }));
  $("run").addEventListener("click", wrap(async () => {
    const method = $("method").value;
    setStatus(`${method}…`);
    const { summary } = await analyse(method);
    setStatus(`${summary.top[0].name} (${(summary.top[0].probability * 100).toFixed(1)}%)`, "done");
  }));

  const params = new URLSearchParams(location.search);
  if (params.get("test")) await runTests(params.get("test").split(","));
  if (params.get("big")) await runBig(params.get("big"));
}

main();
