#!/usr/bin/env bash
# The whole test suite (README.md's test command runs it after the set-up scripts): the native
# tests; the kernel tests again on a context that folds small grids, and on one that chooses
# kernels as for a GPU; and the browser front end end to end in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo test --release
# At most 64 workgroups per grid dimension (tests/common/mod.rs): every launch of more takes
# the 2-D grid fold that otherwise only tensors of millions of elements reach. The matmul
# kernels tile M and N over two grid dimensions and refuse a grid beyond the limit instead of
# folding, so their tests are not among these.
GRADLENS_TEST_MAX_WORKGROUPS=64 cargo test --release --test elementwise --test conv2d \
    --test pool --test batchnorm --test concat --test reduce_softmax --test layers \
    --test optim --test autograd --test finite --test roofline --test occlusion \
    --test score_cam --test attribution --test cam --test perturbation
# Kernels chosen as for a discrete GPU: the variants `Auto` picks only there (a workgroup per
# column of a few-row product; K split on adapters without 8-lane subgroups) run here and are
# checked against the references and PyTorch's numbers.
GRADLENS_TEST_CHOOSE_AS=gpu cargo test --release --test matmul --test layers --test autograd \
    --test parity
bash web/test.sh
