#!/usr/bin/env bash
# Builds the browser front: web/pkg/ (gradlens_web.js and its .wasm) beside web/index.html.
# Needs the wasm32-unknown-unknown target and wasm-bindgen-cli at Cargo.lock's wasm-bindgen
# version (tools/setup_web.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --profile web --target wasm32-unknown-unknown -p gradlens-web
target_dir=$(cargo metadata --format-version 1 --no-deps | node -e \
  'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).target_directory))')
wasm-bindgen --target web --no-typescript --out-dir web/pkg \
  "$target_dir/wasm32-unknown-unknown/web/gradlens_web.wasm"
echo "web/pkg: $(wc -c < web/pkg/gradlens_web_bg.wasm) bytes of wasm; serve web/ and open index.html"
