// The whole-slide viewer: a folder written by `gradlens slide` (slide.dzi, heatmap.dzi and their
// tiles, slide.json, tiles.jsonl) drawn on a canvas that pans and zooms, the heat map over the
// slide. Tiles are fetched only when in view, from the level whose pixels are at least as fine
// as the screen's; coarser levels fill in while they load.
//
// The folder comes from a directory picker (read as blobs: nothing leaves the computer) or, for
// web/e2e/test.mjs, from `?dir=PATH` on this page's own origin; `?test=1` then runs a scripted
// look (fit, zoom on a tissue tile, click it) and leaves what it saw in window.gradlensTest.

const $ = (id) => document.getElementById(id);
const canvas = $("view");
const context = canvas.getContext("2d");
const heatLayer = document.createElement("canvas");
const statusBox = $("status");

function setStatus(text, state = "busy") {
  statusBox.textContent = text;
  statusBox.dataset.state = state;
}

// ---- Sources: where the folder's files come from --------------------------------------------

// Files picked with the directory input, by their path below the folder picked.
function pickedFolder(files) {
  const byPath = new Map();
  for (const file of files) byPath.set(file.webkitRelativePath.split("/").slice(1).join("/"), file);
  const urls = new Map();
  return {
    url(path) {
      if (!byPath.has(path)) return null;
      if (!urls.has(path)) urls.set(path, URL.createObjectURL(byPath.get(path)));
      return urls.get(path);
    },
    async text(path) {
      const file = byPath.get(path);
      if (!file) throw new Error(`the folder holds no ${path}: is it a gradlens slide output?`);
      return file.text();
    },
  };
}

// A folder on this page's origin.
function servedFolder(dir) {
  const base = dir.replace(/\/?$/, "/");
  return {
    url: (path) => base + path,
    async text(path) {
      const response = await fetch(base + path);
      if (!response.ok) throw new Error(`${base + path}: HTTP ${response.status}`);
      return response.text();
    },
  };
}

// ---- Pyramids ---------------------------------------------------------------------------------

function parseDzi(text, name) {
  const image = new DOMParser().parseFromString(text, "application/xml").querySelector("Image");
  const size = image?.querySelector("Size");
  if (!image || !size) throw new Error(`${name}.dzi is not a Deep Zoom descriptor`);
  const width = Number(size.getAttribute("Width"));
  const height = Number(size.getAttribute("Height"));
  const maxLevel = Math.ceil(Math.log2(Math.max(width, height)));
  return {
    name,
    width,
    height,
    maxLevel,
    tileSize: Number(image.getAttribute("TileSize")),
    overlap: Number(image.getAttribute("Overlap")),
    format: image.getAttribute("Format"),
    images: new Map(),
  };
}

let source = null;
let slide = null;
let heat = null;
let summary = null;
let tiles = new Map(); // "x,y" in the level read → the tile's JSON line
const view = { scale: 1, left: 0, top: 0, fitScale: 1 };
let pending = 0;
let failed = 0;
let idleWaiters = [];
let drawQueued = false;

function levelScale(pyramid, level) {
  return 2 ** (level - pyramid.maxLevel);
}

// The coarsest level whose pixels are at least as fine as the screen's at this scale.
function levelFor(pyramid, scale) {
  // The canvas is in device pixels already (resizeCanvas), and so is the scale.
  const wanted = pyramid.maxLevel + Math.ceil(Math.log2(scale));
  return Math.min(pyramid.maxLevel, Math.max(0, wanted));
}

// The tile's image if loaded; otherwise starts loading it and returns null.
function tileImage(pyramid, level, column, row) {
  const key = `${level}/${column}_${row}`;
  const known = pyramid.images.get(key);
  if (known) return known.complete && known.naturalWidth > 0 ? known : null;
  const url = source.url(`${pyramid.name}_files/${key}.${pyramid.format}`);
  if (!url) return null;
  const image = new Image();
  pending += 1;
  image.onload = () => { pending -= 1; requestDraw(); };
  image.onerror = () => { pending -= 1; failed += 1; requestDraw(); };
  image.src = url;
  pyramid.images.set(key, image);
  return null;
}

// Draws the level's tiles in view onto `target`; with `clear`, each tile's area is cleared first
// (the heat's finer tiles replace coarser ones, transparent pixels included). Returns how many
// tiles were drawn.
function drawLevel(target, pyramid, level, clear) {
  const s = levelScale(pyramid, level);
  const span = pyramid.tileSize / s; // a tile's side in full-size pixels
  const columns = Math.ceil(Math.ceil(pyramid.width * s) / pyramid.tileSize);
  const rows = Math.ceil(Math.ceil(pyramid.height * s) / pyramid.tileSize);
  const right = view.left + canvas.width / view.scale;
  const bottom = view.top + canvas.height / view.scale;
  let drawn = 0;
  for (let row = Math.max(0, Math.floor(view.top / span)); row < Math.min(rows, Math.ceil(bottom / span)); row++) {
    for (let column = Math.max(0, Math.floor(view.left / span)); column < Math.min(columns, Math.ceil(right / span)); column++) {
      const image = tileImage(pyramid, level, column, row);
      if (!image) continue;
      const x0 = Math.round((column * span - view.left) * view.scale);
      const y0 = Math.round((row * span - view.top) * view.scale);
      const x1 = Math.round((column * span + image.naturalWidth / s - view.left) * view.scale);
      const y1 = Math.round((row * span + image.naturalHeight / s - view.top) * view.scale);
      if (clear) target.clearRect(x0, y0, x1 - x0, y1 - y0);
      target.drawImage(image, x0, y0, x1 - x0, y1 - y0);
      drawn += 1;
    }
  }
  return drawn;
}

