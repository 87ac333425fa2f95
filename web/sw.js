// Keeps the page working offline once it has loaded: its files, the wasm and the demo files are
// cached at install, and every request to this folder falls back to the cache when the network
// (the server the page came from) is gone. Nothing is fetched from anywhere else.
const CACHE = "gradlens-page";
const FILES = [
  "./",
  "index.html",
  "app.js",
  "slide.html",
  "slide.js",
  "train.html",
  "train.js",
  "train_worker.js",
  "pkg/gradlens_web.js",
  "pkg/gradlens_web_bg.wasm",
  "demo/lesions.safetensors",
  "demo/lesion.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(FILES)));
});

self.addEventListener("fetch", (event) => {
  if (new URL(event.request.url).origin !== self.location.origin) return;
  // Network first, so a rebuilt page is picked up; the cache when offline.
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        const copy = response.clone();
        caches.open(CACHE).then((cache) => cache.put(event.request, copy));
        return response;
      })
      .catch(() => caches.match(event.request).then((cached) => cached ?? Response.error())),
  );
});
