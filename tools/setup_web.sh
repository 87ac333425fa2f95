#!/usr/bin/env bash
# Installs what the browser front's build and end-to-end test need (web/build.sh, web/test.sh):
# the wasm32-unknown-unknown target, wasm-bindgen-cli at exactly Cargo.lock's wasm-bindgen
# version, Debian's Chromium, and Node.js (on the machine already here; installed if missing).
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

rustup target add wasm32-unknown-unknown

# The CLI must match the wasm-bindgen crate the .wasm was built with. `--locked` fails on this
# registry (a dependency's yanked version), so it is installed without.
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
  cargo install wasm-bindgen-cli --version "$version"
fi

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The end-to-end test drives Chromium over Node's built-in WebSocket (Node 20.10 or later with
# --experimental-websocket; Node 22 has it by default). Debian 12's own nodejs is 18: too old.
if ! node --experimental-websocket -e 'if (typeof WebSocket !== "function") process.exit(1)' 2>/dev/null; then
  echo "setup_web: node $(node --version) has no built-in WebSocket; web/test.sh needs Node 20.10 or later" >&2
  exit 1
fi
echo "setup_web: $(wasm-bindgen --version), $(chromium --version 2>/dev/null), node $(node --version)"
