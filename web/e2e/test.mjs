// End-to-end test of the browser front in real headless Chromium on SwiftShader's WebGPU.
//
//   node --experimental-websocket web/e2e/test.mjs --gradlens target/release/gradlens --out DIR
//
// 1. Runs the native build on the demo checkpoint and image: logits (classify --json; also of
//    two demo DICOM files, RLE and baseline JPEG, decoded in the page as well) and the
//    raw map of each tested method (saliency --raw-out).
// 2. Serves web/ on 127.0.0.1 and opens index.html?test=... in Chromium, driven through the
//    DevTools protocol (Node's built-in WebSocket; no npm package), and waits in real time for
//    the page to report that it is done.
// 3. Asserts that the browser's logits and maps equal the native ones: max |browser − native|
//    at most 1e-4 of max |native| (relative to each tensor's scale, so values near zero are
//    not held to a tolerance below float rounding).
// 4. Saves a screenshot of the page with its overlay, and the browser's console, in DIR.
// 5. The slide viewer (slide.html) on a generated slide explained by `gradlens slide`: it
//    opens the pyramids at their size, fits, zooms to full size on the most probable tissue
//    tile and shows that tile's line of tiles.jsonl when clicked; screenshot slide.png in DIR.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "../serve.mjs";
import { commandLine, launchBrowser } from "./browser.mjs";

const TOLERANCE = 1e-4;
// Gradient-based maps, compared exactly; perturbation also runs, to show it works in a browser.
const COMPARED = ["gradcam", "gradient"];
const METHODS = ["perturbation", ...COMPARED];
const PAGE_TIMEOUT_MS = Number(process.env.GRADLENS_E2E_PAGE_TIMEOUT_S ?? 300) * 1000;
const BIG_ARCH = "resnet50";

const webDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { outDir, gradlens, chromium } = commandLine();

const weights = join(webDir, "demo/lesions.safetensors");
const image = join(webDir, "demo/lesion.png");

function fail(message) {
  console.error(`web e2e: FAILED: ${message}`);
  process.exit(1);
}

// ---- 1. The native build's answers -------------------------------------------------------

function readSafetensor(path, name) {
  const bytes = readFileSync(path);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8"));
  const entry = header[name];
  if (!entry || entry.dtype !== "F32") fail(`${path} holds no f32 tensor ${name}`);
  const [start, end] = entry.data_offsets;
  const data = bytes.subarray(8 + headerLength + start, 8 + headerLength + end);
  return Array.from(new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length)));
}

const scratch = mkdtempSync(join(tmpdir(), "gradlens-e2e-"));
const classified = JSON.parse(execFileSync(gradlens, ["classify", image, "--weights", weights, "--json"], { encoding: "utf8" }));
const native = { logits: classified.results[0].logits, maps: {}, dicom: {} };
for (const name of ["scan_rle.dcm", "scan_jpeg.dcm"]) {
  const file = join(webDir, "demo", name);
  const answer = JSON.parse(execFileSync(gradlens, ["classify", file, "--weights", weights, "--json"], { encoding: "utf8" }));
  native.dicom[name] = answer.results[0].logits;
}
const demo = (name) => join(webDir, "demo", name);
const classifyNative = (...args) =>
  JSON.parse(execFileSync(gradlens, ["classify", ...args, "--weights", weights, "--json"], { encoding: "utf8" })).results[0].logits;
native.dicomWindow = classifyNative(demo("scan_rle.dcm"), "--window", "1000,800");
native.cineFrame2 = classifyNative(demo("cine.dcm"), "--frame", "2");
for (const method of COMPARED) {
  const raw = join(scratch, `${method}.safetensors`);
  execFileSync(gradlens, ["saliency", image, "--weights", weights, "--method", method, "--raw-out", raw], { stdio: "ignore" });
  native.maps[method] = readSafetensor(raw, "saliency");
}

const slideOut = join(scratch, "slide-out");
const slideFile = join(scratch, "slide.tif");
execFileSync(gradlens, ["synthetic-slide", slideFile, "--width", "3072", "--height", "2304", "--levels", "3", "--sections", "8", "--seed", "3"], { stdio: "ignore" });
execFileSync(gradlens, ["slide", slideFile, "--weights", weights, "--out", slideOut, "--tile", "128", "--downsample", "1", "--class", "lesion"], { stdio: "ignore" });
const slideSummary = JSON.parse(readFileSync(join(slideOut, "slide.json"), "utf8"));
const slideLines = readFileSync(join(slideOut, "tiles.jsonl"), "utf8").trim().split("\n").map((line) => JSON.parse(line));

