#!/usr/bin/env python3
"""Writes tests/fixtures/resize.safetensors: PIL's bilinear resize (what torchvision's Resize
applies to PIL images) of a random float image, down and up, so the Rust test checks
gradlens's resize against PIL itself.

    /path/to/venv/bin/python tools/make_resize_fixture.py   # venv with numpy, pillow, safetensors
"""
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.numpy import save_file

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "resize.safetensors"


def main():
    rng = np.random.default_rng(7)
    image = rng.random((20, 30), dtype=np.float32)
    tensors = {"input": image}
    for name, (h, w) in {"down": (7, 11), "up": (33, 45), "mixed": (9, 50)}.items():
        resized = Image.fromarray(image, mode="F").resize((w, h), Image.BILINEAR)
        tensors[name] = np.asarray(resized, dtype=np.float32).copy()
    save_file(tensors, str(OUT))
    print("wrote", OUT, {k: v.shape for k, v in tensors.items()})


if __name__ == "__main__":
    main()
