// The fine-tuning page's glue: files in, the worker (train_worker.js) trains on WebGPU, results
// drawn. The page's state is mirrored in `window.gradlensTrain` for web/e2e/test.mjs, which
// drives the page through its own controls.

const $ = (id) => document.getElementById(id);
const MISTAKES_EXPLAINED = 8;
const AUGMENTATIONS = ["flip", "rotate", "crop", "intensity"];

const view = {
  run: 0, ready: false, adapter: null, dataset: null, model: null, fit: null, state: "idle", steps: [],
  evaluations: [], explanations: [], exportedBytes: null, logits: null, errors: [], notices: [],
};
window.gradlensTrain = view;

function setStatus(text, state = "busy") {
  $("status").textContent = text;
  $("status").dataset.state = state;
}

function notice(text) {
  view.notices.push(text);
  $("notice").textContent = text;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function drawRgba(canvas, rgba, width, height) {
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
}

const worker = new Worker("train_worker.js", { type: "module" });
const send = (message, transfer = []) => worker.postMessage(message, transfer);

function updateButtons() {
  const state = view.state;
  const busy = ["starting", "running", "pausing", "cancelling", "paused"].includes(state);
  $("start").disabled = !(view.ready && view.dataset && !busy);
  $("pause").disabled = state !== "running";
  $("resume").disabled = !["paused", "pausing"].includes(state);
  $("cancel").disabled = !["running", "pausing", "paused"].includes(state);
  $("export").disabled = !(view.model && ["paused", "finished", "cancelled", "failed"].includes(state));
  // New data waits for the run to end.
  for (const id of ["data-folder", "data-zip"]) $(id).disabled = busy;
}

function showDataset({ summary, thumbnails }) {
  view.dataset = summary;
  const rows = summary.classes.map((name, label) =>
    `<tr><td>${escapeHtml(name)}</td><td class="num">${summary.counts[label]}</td><td><div class="thumbs" id="thumbs-${label}"></div></td></tr>`);
  $("dataset").innerHTML = `${summary.images} images in ${summary.classes.length} classes` +
    (summary.presplit ? " (split into train/ and val/ already)" : "") +
    `<table><tr><th>class</th><th>images</th><th>first images</th></tr>${rows.join("")}</table>`;
  for (const { label, rgba, side } of thumbnails) {
    const canvas = document.createElement("canvas");
    drawRgba(canvas, rgba, side, side);
    $(`thumbs-${label}`).append(canvas);
  }
  setStatus(`${summary.images} images of ${summary.classes.length} classes read. Choose a model and train.`, "ready");
  updateButtons();
}

// ---- the live plot and progress ------------------------------------------------------------

function drawPlot() {
  const canvas = $("plot");
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  const total = view.steps.at(-1)?.report.total_steps ?? 1;
  const maxLoss = Math.max(1e-6, ...view.steps.map((s) => s.report.loss));
  const x = (step) => 30 + (width - 40) * (step / total);
  context.strokeStyle = "#ccc";
  context.strokeRect(30, 10, width - 40, height - 30);
  context.fillStyle = "#555";
  context.font = "11px system-ui";
  context.fillText(maxLoss.toFixed(2), 0, 18);
  context.fillText("0", 18, height - 20);
  context.fillText(`${total} steps`, width - 60, height - 5);
  context.strokeStyle = "#1f6fd1";
  context.beginPath();
  view.steps.forEach((s, i) => {
    const y = 10 + (height - 30) * (1 - s.report.loss / maxLoss);
    i === 0 ? context.moveTo(x(s.report.steps_done), y) : context.lineTo(x(s.report.steps_done), y);
  });
  context.stroke();
  context.fillStyle = "#e07b00";
  const stepsPerEpoch = total / Math.max(1, Number($("epochs").value));
  for (const { epoch, evaluation } of view.evaluations) {
    const y = 10 + (height - 30) * (1 - evaluation.accuracy);
    context.beginPath();
    context.arc(x(epoch * stepsPerEpoch), y, 4, 0, 2 * Math.PI);
    context.fill();
  }
}

function showStep({ report, imagesPerSecond, stepsPerSecond }) {
  view.steps.push({ report, imagesPerSecond, stepsPerSecond });
  const eta = (report.total_steps - report.steps_done) / stepsPerSecond;
  $("progress").textContent = `epoch ${report.epoch}/${$("epochs").value}, step ${report.steps_done} of ${report.total_steps}: ` +
    `loss ${report.loss.toFixed(4)}, ${imagesPerSecond.toFixed(1)} images/s, ${stepsPerSecond.toFixed(2)} steps/s, ` +
    `about ${Math.ceil(eta)} s of steps left`;
  view.progress = { imagesPerSecond, stepsPerSecond, eta };
  drawPlot();
}

function showEvaluation({ epoch, evaluation }) {
  view.evaluations.push({ epoch, evaluation });
  const { classes, confusion } = evaluation;
  const head = classes.map((c) => `<th>${escapeHtml(c)}</th>`).join("");
  const rows = confusion.map((row, t) =>
    `<tr><th>${escapeHtml(classes[t])}</th>${row.map((n) => `<td class="num">${n}</td>`).join("")}</tr>`);
  $("evaluation").innerHTML = `${epoch === 0 ? "Before training" : `After epoch ${epoch}`}: ` +
    `accuracy <b>${(evaluation.accuracy * 100).toFixed(1)}%</b> on ${evaluation.images} validation images` +
    (evaluation.roc_auc == null ? "" : `, ROC AUC ${evaluation.roc_auc.toFixed(3)}`) +
    `, ${evaluation.misclassified.length} misclassified.` +
    `<table><tr><th>true ↓ predicted →</th>${head}</tr>${rows.join("")}</table>`;
  drawPlot();
}

// The latest evaluation's misclassified images, each explained for the class it was taken for.
// Each request carries the run it is for: an answer that arrives after another run has started
// is dropped.
let explained = { run: 0, evaluation: null };

function explainMistakes() {
  const latest = view.evaluations.at(-1)?.evaluation;
  // A run cancelled while paused: its mistakes are on show already.
  if (explained.run === view.run && explained.evaluation === latest) return;
  explained = { run: view.run, evaluation: latest };
  $("mistakes").replaceChildren();
  view.explanations = [];
  for (const mistake of explained.evaluation?.misclassified.slice(0, MISTAKES_EXPLAINED) ?? []) {
    send({ type: "explain", run: view.run, index: mistake.index, method: $("method").value, class: mistake.predicted });
  }
}

function showExplanation(message) {
  if (message.run !== view.run) return;
  const latest = explained.evaluation;
  const mistake = latest.misclassified.find((m) => m.index === message.index);
  const figure = document.createElement("figure");
  const image = document.createElement("canvas");
  const overlay = document.createElement("canvas");
  drawRgba(image, message.imageRgba, message.width, message.height);
  drawRgba(overlay, message.overlayRgba, message.width, message.height);
  const caption = document.createElement("figcaption");
  caption.textContent = `${mistake.path}: ${latest.classes[mistake.label]}, taken for ` +
    `${latest.classes[mistake.predicted]} (${(mistake.probability * 100).toFixed(1)}%); ${message.method}`;
  figure.append(image, overlay, caption);
  $("mistakes").append(figure);
  view.explanations.push({ index: message.index, method: message.method, width: message.width,
    height: message.height, overlayNonZero: message.overlayRgba.some((v, i) => i % 4 !== 3 && v > 0) });
}

function download(bytes, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  link.download = name;
  link.click();
  // Revoked once the download has surely started with it.
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

worker.onmessage = ({ data: message }) => {
  switch (message.type) {
    case "ready":
      view.ready = true;
      view.adapter = message.adapter;
      for (const arch of message.architectures) $("arch").add(new Option(arch, arch, arch === "resnet18", arch === "resnet18"));
      for (const name of message.methods) $("method").add(new Option(name, name, name === "gradcam", name === "gradcam"));
      setStatus(`Ready on ${message.adapter.adapter}. Pick a folder or a zip of images.`, "ready");
      break;
    case "dataset":
      showDataset(message);
      break;
    case "model": {
      view.model = message.model;
      view.fit = message.fit;
      const m = message.model;
      setStatus(`Training ${m.arch} (${m.trainable_parameters.toLocaleString()} of ${m.parameters.toLocaleString()} ` +
        `parameters) on ${m.train_images} images, validating on ${m.val_images}, ${m.input_size}×${m.input_size} ` +
        `${m.channels === 1 ? "gray" : "RGB"}, batch ${message.fit.batch} (${message.fit.peak_mib.toFixed(0)} MiB at its peak)…`);
      for (const refused of message.fit.refused) {
        notice(`A batch of ${refused.batch} did not fit (${refused.why}); lowered to ${message.fit.batch}.`);
      }
      break;
    }
    case "step":
      showStep(message);
      break;
    case "evaluation":
      showEvaluation(message);
      break;
    case "state":
      view.state = message.state;
      if (message.state === "finished") {
        const accuracy = view.evaluations.at(-1).evaluation.accuracy;
        setStatus(`Finished: validation accuracy ${(accuracy * 100).toFixed(1)}%. Export the checkpoint, or train again.`, "done");
      } else if (message.state === "paused") {
        setStatus("Paused after the step in flight. Resume, cancel, or export the model as it stands.", "ready");
      } else if (message.state === "pausing" || message.state === "cancelling") {
        setStatus(`${message.state === "pausing" ? "Pausing" : "Cancelling"} after the step in flight…`);
      } else if (message.state === "cancelled") {
        setStatus("Cancelled. The model as it stands can still be exported.", "ready");
      }
      if (["finished", "paused", "cancelled"].includes(message.state)) explainMistakes();
      updateButtons();
      break;
    case "explanation":
      showExplanation(message);
      break;
    case "exported":
      view.exportedBytes = message.bytes.length;
      download(message.bytes, "fine_tuned.safetensors");
      setStatus(`Exported fine_tuned.safetensors (${(message.bytes.length / 1e6).toFixed(1)} MB): ` +
        "gradlens classify --weights fine_tuned.safetensors reads it.", "done");
      break;
    case "logits":
      view.logits = { logits: Array.from(message.logits), paths: message.paths };
      break;
    case "error":
      // A run that could not start (a broken image, a checkpoint that does not fit) leaves the
      // controls free for another try.
      if (message.during === "start" || message.during === "training") view.state = "failed";
      view.errors.push(message.message);
      setStatus(message.message, "error");
      updateButtons();
      break;
  }
};

async function fileBytes(file) {
  return new Uint8Array(await file.arrayBuffer());
}

async function readZip(file) {
  if ($("data-zip").disabled) throw new Error("a run is in progress: new data waits until it ends");
  setStatus(`reading ${file.name}…`);
  const bytes = await fileBytes(file);
  send({ type: "clear" });
  send({ type: "zip", name: file.name, bytes }, [bytes.buffer]);
}

function options() {
  const number = (id) => Number($(id).value);
  return {
    arch: $("arch").value, width: number("width"), trainable: $("trainable").value,
    grayscale: $("grayscale").checked, ...($("size").value ? { size: number("size") } : {}),
    epochs: number("epochs"), lr: number("lr"), batch: number("batch"), optimizer: $("optimizer").value,
    memory_mib: number("memory"), val_fraction: number("val-fraction"), seed: number("seed"),
    augment: AUGMENTATIONS.filter((name) => $(`augment-${name}`).checked),
  };
}

async function checkpoint() {
  switch ($("source").value) {
    case "demo": {
      const response = await fetch("demo/lesions.safetensors");
      if (!response.ok) throw new Error(`demo/lesions.safetensors: HTTP ${response.status}`);
      return { name: "lesions.safetensors", bytes: new Uint8Array(await response.arrayBuffer()) };
    }
    case "file": {
      const file = $("checkpoint-file").files[0];
      if (!file) throw new Error("choose a checkpoint file first");
      return { name: file.name, bytes: await fileBytes(file) };
    }
    default:
      return null;
  }
}

function main() {
  $("augment").innerHTML = AUGMENTATIONS.map((name) =>
    `<label><input type="checkbox" id="augment-${name}"${name === "flip" ? " checked" : ""}> ${name}</label>`).join("");
  const wrap = (action) => async (...args) => {
    try {
      await action(...args);
    } catch (error) {
      view.errors.push(String(error?.message ?? error));
      setStatus(String(error?.message ?? error), "error");
    }
  };
  $("source").addEventListener("change", () => {
    $("checkpoint-file").hidden = $("source").value !== "file";
    // Random features are no features to keep: from scratch, every layer trains.
    if ($("source").value === "scratch") $("trainable").value = "all";
  });
  $("data-folder").addEventListener("change", wrap(async (event) => {
    const files = Array.from(event.target.files);
    setStatus(`reading ${files.length} files…`);
    const read = [];
    for (const file of files) read.push({ path: file.webkitRelativePath || file.name, bytes: await fileBytes(file) });
    send({ type: "clear" });
    send({ type: "files", files: read }, read.map((f) => f.bytes.buffer));
  }));
  $("data-zip").addEventListener("change", wrap(async (event) => {
    if (event.target.files[0]) await readZip(event.target.files[0]);
  }));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", wrap(async (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files[0]) await readZip(event.dataTransfer.files[0]);
  }));
  $("start").addEventListener("click", wrap(async () => {
    Object.assign(view, { run: view.run + 1, state: "starting", model: null, fit: null, steps: [], evaluations: [],
      explanations: [], exportedBytes: null, logits: null });
    updateButtons();
    let source;
    try {
      source = await checkpoint();
    } catch (error) {
      view.state = "failed";
      updateButtons();
      throw error;
    }
    $("notice").textContent = "";
    $("mistakes").replaceChildren();
    setStatus("decoding the images and building the model…");
    send({ type: "start", options: options(), checkpoint: source }, source ? [source.bytes.buffer] : []);
  }));
  $("pause").addEventListener("click", () => send({ type: "pause" }));
  $("resume").addEventListener("click", () => send({ type: "resume" }));
  $("cancel").addEventListener("click", () => send({ type: "cancel" }));
  $("export").addEventListener("click", () => send({ type: "export" }));
  // For the end-to-end test: the validation logits of the model as it stands.
  view.requestLogits = () => send({ type: "logits" });
  worker.onerror = (event) => {
    view.errors.push(`the training worker failed: ${event.message}`);
    setStatus(view.errors.at(-1), "error");
  };
}

main();
