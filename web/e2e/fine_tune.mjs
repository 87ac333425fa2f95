// End-to-end test of fine-tuning in the browser (train.html) in headless Chromium on
// SwiftShader's WebGPU, driven through the page's own controls:
//
//   node --experimental-websocket web/e2e/fine_tune.mjs --gradlens target/release/gradlens --out DIR
//
// 1. `gradlens lesions` writes a lesion ImageFolder (train/ and val/, with masks/ beside them,
//    which the page must pass over); it is zipped here (deflate) and given to the page's zip
//    input. First a zip with a broken image: Train must end in an error that names it.
// 2. Run A fine-tunes the demo checkpoint (a new head for the data's classes; the last block and
//    the head train) for a few epochs, paused and resumed on the way: the page must report class
//    counts and thumbnails, a live loss per step, and a validation accuracy above MIN_ACCURACY
//    that beats the untrained head's. The exported checkpoint, downloaded through the Export
//    button, must give the page's validation logits under native `gradlens classify` (within
//    1e-4 of their scale).
// 3. Run B asks for a batch its memory limit (run A's peak) cannot hold: the page must lower the
//    batch and say so; it is cancelled after its first step, and its misclassified images are
//    explained. Run C trains a small ResNet from scratch for an epoch.
// 4. Privacy: every request the server saw is a GET of one of the page's static files with no
//    body, and the page cannot reach another origin (the CSP blocks it).
// Figures (steps/s, images/s, seconds) are printed, with a screenshot and the console in DIR.
// With --figures, it then times a full-width ResNet-18 at 112 px on 200 training images (one
// epoch with the classifier training, one with the last block and the classifier) for
// BENCHMARKS.md.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateRawSync } from "node:zlib";
import { serve } from "../serve.mjs";
import { commandLine, launchBrowser } from "./browser.mjs";

const TOLERANCE = 1e-4;
const MIN_ACCURACY = 0.85;
const TIMEOUT_MS = Number(process.env.GRADLENS_E2E_PAGE_TIMEOUT_S ?? 300) * 1000;
const IMAGES = 320;
const SIDE = 48;

const webDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { args, outDir, gradlens, chromium } = commandLine();

function fail(message) {
  console.error(`fine-tune e2e: FAILED: ${message}`);
  process.exit(1);
}
const log = (text) => console.log(`fine-tune e2e: ${text}`);

