#!/usr/bin/env python3
"""Times torchvision's models in PyTorch on the workloads `gradlens bench` times, for the
comparison table in BENCHMARKS.md: forward; forward + backward to the input with the
parameters frozen (the saliency workload); one training step (forward, backward, SGD with
momentum). Random weights and input; a first run reported apart, one warm-up, then the median
of --runs runs, each ending with its result on the host (on CUDA: synchronised). Prints one
JSON object per line with the same keys as `gradlens bench --json`.

    python tools/compare_pytorch.py --arch resnet50 --backward --train
    python tools/compare_pytorch.py --arch densenet121 --batch 8 --threads 2
    python tools/compare_pytorch.py --arch resnet18 --size 224 --batch 8 --train --device cuda

On CUDA, TF32 is off so that the arithmetic matches gradlens's f32. Needs torch and
torchvision; gradlens itself never runs Python.
"""

import argparse
import json
import statistics
import time

import torch
import torchvision


def build(arch, device):
    kwargs = {"weights": None}
    if arch in ("googlenet", "inception_v3"):
        # As gradlens builds them: the aux heads exist (train mode uses them), no
        # transform_input on random weights.
        kwargs.update(aux_logits=True, init_weights=True, transform_input=False)
    return getattr(torchvision.models, arch)(**kwargs).to(device)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backward", action="store_true")
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    torch.manual_seed(7)
    model = build(args.arch, device)
    x = torch.rand(args.batch, 3, args.size, args.size, device=device) * 4 - 2
    labels = torch.randint(0, 1000, (args.batch,), device=device)

    def finish(tensor):
        # The result on the host ends each run, as gradlens reads its result back.
        tensor.detach().cpu()

    def forward():
        model.eval()
        with torch.no_grad():
            finish(model(x))

    def forward_backward():
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        image = x.clone().requires_grad_(True)
        logits = model(image)
        logits.gather(1, labels[:, None]).sum().backward()
        finish(image.grad)
        for p in model.parameters():
            p.requires_grad_(True)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def train_step():
        model.train()
        out = model(x)
        if isinstance(out, tuple):  # GoogLeNet / Inception v3 with aux heads
            logits, *aux = [o for o in out if o is not None]
            loss = torch.nn.functional.cross_entropy(logits, labels)
            for a in aux:
                loss = loss + 0.3 * torch.nn.functional.cross_entropy(a, labels)
        else:
            loss = torch.nn.functional.cross_entropy(out, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        finish(loss)

    def timed(work):
        start = time.perf_counter()
        work()
        return (time.perf_counter() - start) * 1e3

    report = {
        "framework": f"pytorch {torch.__version__}",
        "device": args.device,
        "threads": torch.get_num_threads(),
        "arch": args.arch,
        "batch": args.batch,
        "size": args.size,
        "runs": args.runs,
        "first_run_ms": timed(forward),
    }
    workloads = [("forward", forward)]
    if args.backward:
        workloads.append(("forward_backward", forward_backward))
    if args.train:
        workloads.append(("train_step", train_step))
    for name, work in workloads:
        work()  # warm-up
        times = [timed(work) for _ in range(args.runs)]
        report[f"{name}_ms"] = statistics.median(times)
        report[f"{name}_runs_ms"] = times
    print(json.dumps(report))


if __name__ == "__main__":
    main()