let lastDraw = { level: 0, drawn: 0 };

function draw() {
  drawQueued = false;
  if (!slide) return;
  context.fillStyle = "#f2f1ef";
  context.fillRect(0, 0, canvas.width, canvas.height);
  const level = levelFor(slide, view.scale);
  let drawn = 0;
  for (let l = Math.max(0, level - 4); l <= level; l++) drawn = drawLevel(context, slide, l, false);
  if ($("heat-on").checked && heat) {
    heatLayer.width = canvas.width;
    heatLayer.height = canvas.height;
    const layer = heatLayer.getContext("2d");
    for (let l = Math.max(0, level - 4); l <= level; l++) drawLevel(layer, heat, l, true);
    context.globalAlpha = Number($("opacity").value);
    context.drawImage(heatLayer, 0, 0);
    context.globalAlpha = 1;
  }
  lastDraw = { level, drawn };
  const shown = view.scale * (summary?.downsample ?? 1);
  $("scale").textContent = `level ${level} of ${slide.maxLevel}; ${(shown * 100).toFixed(shown < 0.1 ? 2 : 1)}% of the pixels read`;
  if (pending === 0) {
    const waiters = idleWaiters;
    idleWaiters = [];
    waiters.forEach((resolve) => resolve());
  }
}

// At the next frame, or after 50 ms where no frame comes (a hidden or background tab), so that
// tiles still load and the scripted look still ends.
function requestDraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => drawQueued && draw());
  setTimeout(() => drawQueued && draw(), 50);
}

// Resolves once a draw finds no tile still loading.
function whenIdle() {
  return new Promise((resolve) => { idleWaiters.push(resolve); requestDraw(); });
}

function resizeCanvas() {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(canvas.clientWidth * ratio);
  canvas.height = Math.round(canvas.clientHeight * ratio);
}

function fit() {
  resizeCanvas();
  view.fitScale = Math.min(canvas.width / slide.width, canvas.height / slide.height);
  view.scale = view.fitScale;
  view.left = -(canvas.width / view.scale - slide.width) / 2;
  view.top = -(canvas.height / view.scale - slide.height) / 2;
  requestDraw();
}

// Zooms by `factor` keeping the canvas point (x, y) over the same slide point.
function zoomAt(factor, x, y) {
  const scale = Math.min(8, Math.max(view.fitScale / 2, view.scale * factor));
  view.left += x / view.scale - x / scale;
  view.top += y / view.scale - y / scale;
  view.scale = scale;
  requestDraw();
}

// Centres the full-size point (x, y) at `scale`.
function zoomTo(x, y, scale) {
  view.scale = scale;
  view.left = x - canvas.width / scale / 2;
  view.top = y - canvas.height / scale / 2;
  requestDraw();
}

// ---- The tiles' results ------------------------------------------------------------------------