// ---- 1. The data: a lesion ImageFolder, zipped ------------------------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// A zip of `files` ([name, bytes]), every entry deflated: local headers, data, central directory.
function zip(files) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const [name, data] of files) {
    const nameBytes = Buffer.from(name, "utf8");
    const packed = deflateRawSync(data);
    const crc = crc32(data);
    const header = (signature, central) => {
      const fields = Buffer.alloc(central ? 46 : 30);
      fields.writeUInt32LE(signature, 0);
      let at = 4;
      if (central) { fields.writeUInt16LE(20, at); at += 2; }
      fields.writeUInt16LE(20, at); // version needed
      fields.writeUInt16LE(0x800, at + 2); // UTF-8 names
      fields.writeUInt16LE(8, at + 4); // deflate
      fields.writeUInt32LE(0, at + 6); // time and date
      fields.writeUInt32LE(crc, at + 10);
      fields.writeUInt32LE(packed.length, at + 14);
      fields.writeUInt32LE(data.length, at + 18);
      fields.writeUInt16LE(nameBytes.length, at + 22);
      if (central) fields.writeUInt32LE(offset, 42);
      return Buffer.concat([fields, nameBytes]);
    };
    const local = Buffer.concat([header(0x04034b50, false), packed]);
    locals.push(local);
    centrals.push(header(0x02014b50, true));
    offset += local.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

function filesUnder(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

const testStarted = Date.now();
const scratch = mkdtempSync(join(tmpdir(), "gradlens-fine-tune-"));
const dataDir = join(scratch, "lesions");
execFileSync(gradlens, ["lesions", "--out", dataDir, "--count", String(IMAGES), "--size", String(SIDE), "--seed", "5"], { stdio: "ignore" });
const dataFiles = filesUnder(dataDir).sort();
const zipPath = join(scratch, "lesions.zip");
writeFileSync(zipPath, zip(dataFiles.map((path) => [relative(scratch, path).split(sep).join("/"), readFileSync(path)])));
const counted = (split, label) => dataFiles.filter((f) => f.includes(`${sep}masks${sep}`) === false && f.includes(`${sep}${split}${sep}${label}${sep}`)).length;
const expectedCounts = ["healthy", "lesion"].map((label) => counted("train", label) + counted("val", label));

// ---- 2. The page --------------------------------------------------------------------------------

const server = await serve(0);
const origin = `http://127.0.0.1:${server.address().port}`;
const downloads = join(scratch, "downloads");
mkdirSync(downloads);
const { send, consoleLines, openTab, evaluate, waitFor, close } = await launchBrowser(chromium);
const cleanUp = async () => {
  await close();
  server.close();
  rmSync(scratch, { recursive: true, force: true });
};

const state = (tab) => evaluate(tab, "window.gradlensTrain.state");
const click = (tab, id) => evaluate(tab, `(() => { const b = document.getElementById(${JSON.stringify(id)}); if (b.disabled) throw new Error("${id} is disabled"); b.click(); return true; })()`);
const setControls = (tab, values) => evaluate(tab, `(() => {
  for (const [id, value] of Object.entries(${JSON.stringify(values)})) {
    const control = document.getElementById(id);
    if (control.type === "checkbox") control.checked = value; else control.value = value;
    control.dispatchEvent(new Event("change"));
  }
  return true;
})()`);
const view = async (tab) => JSON.parse(await evaluate(tab, "JSON.stringify(window.gradlensTrain)"));
const pageError = async (tab) => (await view(tab)).errors[0];
async function waitForState(tab, wanted, what) {
  await waitFor(tab, `window.gradlensTrain.errors.length > 0 || ${JSON.stringify(wanted)}.includes(window.gradlensTrain.state)`, TIMEOUT_MS, what);
  const error = await pageError(tab);
  if (error) throw new Error(`${what}: the page reported: ${error}`);
}

let runA;
let runB;
let runC;
let crossOrigin;
let figures = [];
let timings = {};
try {
  const tab = await openTab(`${origin}/train.html`);
  await send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: downloads, eventsEnabled: true });
  await waitFor(tab, "window.gradlensTrain?.ready || window.gradlensTrain?.errors.length > 0", TIMEOUT_MS, "the worker's WebGPU device");
  if (await pageError(tab)) throw new Error(`the page could not start: ${await pageError(tab)}`);

  // A zip holding a broken image: Train must end in an error naming it, the controls free.
  const { root } = await send("DOM.getDocument", {}, tab);
  const { nodeId } = await send("DOM.querySelector", { nodeId: root.nodeId, selector: "#data-zip" }, tab);
  const healthy = dataFiles.filter((f) => f.includes(`${sep}train${sep}healthy${sep}`)).slice(0, 10);
  const brokenZip = join(scratch, "broken.zip");
  writeFileSync(brokenZip, zip([
    ...healthy.map((path, i) => [`set/healthy/${i}.png`, readFileSync(path)]),
    ...healthy.map((path, i) => [`set/lesion/${i}.png`, readFileSync(path)]),
    ["set/lesion/broken.png", Buffer.from("this is not a PNG")],
  ]));
  await send("DOM.setFileInputFiles", { nodeId, files: [brokenZip] }, tab);
  await waitFor(tab, "window.gradlensTrain.dataset?.images === 21 || window.gradlensTrain.errors.length > 0", TIMEOUT_MS, "reading the broken zip");
  await setControls(tab, { source: "scratch", arch: "resnet18", width: 8, size: SIDE, seed: 0 });
  await click(tab, "start");
  await waitFor(tab, "window.gradlensTrain.errors.length > 0", TIMEOUT_MS, "the broken image's error");
  const broken = { error: await pageError(tab), startFree: !(await evaluate(tab, "document.getElementById('start').disabled")) };
  await evaluate(tab, "(window.gradlensTrain.errors = [], window.gradlensTrain.dataset = null, true)");

  // The lesion set through the page's file input.
  await send("DOM.setFileInputFiles", { nodeId, files: [zipPath] }, tab);
  await waitFor(tab, "window.gradlensTrain.dataset || window.gradlensTrain.errors.length > 0", TIMEOUT_MS, "reading the zip");
  if (await pageError(tab)) throw new Error(`reading the zip: ${await pageError(tab)}`);
  const thumbnails = await evaluate(tab, "document.querySelectorAll('.thumbs canvas').length");

  // Run A: the demo checkpoint, the last block and a new head, paused and resumed on the way.
  await setControls(tab, { source: "demo", trainable: "last-block", grayscale: false, size: "", epochs: 6, lr: 0.002,
    batch: 16, optimizer: "adam", memory: 2048, seed: 1, "augment-flip": true, method: "gradcam" });
  const startedA = Date.now();
  await click(tab, "start");
  await waitFor(tab, "window.gradlensTrain.steps.length >= 3 || window.gradlensTrain.errors.length > 0", TIMEOUT_MS, "run A's first steps");
  if (await pageError(tab)) throw new Error(`run A: ${await pageError(tab)}`);
  await click(tab, "pause");
  await waitForState(tab, ["paused"], "pausing run A");
  const stepsWhenPaused = (await view(tab)).steps.length;
  await new Promise((ok) => setTimeout(ok, 3000));
  const stepsAfterWaiting = (await view(tab)).steps.length;
  await click(tab, "resume");
  await waitForState(tab, ["finished"], "run A");
  timings.runA = (Date.now() - startedA) / 1000;
  await click(tab, "export");
  const exported = join(downloads, "fine_tuned.safetensors");
  const downloaded = Date.now();
  while (!existsSync(exported) || readdirSync(downloads).some((name) => name.endsWith(".crdownload"))) {
    if (Date.now() - downloaded > 60_000) throw new Error("the exported checkpoint was not downloaded");
    await new Promise((ok) => setTimeout(ok, 200));
  }
  await evaluate(tab, "window.gradlensTrain.requestLogits()");
  await waitFor(tab, "window.gradlensTrain.logits", TIMEOUT_MS, "the validation logits");
  runA = { ...(await view(tab)), thumbnails, stepsWhenPaused, stepsAfterWaiting, exported, broken };
  const shot = await send("Page.captureScreenshot", { format: "png", captureBeyondViewport: true }, tab);
  writeFileSync(join(outDir, "fine_tune.png"), Buffer.from(shot.data, "base64"));

  // Run B: the demo checkpoint again, with a batch four times run A's and run A's peak as the
  // memory limit; cancelled after a step, with a learning rate too small to fix the new head.
  await setControls(tab, { trainable: "classifier", epochs: 2, lr: 1e-6, batch: 64, memory: Math.ceil(runA.fit.peak_mib) });
  await click(tab, "start");
  await waitFor(tab, "window.gradlensTrain.steps.length >= 1 || window.gradlensTrain.errors.length > 0", TIMEOUT_MS, "run B's first step");
  if (await pageError(tab)) throw new Error(`run B: ${await pageError(tab)}`);
  await click(tab, "cancel");
  await waitForState(tab, ["cancelled"], "cancelling run B");
  await waitFor(tab, `window.gradlensTrain.explanations.length >= Math.min(8, window.gradlensTrain.evaluations.at(-1).evaluation.misclassified.length)`,
    TIMEOUT_MS, "the explanations of run B's mistakes");
  runB = await view(tab);
  const shotB = await send("Page.captureScreenshot", { format: "png", captureBeyondViewport: true }, tab);
  writeFileSync(join(outDir, "fine_tune_cancelled.png"), Buffer.from(shotB.data, "base64"));

  // Run C: from scratch, all layers, one epoch.
  await setControls(tab, { source: "scratch", arch: "resnet18", width: 8, trainable: "all", grayscale: true,
    size: SIDE, epochs: 1, lr: 0.003, batch: 16, memory: 2048 });
  await click(tab, "start");
  await waitForState(tab, ["finished"], "run C");
  runC = await view(tab);

  // The CSP: the page cannot send anything to another origin, even this same server under
  // another name (a request that got through would be in the server's log).
  crossOrigin = await evaluate(tab, `new Promise((ok) => {
    let violated = null;
    document.addEventListener("securitypolicyviolation", (event) => { violated = event.violatedDirective; });
    fetch("http://localhost:${server.address().port}/upload", { method: "POST", body: "x" })
      .then(() => ok("sent"), () => setTimeout(() => ok("blocked by " + violated), 100));
  })`);
  if (args.figures !== undefined) figures = await measureFigures(tab);
} catch (error) {
  writeFileSync(join(outDir, "fine_tune_console.txt"), consoleLines.join("\n"));
  await cleanUp();
  fail(`${error.message}\nbrowser console:\n${consoleLines.join("\n")}`);
}
writeFileSync(join(outDir, "fine_tune_console.txt"), consoleLines.join("\n"));
await close();
server.close();

