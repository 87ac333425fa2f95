#!/usr/bin/env python3
"""Measures issue 24's targets in one run: gradlens and PyTorch side by side on the same
machine, and prints each ratio beside its target.

    python tools/compare.py --device cpu     # lavapipe against PyTorch on 2 CPU threads
    python tools/compare.py --device cuda    # a real GPU against PyTorch CUDA (TF32 off)

It builds gradlens (`cargo build --release`, unless --no-build), then runs
`gradlens bench --json` and tools/compare_pytorch.py on each workload, `cargo bench --bench
kernels` for the matmul, and `gradlens bench --roofline` for the adapter's fp32 peak. Every
figure is a median of --runs timed runs after a warm-up (the benches' own rule). The last line
is one JSON object with every figure, for BENCHMARKS.md; --out writes it to a file too.

Needs torch and torchvision in the Python that runs it; gradlens itself never runs Python.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRADLENS = ROOT / "target" / "release" / "gradlens"


# Whether a row met its target; "-" for a row without one.
VERDICT = {True: "yes", False: "NO", None: "-"}


def run(command, env=None):
    """stdout of `command`; its stderr passes through, a failure stops the script."""
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        sys.exit(f"compare: {' '.join(map(str, command))} exited with {done.returncode}")
    return done.stdout


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def gradlens_bench(arch, batch, size, runs, *flags, env=None):
    command = [GRADLENS, "bench", "--arch", arch, "--batch", str(batch), "--size", str(size)]
    command += ["--runs", str(runs), "--json", *flags]
    return last_json(run(command, env))


def pytorch_bench(arch, batch, size, runs, device, threads, *flags):
    command = [sys.executable, ROOT / "tools" / "compare_pytorch.py", "--arch", arch]
    command += ["--batch", str(batch), "--size", str(size), "--runs", str(runs)]
    command += ["--device", device, "--threads", str(threads), *flags]
    return last_json(run(command))


def matmul_gflops(size):
    """GFLOP/s of `cargo bench --bench kernels -- matmul/SIZE$`, from its summary line."""
    stdout = run(["cargo", "bench", "--bench", "kernels", "--", f"^matmul/{size}$"])
    found = re.search(rf"^\s*{size}: ([0-9.]+) GFLOP/s", stdout, re.MULTILINE)
    if not found:
        sys.exit(f"compare: no matmul/{size} summary line in the kernels bench")
    return float(found.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="PyTorch's CPU threads")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not args.no_build:
        run(["cargo", "build", "--release"])
    on_gpu = args.device == "cuda"
    rows = []  # (what, gradlens, pytorch or None, unit, target text, met or None)
    figures = {"device": args.device}

    def versus(name, arch, batch, size, key, limit, *flags):
        """One workload on both sides; `limit` is issue 24's ratio target, None for none."""
        ours = gradlens_bench(arch, batch, size, args.runs, *flags)
        theirs = pytorch_bench(arch, batch, size, args.runs, args.device, args.threads, *flags)
        ratio = ours[f"{key}_ms"] / theirs[f"{key}_ms"]
        target = "-" if limit is None else f"≤ {limit}×"
        met = None if limit is None else ratio <= limit
        rows.append((name, ours[f"{key}_ms"], theirs[f"{key}_ms"], "ms", target, met))
        figures[name] = {"gradlens": ours, "pytorch": theirs, "ratio": ratio}
        return ours

    if on_gpu:
        versus("resnet50 b1 forward", "resnet50", 1, 224, "forward", 1.0)
        versus("resnet50 b32 fwd+bwd (train step)", "resnet50", 32, 224, "train_step", 1.5,
               "--train")
        versus("resnet18 b8 train step", "resnet18", 8, 224, "train_step", 1.5, "--train")
        # No target: how DenseNet's training (no per-layer concatenation) compares on a GPU.
        versus("densenet121 b8 train step", "densenet121", 8, 224, "train_step", None, "--train")
        peaks = gradlens_bench("resnet18", 1, 32, 5, "--roofline",
                               os.path.join(tempfile.gettempdir(), "compare_roofline.svg"))
        peak = peaks["roofline"]["peaks"]["gflops_per_s"]
        achieved = matmul_gflops(4096)
        rows.append(("matmul 4096³ (of fma_chain peak)", achieved, peak, "GFLOP/s",
                     "≥ 50% of peak", achieved >= 0.5 * peak))
        figures["matmul_4096"] = {"gflops_per_s": achieved, "peak_gflops_per_s": peak}
    else:
        ours = versus("resnet50 b1 forward", "resnet50", 1, 224, "forward", 2.0)
        ours = versus("resnet50 b1 fwd+input grad", "resnet50", 1, 224, "forward_backward", 2.0,
                      "--backward")
        peak_mb = ours["peak_bytes_forward_backward"] / 1e6
        rows.append(("resnet50 b1 fwd+bwd peak memory", peak_mb, None, "MB", "≤ 250 MB",
                     peak_mb <= 250))
        achieved = matmul_gflops(1024)
        rows.append(("matmul 1024³", achieved, None, "GFLOP/s", "≥ 30", achieved >= 30))
        figures["matmul_1024_gflops_per_s"] = achieved
        for label, env in [("cold", {"MESA_SHADER_CACHE_DISABLE": "true"}), ("cached", {})]:
            first = gradlens_bench("vgg16", 1, 224, 5, env=env)["first_run_ms"]
            rows.append((f"vgg16 first run, {label} shader cache", first, None, "ms", "≤ 3000",
                         first <= 3000))
            figures[f"vgg16_first_run_ms_{label}"] = first

    # DenseNet-121 forward + backward to the input at batch 8 against 8 × batch 1.
    single = gradlens_bench("densenet121", 1, 224, args.runs, "--backward")
    eight = gradlens_bench("densenet121", 8, 224, args.runs, "--backward")
    per_image = eight["forward_backward_ms"] / 8 / single["forward_backward_ms"]
    rows.append(("densenet121 fwd+bwd b8 per image / b1", per_image, None, "×", "≤ 1.0",
                 per_image <= 1.0))
    figures["densenet121_b1"] = single
    figures["densenet121_b8"] = eight

    adapter = single["adapter"]
    print(f"gradlens on {adapter} against PyTorch on {args.device}, medians of {args.runs} runs:")
    print(f"{'workload':<42} {'gradlens':>10} {'pytorch':>10} {'ratio':>7}  target        met")
    for name, ours, theirs, unit, target, met in rows:
        theirs_text = f"{theirs:>10.2f}" if theirs is not None else f"{'-':>10}"
        ratio = f"{ours / theirs:>6.2f}×" if theirs is not None and unit == "ms" else f"{'':>7}"
        print(f"{name:<42} {ours:>10.2f} {theirs_text} {ratio}  {target:<13} "
              f"{VERDICT[met]:<5} ({unit})")
    figures["rows"] = [
        {"workload": r[0], "gradlens": r[1], "pytorch": r[2], "unit": r[3], "target": r[4],
         "met": r[5]} for r in rows
    ]
    text = json.dumps(figures)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