// ---- 2. The page in Chromium ---------------------------------------------------------------

const server = await serve(0, slideOut);
const url = `http://127.0.0.1:${server.address().port}/index.html?test=${METHODS.join(",")}`;

const { send, consoleLines, openTab, waitFor, close } = await launchBrowser(chromium);
const cleanUp = async () => {
  await close();
  server.close();
  rmSync(scratch, { recursive: true, force: true });
};

// Opens `pageUrl` in a new tab (running `beforeLoad` in it first, if given), waits in real
// time until the page sets window.gradlensTest.done, and returns that object and the tab.
async function runPage(pageUrl, beforeLoad) {
  const sessionId = await openTab(pageUrl, beforeLoad);
  const json = await waitFor(sessionId, "window.gradlensTest?.done ? JSON.stringify(window.gradlensTest) : null",
    PAGE_TIMEOUT_MS, pageUrl);
  return { result: JSON.parse(json), sessionId };
}

let test;
let withoutWebGpu;
let big;
let slideView;
const started = Date.now();
try {
  const page = await runPage(url);
  test = page.result;
  const shot = await send("Page.captureScreenshot", { format: "png", captureBeyondViewport: true }, page.sessionId);
  writeFileSync(join(outDir, "page.png"), Buffer.from(shot.data, "base64"));
  // A browser without WebGPU must get a message on the page, not a blank one.
  withoutWebGpu = (await runPage(url, "delete Navigator.prototype.gpu;")).result;
  // A full-size model: ImageNet ResNet-50 (random weights) at 224 under the browser's limits.
  big = (await runPage(url.replace(/\?.*/, `?big=${BIG_ARCH}`))).result;
  const slidePage = await runPage(url.replace(/index\.html\?.*/, "slide.html?dir=/slide/&test=1"));
  slideView = slidePage.result;
  const slideShot = await send("Page.captureScreenshot", { format: "png", captureBeyondViewport: true }, slidePage.sessionId);
  writeFileSync(join(outDir, "slide.png"), Buffer.from(slideShot.data, "base64"));
} catch (error) {
  writeFileSync(join(outDir, "console.txt"), consoleLines.join("\n"));
  await cleanUp();
  fail(`${error.message}\nbrowser console:\n${consoleLines.join("\n")}`);
}
writeFileSync(join(outDir, "console.txt"), consoleLines.join("\n"));
await cleanUp();

// ---- 3. Browser against native ---------------------------------------------------------------