// The tile under the canvas point (x, y), shown in the table; returns its line or null.
function showTileAt(x, y) {
  const downsample = summary.downsample;
  const levelX = (view.left + x / view.scale) * downsample;
  const levelY = (view.top + y / view.scale) * downsample;
  const key = `${Math.floor(levelX / summary.tile) * summary.tile},${Math.floor(levelY / summary.tile) * summary.tile}`;
  const line = tiles.get(key) ?? null;
  const table = $("tile");
  if (!line) {
    table.innerHTML = `<tr><td class="muted">no tissue tile at (${Math.round(levelX)}, ${Math.round(levelY)}) of level ${summary.level}</td></tr>`;
    return null;
  }
  const rows = Object.entries(line.probabilities)
    .sort((a, b) => b[1] - a[1])
    .map(([name, p]) => `<tr><td>${escapeHtml(name)}</td><td class="num">${(p * 100).toFixed(2)}%</td></tr>`);
  table.innerHTML = `<tr><th colspan="2">tile at (${line.x}, ${line.y}), ${(line.tissue * 100).toFixed(0)}% tissue</th></tr>` +
    `<tr><th>class</th><th>probability</th></tr>${rows.join("")}`;
  return line;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function open(from) {
  source = from;
  setStatus("Reading the folder…");
  summary = JSON.parse(await source.text("slide.json"));
  slide = parseDzi(await source.text("slide.dzi"), "slide");
  heat = parseDzi(await source.text("heatmap.dzi"), "heatmap");
  if (slide.width !== heat.width || slide.height !== heat.height) {
    throw new Error(`slide.dzi is ${slide.width}×${slide.height} but heatmap.dzi ${heat.width}×${heat.height}`);
  }
  tiles = new Map();
  for (const line of (await source.text("tiles.jsonl")).split("\n")) {
    if (!line.trim()) continue;
    const tile = JSON.parse(line);
    tiles.set(`${tile.x},${tile.y}`, tile);
  }
  const name = summary.slide.split(/[\\/]/).pop();
  $("summary").innerHTML =
    `${escapeHtml(name)}: level ${summary.level} (${summary.level_size.join("×")}), tiles of ${summary.tile}; ` +
    `${summary.tissue_tiles} of ${summary.tiles} tiles held tissue, explained by ${escapeHtml(summary.method)}` +
    (summary.class === null ? " for each tile's own top class" : ` for “${escapeHtml(summary.class_name)}”`) +
    ` in ${summary.seconds.toFixed(1)} s (${summary.tissue_tiles_per_second.toFixed(1)} tiles/s). Click a tile for its probabilities.`;
  fit();
  setStatus(`${name}: drag to pan, scroll to zoom; the heat is the map's magnitude times the class's probability.`, "done");
}

// ---- Controls ----------------------------------------------------------------------------------

$("folder").addEventListener("change", (event) => {
  open(pickedFolder(event.target.files)).catch((error) => setStatus(error.message, "error"));
});
$("opacity").addEventListener("input", requestDraw);
$("heat-on").addEventListener("change", requestDraw);
$("zoom-in").addEventListener("click", () => zoomAt(2, canvas.width / 2, canvas.height / 2));
$("zoom-out").addEventListener("click", () => zoomAt(0.5, canvas.width / 2, canvas.height / 2));
$("fit").addEventListener("click", () => slide && fit());
window.addEventListener("resize", () => slide && (resizeCanvas(), requestDraw()));

const canvasPoint = (event) => {
  const box = canvas.getBoundingClientRect();
  const ratio = canvas.width / box.width;
  return [(event.clientX - box.left) * ratio, (event.clientY - box.top) * ratio];
};
let drag = null;
canvas.addEventListener("pointerdown", (event) => {
  if (!slide) return;
  drag = { x: event.clientX, y: event.clientY, moved: false };
  canvas.setPointerCapture(event.pointerId);
  canvas.classList.add("dragging");
});
canvas.addEventListener("pointermove", (event) => {
  if (!drag) return;
  const ratio = canvas.width / canvas.getBoundingClientRect().width;
  const [dx, dy] = [event.clientX - drag.x, event.clientY - drag.y];
  if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
  view.left -= (dx * ratio) / view.scale;
  view.top -= (dy * ratio) / view.scale;
  drag.x = event.clientX;
  drag.y = event.clientY;
  requestDraw();
});
canvas.addEventListener("pointerup", (event) => {
  if (drag && !drag.moved) showTileAt(...canvasPoint(event));
  drag = null;
  canvas.classList.remove("dragging");
});
canvas.addEventListener("wheel", (event) => {
  if (!slide) return;
  event.preventDefault();
  zoomAt(event.deltaY < 0 ? 1.25 : 0.8, ...canvasPoint(event));
}, { passive: false });

// ---- Scripted look for the end-to-end test -----------------------------------------------------

async function scriptedLook() {
  await whenIdle();
  const fitted = { ...lastDraw, scale: view.scale };
  // The tissue tile with the highest probability of the class explained (or of any class),
  // at the pyramid's full size.
  const best = [...tiles.values()].reduce((a, b) => (Math.max(...Object.values(b.probabilities)) > Math.max(...Object.values(a.probabilities)) ? b : a));
  const centre = [(best.x + best.width / 2) / summary.downsample, (best.y + best.height / 2) / summary.downsample];
  zoomTo(centre[0], centre[1], 1);
  await whenIdle();
  const zoomed = { ...lastDraw, scale: view.scale };
  const clicked = showTileAt(canvas.width / 2, canvas.height / 2);
  // Back out to a view of the tissue around it, for the screenshot.
  zoomTo(centre[0], centre[1], 0.45);
  await whenIdle();
  return {
    done: true,
    width: slide.width,
    height: slide.height,
    maxLevel: slide.maxLevel,
    fitted,
    zoomed,
    target: { x: best.x, y: best.y },
    clicked: clicked && { x: clicked.x, y: clicked.y, probabilities: clicked.probabilities },
    failed,
  };
}

const params = new URLSearchParams(location.search);
if (params.has("dir")) {
  open(servedFolder(params.get("dir")))
    .then(async () => {
      if (params.has("test")) window.gradlensTest = await scriptedLook();
    })
    .catch((error) => {
      setStatus(error.message, "error");
      window.gradlensTest = { done: true, error: error.message };
    });
}
