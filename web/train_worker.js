// The fine-tuning worker: gradlens (wasm) on this worker's own WebGPU device, so that the page
// stays responsive while it trains. It runs one awaited optimiser step at a time and reads its
// messages between steps: pause, resume and cancel take effect after the step in flight.
//
// Page → worker: {type: "files", files: [{path, bytes}]} | {type: "zip", name, bytes} |
//   {type: "start", options, checkpoint: {name, bytes} | null} | {type: "pause"} |
//   {type: "resume"} | {type: "cancel"} | {type: "explain", run, index, method, class} |
//   {type: "export"} | {type: "logits"}
// Worker → page: {type: "ready", adapter, methods, architectures} | {type: "dataset", summary, thumbnails} |
//   {type: "model", model, fit} | {type: "step", report, imagesPerSecond, stepsPerSecond} |
//   {type: "evaluation", evaluation, epoch} | {type: "state", state} |
//   {type: "explanation", ...} | {type: "exported", bytes} | {type: "logits", logits, paths} |
//   {type: "error", message, during} (the request that failed, or "training")

import init, { Dataset, Session } from "./pkg/gradlens_web.js";

const THUMBNAILS_PER_CLASS = 4;
const THUMBNAIL_SIDE = 64;

let session = null;
let dataset = null; // a Dataset once the wasm is initialised
let fineTune = null;
// idle → running → pausing → paused → running … → finished | cancelling → cancelled. A pause
// or a cancel asked for during a step takes effect once that step has posted its report.
let state = "idle";
let pending = Promise.resolve();

const post = (message, transfer = []) => self.postMessage(message, transfer);
const fail = (during) => (error) => post({ type: "error", during, message: String(error?.message ?? error) });

function setState(next) {
  state = next;
  post({ type: "state", state });
}

function describeDataset() {
  const summary = JSON.parse(dataset.describe());
  const thumbnails = [];
  summary.classes.forEach((_, label) => {
    for (let k = 0; k < THUMBNAILS_PER_CLASS; k++) {
      const rgba = dataset.thumbnail(label, k, THUMBNAIL_SIDE);
      if (rgba.length) thumbnails.push({ label, rgba, side: THUMBNAIL_SIDE });
    }
  });
  post({ type: "dataset", summary, thumbnails }, thumbnails.map((t) => t.rgba.buffer));
}

// The run's time in its steps alone (validation and pauses aside), for its images/s and steps/s.
let timing = { steps: 0, images: 0, seconds: 0 };

// Steps until the run ends, is paused or cancelled; validation after each epoch.
async function train() {
  while (state === "running") {
    const started = performance.now();
    const report = JSON.parse(await fineTune.step());
    timing.seconds += (performance.now() - started) / 1000;
    timing.steps += 1;
    timing.images += report.images;
    post({ type: "step", report, imagesPerSecond: timing.images / timing.seconds,
      stepsPerSecond: timing.steps / timing.seconds });
    if (report.epoch_finished) {
      post({ type: "evaluation", epoch: report.epoch, evaluation: JSON.parse(await fineTune.evaluate()) });
    }
    if (report.finished) setState("finished");
  }
  if (state === "pausing") setState("paused");
  if (state === "cancelling") setState("cancelled");
}

async function handle(message) {
  switch (message.type) {
    case "files":
      for (const { path, bytes } of message.files) dataset.add(path, bytes);
      describeDataset();
      break;
    case "zip":
      dataset.addZip(message.bytes, message.name);
      describeDataset();
      break;
    case "clear":
      dataset.free();
      dataset = new Dataset();
      break;
    case "start": {
      if (!["idle", "finished", "cancelled", "failed"].includes(state)) throw new Error("a run is in progress: cancel it first");
      fineTune?.free();
      fineTune = null;
      timing = { steps: 0, images: 0, seconds: 0 };
      const checkpoint = message.checkpoint;
      fineTune = session.prepareFineTune(dataset, JSON.stringify(message.options),
        checkpoint?.bytes, checkpoint?.name ?? "");
      const fit = JSON.parse(await fineTune.fit());
      post({ type: "model", model: JSON.parse(fineTune.describe()), fit });
      post({ type: "evaluation", epoch: 0, evaluation: JSON.parse(await fineTune.evaluate()) });
      setState("running");
      break;
    }
    case "pause":
      if (state === "running") setState("pausing");
      break;
    case "resume":
      // While pausing, the step loop has not stopped yet and simply goes on.
      if (state === "paused" || state === "pausing") setState("running");
      break;
    case "cancel":
      if (state === "running" || state === "pausing") setState("cancelling");
      if (state === "paused") setState("cancelled");
      break;
    case "explain": {
      const analysis = await fineTune.explain(message.index, message.method, message.class);
      const reply = { type: "explanation", run: message.run, index: message.index, method: message.method, class: message.class,
        width: analysis.width, height: analysis.height, imageRgba: analysis.imageRgba,
        overlayRgba: analysis.overlayRgba };
      analysis.free();
      post(reply, [reply.imageRgba.buffer, reply.overlayRgba.buffer]);
      break;
    }
    case "export": {
      const bytes = await fineTune.exportWeights();
      post({ type: "exported", bytes }, [bytes.buffer]);
      break;
    }
    case "logits":
      post({ type: "logits", logits: await fineTune.validationLogits(), paths: fineTune.validationPaths() });
      break;
    default:
      throw new Error(`unknown message ${message.type}`);
  }
}

self.onmessage = ({ data: message }) => {
  // Control messages act at once; the rest wait their turn (a step is never interleaved with
  // another request on the model).
  if (["pause", "resume", "cancel"].includes(message.type)) {
    const loopStopped = state === "paused";
    handle(message).catch(fail(message.type));
    if (message.type === "resume" && loopStopped) {
      pending = pending.then(train).catch((error) => { setState("failed"); fail("training")(error); });
    }
    return;
  }
  pending = pending.then(() => handle(message)).catch(fail(message.type));
  if (message.type === "start") {
    pending = pending.then(() => (state === "running" ? train() : null))
      .catch((error) => { setState("failed"); fail("training")(error); });
  }
};

try {
  await init();
  dataset = new Dataset();
  session = await Session.open();
  post({ type: "ready", adapter: JSON.parse(session.adapter()), methods: Session.methods(),
    architectures: Session.architectures() });
} catch (error) {
  post({ type: "error", during: "start-up", message: String(error?.message ?? error) });
}
