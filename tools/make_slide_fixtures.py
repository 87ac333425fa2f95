"""Small pyramidal TIFFs written by tifffile, for tests/slide.rs: a reader checked only against
gradlens's own writer could share its mistakes.

    python3 -m venv /tmp/pyd && /tmp/pyd/bin/pip install numpy tifffile imagecodecs pillow
    /tmp/pyd/bin/python tools/make_slide_fixtures.py

Writes tests/fixtures/slide/NAME.tif (RGB deflate BigTIFF, RGB JPEG, 16-bit gray LZW) (two levels, each its own page, the second marked as
reduced resolution) and NAME_level{0,1}.png: tifffile's own decoding of each level, the pixels
the reader must return (exactly for deflate; within JPEG decoders' rounding for JPEG).
"""

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "slide"


def tissue(height, width, seed):
    """Pink blobs with purple dots on gray-white glass: smooth enough for JPEG, varied enough
    that a misplaced tile or a swapped channel shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.empty((height, width, 3), np.float64)
    image[:] = (242, 240, 238)
    for _ in range(3):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(30, 70)
        inside = (y - cy) ** 2 + (x - cx) ** 2 < r * r
        image[inside] = (231, 172, 204)
    dots = rng.random((height, width)) < 0.02
    image[dots & (image[..., 1] < 200)] = (122, 72, 152)
    # A gradient across the whole image, so that every tile differs from its neighbours.
    image[..., 2] -= 30 * x / width
    return np.clip(image, 0, 255).astype(np.uint8)


def write(name, levels, **options):
    path = OUT / f"{name}.tif"
    with tifffile.TiffWriter(path, bigtiff=options.pop("bigtiff", False)) as tif:
        for index, level in enumerate(levels):
            tif.write(level, tile=(64, 64), subfiletype=1 if index else 0, **options)
    with tifffile.TiffFile(path) as tif:
        for index, page in enumerate(tif.pages):
            Image.fromarray(page.asarray()).save(OUT / f"{name}_level{index}.png")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    full = tissue(200, 300, seed=1)
    half = full[::2, ::2].copy()
    write("deflate_bigtiff", [full, half], bigtiff=True, compression="zlib", photometric="rgb")
    write("jpeg_ycbcr", [full, half], compression="jpeg", photometric="ycbcr")
    # 16-bit gray (a fluorescence channel, say) with LZW: every level of 65536 kept.
    gray = (full.astype(np.uint32).sum(axis=2) * 65535 // 765).astype(np.uint16)
    gray += np.arange(300, dtype=np.uint16)[None, :] * 7  # bits below the top 8 set
    write("lzw_gray16", [gray, gray[::2, ::2].copy()], compression="lzw", photometric="minisblack")


if __name__ == "__main__":
    main()
