#!/usr/bin/env bash
# Installs what gradlens needs to run on a machine without a GPU: Mesa's lavapipe (Vulkan on the
# CPU). On Debian 12 (bookworm) it takes Mesa 25 from bookworm-backports when it can: its
# lavapipe runs gradlens's kernels 2-5x faster than bookworm's Mesa 22.3 (BENCHMARKS.md).
# Safe to run again; does nothing when a Vulkan driver is already installed and current.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v apt-get >/dev/null; then
  echo "setup: not a Debian-like system; install a Vulkan driver (or Mesa's lavapipe) yourself" >&2
  exit 0
fi

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
backports=/etc/apt/sources.list.d/gradlens-backports.list
if [ "$codename" = bookworm ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" | as_root tee "$backports" >/dev/null
fi

as_root apt-get update -qq
if [ "$codename" = bookworm ] &&
  as_root apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null; then
  echo "setup: Mesa's Vulkan drivers from bookworm-backports installed"
else
  as_root apt-get install -y -qq mesa-vulkan-drivers >/dev/null
  echo "setup: Mesa's Vulkan drivers installed"
fi