// One epoch of a full-width ResNet-18 at 112 px on 200 training images (250 with 50 held out),
// with the classifier alone and then the last block training: steps/s and images/s as the page
// reports them, and the time from Train to the end.
async function measureFigures(tab) {
  const figureDir = join(scratch, "figures");
  execFileSync(gradlens, ["lesions", "--out", figureDir, "--count", "250", "--size", "112", "--seed", "6", "--validation", "0.2"], { stdio: "ignore" });
  const figureZip = join(scratch, "figures.zip");
  const files = filesUnder(figureDir).filter((f) => !f.includes(`${sep}masks${sep}`)).sort();
  writeFileSync(figureZip, zip(files.map((path) => [relative(scratch, path).split(sep).join("/"), readFileSync(path)])));
  const { root } = await send("DOM.getDocument", {}, tab);
  const { nodeId } = await send("DOM.querySelector", { nodeId: root.nodeId, selector: "#data-zip" }, tab);
  await evaluate(tab, "window.gradlensTrain.dataset = null");
  await send("DOM.setFileInputFiles", { nodeId, files: [figureZip] }, tab);
  await waitFor(tab, "window.gradlensTrain.dataset", TIMEOUT_MS, "reading the figures' zip");
  const measured = [];
  for (const trainable of ["classifier", "last-block"]) {
    await setControls(tab, { source: "scratch", arch: "resnet18", width: 64, trainable, grayscale: false, size: 112,
      epochs: 1, lr: 0.001, batch: 16, memory: 4096, "augment-flip": false });
    const started = Date.now();
    await click(tab, "start");
    await waitForState(tab, ["finished"], `the figure for ${trainable}`);
    const totalSeconds = (Date.now() - started) / 1000;
    const page = await view(tab);
    const last = page.steps.at(-1);
    measured.push({ trainable, train: page.model.train_images, val: page.model.val_images, batch: page.fit.batch,
      steps: last.report.total_steps, seconds: last.report.total_steps / last.stepsPerSecond,
      stepsPerSecond: last.stepsPerSecond, imagesPerSecond: last.imagesPerSecond, totalSeconds,
      adapter: page.adapter.adapter });
  }
  return measured;
}