if (test.error) fail(`the page reported: ${test.error}\nbrowser console:\n${consoleLines.join("\n")}`);
if (!/no WebGPU/.test(withoutWebGpu.error ?? "")) {
  fail(`without navigator.gpu the page said ${JSON.stringify(withoutWebGpu.error)}, not that WebGPU is missing`);
}
console.log(`web e2e: without WebGPU the page says: ${withoutWebGpu.error}`);
if (!/broken\.png/.test(test.brokenImage)) fail(`a broken image gave ${JSON.stringify(test.brokenImage)}, not an error naming it`);
console.log(`web e2e: a broken image is refused: ${test.brokenImage}`);
console.log(`web e2e: adapter ${test.adapter.adapter} (storage bindings ${test.adapter.max_storage_binding_mib} MiB, ` +
  `buffers ${test.adapter.max_buffer_mib} MiB, timestamps ${test.adapter.timestamps}); the pages finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);

function compare(what, browserValues, nativeValues) {
  if (browserValues.length !== nativeValues.length) fail(`${what}: ${browserValues.length} values in the browser, ${nativeValues.length} natively`);
  const scale = Math.max(...nativeValues.map(Math.abs));
  if (!(scale > 0)) fail(`${what}: the native values are all zero; nothing to compare`);
  const worst = Math.max(...browserValues.map((v, i) => Math.abs(v - nativeValues[i])));
  const relative = worst / scale;
  console.log(`web e2e: ${what}: ${nativeValues.length} values, max |browser − native| = ${worst.toExponential(2)} = ${relative.toExponential(2)} of max |native|`);
  if (!(relative <= TOLERANCE)) fail(`${what} differs by ${relative.toExponential(2)} of its scale (tolerance ${TOLERANCE})`);
}

for (const [name, logits] of Object.entries(native.dicom)) compare(`logits of ${name}`, test.dicom[name], logits);
compare("logits of scan_rle.dcm with the window 1000,800", test.dicomWindow, native.dicomWindow);
if (test.cineFrames !== 3) fail(`the page counted ${test.cineFrames} frames in cine.dcm, not 3`);
compare("logits of cine.dcm's frame 2", test.cineFrame2, native.cineFrame2);
// The page's Secondary Captures: DICOM files the native build reads, the patient's identifier
// kept, or gone when anonymised.
for (const [kind, bytes] of Object.entries(test.captures)) {
  const file = join(outDir, `capture_${kind}.dcm`);
  writeFileSync(file, Buffer.from(bytes));
  classifyNative(file);
  const holdsId = Buffer.from(bytes).includes("GL-0001");
  if (holdsId !== (kind === "kept")) fail(`the ${kind} Secondary Capture ${holdsId ? "holds" : "lacks"} the patient ID`);
}
console.log(`web e2e: DICOM in the page: a window and frame 2 of 3 as the native --window and --frame read them; ` +
  `Secondary Captures (${test.captures.kept.length} bytes) the native build reads, anonymised without the patient ID`);
for (const method of COMPARED) {
  const result = test.results[method];
  compare(`logits (${method} run)`, result.logits, native.logits);
  compare(`${method} map`, result.map, native.maps[method]);
}
const perturbation = test.results.perturbation;
if (!perturbation || perturbation.map.length !== perturbation.width * perturbation.height || !perturbation.map.some((v) => v > 0)) {
  fail("meaningful perturbation returned no map in the browser");
}
if (big.error) fail(`${BIG_ARCH} in the browser: ${big.error}`);
const bigResult = big.results.gradient;
if (bigResult.width !== 224 || bigResult.mapLength !== 224 * 224 || !bigResult.mapFinite || !bigResult.logitsFinite || bigResult.mapNonZero < 224 * 224 / 2) {
  fail(`${BIG_ARCH} in the browser gave ${JSON.stringify({ ...bigResult, summary: undefined })}`);
}
console.log(`web e2e: ${BIG_ARCH} (random weights, ${big.model.parameters.toLocaleString()} parameters) at 224: ` +
  `classified in ${bigResult.summary.classify_ms.toFixed(0)} ms, gradient in ${bigResult.summary.method_ms.toFixed(0)} ms (kernels timed one by one)`);
for (const method of METHODS) {
  const summary = test.results[method].summary;
  console.log(`web e2e: ${method}: ${summary.method_ms.toFixed(0)} ms in the browser` +
    (summary.kernels ? `, ${summary.kernels.length} kernels timed` : ", no timestamp queries"));
}

// ---- 5. The slide viewer ---------------------------------------------------------------------

if (slideView.error) fail(`the slide viewer reported: ${slideView.error}`);
const [pyramidWidth, pyramidHeight] = slideSummary.pyramid_size;
if (slideView.width !== pyramidWidth || slideView.height !== pyramidHeight) {
  fail(`the slide viewer opened ${slideView.width}×${slideView.height}, not the ${pyramidWidth}×${pyramidHeight} pyramid`);
}
if (slideView.failed !== 0) fail(`the slide viewer failed to load ${slideView.failed} tiles`);
if (!(slideView.fitted.level < slideView.maxLevel && slideView.fitted.drawn > 0)) {
  fail(`fitted, the viewer drew ${JSON.stringify(slideView.fitted)} (a coarse level expected)`);
}
if (!(slideView.zoomed.level === slideView.maxLevel && slideView.zoomed.drawn > 0)) {
  fail(`at full size, the viewer drew ${JSON.stringify(slideView.zoomed)} (level ${slideView.maxLevel} expected)`);
}
const clickedLine = slideLines.find((line) => line.x === slideView.target.x && line.y === slideView.target.y);
if (!slideView.clicked || slideView.clicked.x !== clickedLine.x || slideView.clicked.y !== clickedLine.y ||
    JSON.stringify(slideView.clicked.probabilities) !== JSON.stringify(clickedLine.probabilities)) {
  fail(`clicking the centre showed ${JSON.stringify(slideView.clicked)}, not the tile at (${clickedLine.x}, ${clickedLine.y})`);
}
console.log(`web e2e: slide viewer: ${pyramidWidth}×${pyramidHeight} pyramid (${slideSummary.tissue_tiles} of ${slideSummary.tiles} tiles explained), ` +
  `fitted at level ${slideView.fitted.level} (${slideView.fitted.drawn} tiles), full size at level ${slideView.zoomed.level} ` +
  `(${slideView.zoomed.drawn} tiles); the clicked tile's line matches; screenshot ${join(outDir, "slide.png")}`);
console.log(`web e2e: passed; screenshot ${join(outDir, "page.png")}`);
process.exit(0);
