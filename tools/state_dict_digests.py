#!/usr/bin/env python3
"""Writes tests/fixtures/torchvision_state_dicts.json: for every torchvision architecture
gradlens builds, the number of state_dict entries (num_batches_tracked excluded), the number
of parameter values, and an FNV-1a 64-bit digest of the sorted lines "name [d0, d1, ...]" —
so the Rust tests check every name and shape against torchvision without a large fixture.

    /path/to/venv/bin/python tools/state_dict_digests.py   # venv with torch and torchvision
"""
import json
import warnings
from pathlib import Path

import torchvision

ARCHS = [
    "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    "googlenet", "inception_v3", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "densenet121", "densenet161", "densenet169", "densenet201",
]
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "torchvision_state_dicts.json"


def fnv1a64(text: str) -> int:
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) % (1 << 64)
    return h


def main():
    result = {}
    for arch in ARCHS:
        kwargs = {}
        if arch in ("googlenet", "inception_v3"):
            kwargs = {"aux_logits": True, "init_weights": False}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = getattr(torchvision.models, arch)(weights=None, **kwargs)
        state = model.state_dict()
        lines = sorted(
            f"{name} {list(t.shape)}" for name, t in state.items() if not name.endswith("num_batches_tracked")
        )
        result[arch] = {
            "entries": len(lines),
            "parameters": sum(p.numel() for p in model.parameters()),
            "digest": f"{fnv1a64(chr(10).join(lines)):016x}",
        }
        print(arch, result[arch])
    OUT.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