// ---- 3. The checks --------------------------------------------------------------------------

function check(condition, message) {
  if (!condition) {
    rmSync(scratch, { recursive: true, force: true });
    fail(message);
  }
}

// The data as the page read it, a broken image refused by name.
check(/set\/lesion\/broken\.png/.test(runA.broken.error ?? "") && runA.broken.startFree,
  `a broken image gave ${JSON.stringify(runA.broken)}, not an error naming it with Train free again`);
log(`a zip with a broken image: "${runA.broken.error}"`);
check(JSON.stringify(runA.dataset.classes) === JSON.stringify(["healthy", "lesion"]),
  `the page found classes ${JSON.stringify(runA.dataset.classes)} (masks/ must be passed over)`);
check(JSON.stringify(runA.dataset.counts) === JSON.stringify(expectedCounts) && runA.dataset.presplit,
  `the page counted ${JSON.stringify(runA.dataset)}, not ${JSON.stringify(expectedCounts)} presplit`);
check(runA.thumbnails === 8, `the page drew ${runA.thumbnails} thumbnails, not 4 per class`);
log(`the zip's ${runA.dataset.images} images: ${runA.dataset.counts.join(" and ")} per class, presplit, 8 thumbnails`);

// Run A: trained, paused, resumed, accurate.
check(runA.stepsAfterWaiting === runA.stepsWhenPaused, `paused at ${runA.stepsWhenPaused} steps, it went on to ${runA.stepsAfterWaiting}`);
const last = runA.steps.at(-1).report;
check(last.steps_done === last.total_steps && runA.steps.length === last.total_steps,
  `run A reported ${runA.steps.length} steps of ${last.total_steps}`);
