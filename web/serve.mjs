// A static server for web/ on 127.0.0.1 (the page needs http://, not file://, for its module
// and .wasm): `node web/serve.mjs [port] [DIR]`, then open the address it prints; with DIR (a
// `gradlens slide` output), slide.html?dir=/slide/ shows it. The end-to-end test imports
// `serve` too.

import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { dirname, extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const WEB_DIR = dirname(fileURLToPath(import.meta.url));
const TYPES = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".wasm": "application/wasm",
  ".png": "image/png",
  ".jpeg": "image/jpeg",
  ".dzi": "application/xml",
  ".json": "application/json",
  ".jsonl": "application/jsonl",
};

/// Serves web/ on 127.0.0.1:`port` (0: any free port), and `slideDir`, if given, under /slide/;
/// resolves to the listening server. `server.requests` records every request (method, path and
/// query, and the bytes of its body), so that a test can check what a page sent.
export function serve(port = 0, slideDir = null) {
  const requests = [];
  const server = createServer((request, response) => {
    const record = { method: request.method, url: request.url, bodyBytes: 0 };
    requests.push(record);
    request.on("data", (chunk) => { record.bodyBytes += chunk.length; });
    const requested = decodeURIComponent(new URL(request.url, "http://x").pathname);
    const [root, below] = slideDir && requested.startsWith("/slide/")
      ? [resolve(slideDir), requested.slice("/slide".length)]
      : [WEB_DIR, requested];
    const path = resolve(root, "." + below);
    if (path !== root && !path.startsWith(root + sep)) return response.writeHead(403).end();
    try {
      const file = path === WEB_DIR || path.endsWith(sep) ? join(path, "index.html") : path;
      const body = readFileSync(file);
      response.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  server.requests = requests;
  return new Promise((ok) => server.listen(port, "127.0.0.1", () => ok(server)));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const server = await serve(Number(process.argv[2] ?? 8000), process.argv[3] ?? null);
  console.log(`gradlens page: http://127.0.0.1:${server.address().port}/`);
}
