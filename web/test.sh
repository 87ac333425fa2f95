#!/usr/bin/env bash
# The browser front's end-to-end tests: builds web/pkg, then in headless Chromium (SwiftShader's
# WebGPU) web/e2e/test.mjs compares the page's logits and saliency maps with the native build's,
# and web/e2e/fine_tune.mjs fine-tunes through train.html and checks the export natively.
# The screenshot and the browser console land in $GRADLENS_WEB_ARTIFACTS (default
# target/web-e2e). Needs tools/setup_web.sh's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
bash web/build.sh
cargo build --release --bin gradlens
target_dir=$(cargo metadata --format-version 1 --no-deps | node -e \
  'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).target_directory))')
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
node --experimental-websocket web/e2e/test.mjs \
  --gradlens "$target_dir/release/gradlens" \
  --out "${GRADLENS_WEB_ARTIFACTS:-$target_dir/web-e2e}"
node --experimental-websocket web/e2e/fine_tune.mjs \
  --gradlens "$target_dir/release/gradlens" \
  --out "${GRADLENS_WEB_ARTIFACTS:-$target_dir/web-e2e}"