check(runA.steps.every((s) => Number.isFinite(s.report.loss)), "run A reported a loss that is not finite");
const before = runA.evaluations[0].evaluation.accuracy;
const after = runA.evaluations.at(-1).evaluation.accuracy;
check(runA.evaluations.length === 7, `run A has ${runA.evaluations.length} evaluations, not the untrained one and 6 epochs`);
check(after >= MIN_ACCURACY && after > before,
  `run A reached a validation accuracy of ${after} (untrained head: ${before}); at least ${MIN_ACCURACY} expected`);
const firstLoss = runA.steps.slice(0, 5).reduce((a, s) => a + s.report.loss, 0) / 5;
const lastLoss = runA.steps.slice(-5).reduce((a, s) => a + s.report.loss, 0) / 5;
check(lastLoss < firstLoss, `run A's loss went from ${firstLoss} to ${lastLoss}`);
const confusion = runA.evaluations.at(-1).evaluation.confusion;
check(confusion.flat().reduce((a, b) => a + b, 0) === runA.model.val_images, "the confusion matrix does not count every validation image");
log(`run A: ${runA.model.arch} from the demo checkpoint, ${runA.model.trainable_parameters} of ${runA.model.parameters} parameters ` +
  `trained (last block and head), batch ${runA.fit.batch}, ${last.total_steps} steps: validation accuracy ${(before * 100).toFixed(1)}% ` +
  `untrained → ${(after * 100).toFixed(1)}%, loss ${firstLoss.toFixed(3)} → ${lastLoss.toFixed(3)}; paused at step ${runA.stepsWhenPaused} and resumed`);
log(`run A took ${timings.runA.toFixed(1)} s in all: ${runA.progress.stepsPerSecond.toFixed(2)} steps/s, ` +
  `${runA.progress.imagesPerSecond.toFixed(1)} images/s on ${runA.adapter.adapter}`);

// The export against native inference.
const paths = runA.logits.paths.map((path) => join(scratch, ...path.split("/")));
const native = JSON.parse(execFileSync(gradlens, ["classify", ...paths, "--weights", runA.exported, "--json"],
  { encoding: "utf8", maxBuffer: 1 << 26 }));
const nativeLogits = native.results.flatMap((result) => result.logits);
const browserLogits = runA.logits.logits;
check(nativeLogits.length === browserLogits.length && nativeLogits.length === 2 * runA.model.val_images,
  `${browserLogits.length} logits in the page, ${nativeLogits.length} natively`);
const scale = Math.max(...nativeLogits.map(Math.abs));
const worst = Math.max(...browserLogits.map((v, i) => Math.abs(v - nativeLogits[i])));
check(scale > 0 && worst / scale <= TOLERANCE, `the exported checkpoint's native logits differ by ${worst / scale} of their scale`);
log(`the exported checkpoint (${runA.exportedBytes} bytes) under native classify: ${nativeLogits.length} logits of ` +
  `${runA.model.val_images} validation images, max |page − native| = ${(worst / scale).toExponential(2)} of max |native|`);

// Run B: the batch lowered to fit, cancelled, its mistakes explained.
check(runB.fit.asked === 64 && runB.fit.batch <= runA.fit.batch && runB.fit.refused.length >= 2,
  `run B's batch was not lowered to fit its memory limit: ${JSON.stringify(runB.fit)}`);
check(runB.notices.some((n) => n.includes("did not fit")), "run B's lowered batch was not announced");
check(runB.state === "cancelled" && runB.steps.length < runB.steps.at(-1).report.total_steps, "run B was not cancelled before it ended");
const mistakes = runB.evaluations.at(-1).evaluation.misclassified;
check(mistakes.length > 0, "run B, cancelled after a step, misclassified nothing (an explanation to show was expected)");
check(runB.explanations.length === Math.min(8, mistakes.length) &&
  runB.explanations.every((e) => e.width === SIDE && e.height === SIDE && e.overlayNonZero),
`run B's mistakes were not all explained: ${JSON.stringify(runB.explanations)}`);
log(`run B: batch 64 refused (${runB.fit.refused.map((r) => r.why).join("; ")}), lowered to ${runB.fit.batch}; ` +
  `cancelled after ${runB.steps.length} steps; ${runB.explanations.length} of ${mistakes.length} mistakes explained with gradcam`);

// Run C: from scratch.
const lastC = runC.steps.at(-1).report;
check(runC.model.trainable_parameters === runC.model.parameters && runC.model.channels === 1 &&
  lastC.steps_done === lastC.total_steps && runC.evaluations.length === 2 && runC.steps.every((s) => Number.isFinite(s.report.loss)),
`run C (from scratch) did not train its epoch: ${JSON.stringify({ model: runC.model, last: lastC })}`);
log(`run C: a gray ResNet-18 of width 8 from scratch, all ${runC.model.parameters} parameters, one epoch of ${lastC.total_steps} steps: ` +
  `validation accuracy ${(runC.evaluations.at(-1).evaluation.accuracy * 100).toFixed(1)}%`);

// Privacy: what the server saw, and another origin.
const statics = new Set(["/train.html", "/train.js", "/train_worker.js", "/pkg/gradlens_web.js", "/pkg/gradlens_web_bg.wasm",
  "/demo/lesions.safetensors", "/favicon.ico"]);
const strange = server.requests.filter((r) => r.method !== "GET" || r.bodyBytes > 0 || !statics.has(r.url));
check(strange.length === 0, `the page made requests beyond its static files: ${JSON.stringify(strange)}`);
check(crossOrigin === "blocked by connect-src", `a request to another origin was ${crossOrigin}`);
log(`privacy: ${server.requests.length} requests, all GETs of the page's own files without a body ` +
  `(${[...new Set(server.requests.map((r) => r.url))].join(", ")}); another origin: ${crossOrigin}`);
for (const figure of figures) {
  log(`figure: ResNet-18 (width 64, RGB, random weights standing in for pretrained ones) at 112 px, ${figure.trainable}: ` +
    `${figure.train} training images, batch ${figure.batch}, ${figure.steps} steps taking ${figure.seconds.toFixed(1)} s ` +
    `(${figure.stepsPerSecond.toFixed(2)} steps/s, ${figure.imagesPerSecond.toFixed(1)} images/s); from Train to done (the model ` +
    `built, the batch fitted, ${figure.val} images validated before and after) ${figure.totalSeconds.toFixed(1)} s, on ${figure.adapter}`);
}
rmSync(scratch, { recursive: true, force: true });
log(`passed in ${((Date.now() - testStarted) / 1000).toFixed(1)} s; screenshots ${join(outDir, "fine_tune.png")} and fine_tune_cancelled.png`);
process.exit(0);
