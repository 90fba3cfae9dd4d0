"""Render docs/number.jpg (a handwritten number photographed) and draw
docs/number.png (what lenet5.read_number makes of it), for the README.

    python benchmarks/number_figure.py [--out docs]

The picture is rendered, not photographed: MNIST test digits (the first
test images of 2, 0, 2 and 4 that the shipped model reads right on their
own) as dark ink on off-white paper, the second pair nearly touching, lit
unevenly (a third darker on one side), turned two degrees, with grain,
saved as JPEG.  The figure shows the picture with each digit's box and
number, the 28 x 28 input the network saw for each, and its answer and
probability.  Needs Pillow and matplotlib.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np

from lenet5 import LeNet5, read_number
from lenet5.data import load_split

NUMBER = (2, 0, 2, 4)
GAPS = (7, 9, 2)  # MNIST pixels of paper between the digits' inks


def render(path: Path, net: LeNet5) -> str:
    """Write the picture; returns the number it shows."""
    from PIL import Image

    images, labels = load_split("test", download=False, progress=False)
    rng = np.random.default_rng(2024)
    used: List[int] = []
    for d in NUMBER:  # the first test image of d read right, not used already (the two 2s differ)
        used.append(
            next(int(k) for k in np.flatnonzero(labels == d) if k not in used and int(net.predict(images[k])) == d)
        )
    digits = [images[k] for k in used]
    crops = []
    for d in digits:
        cols = np.flatnonzero(d.max(axis=0) > 0)
        crops.append(d[:, cols.min() : cols.max() + 1].astype(np.float64))
    margin = 14
    cover = np.zeros((28 + 2 * margin, sum(c.shape[1] for c in crops) + sum(GAPS) + 2 * margin))
    x = margin
    for i, c in enumerate(crops):
        y = margin + (-2, 1, -1, 2)[i]
        np.maximum(cover[y : y + 28, x : x + c.shape[1]], c, out=cover[y : y + 28, x : x + c.shape[1]])
        x += c.shape[1] + (GAPS[i] if i < len(GAPS) else 0)
    scale = 8
    big = (
        Image.fromarray(np.round(cover).astype(np.uint8))
        .resize((cover.shape[1] * scale, cover.shape[0] * scale), Image.BICUBIC)
        .rotate(2.0, resample=Image.BICUBIC)
    )
    ink = np.asarray(big, dtype=np.float64) / 255.0
    h, w = ink.shape
    light = 1.0 - 0.33 * np.linspace(0.0, 1.0, w)[None, :] ** 1.5 - 0.05 * np.linspace(0.0, 1.0, h)[:, None]
    paper = np.array([236.0, 230.0, 214.0])  # off-white, a little warm
    pen = np.array([38.0, 40.0, 62.0])  # blue-black
    rgb = (paper + (pen - paper) * ink[:, :, None]) * light[:, :, None] + rng.normal(0, 4, (h, w, 1))
    Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8)).save(path, format="JPEG", quality=88)
    return "".join(map(str, NUMBER))


def draw(picture: Path, out: Path, net: LeNet5) -> str:
    """Draw read_number's answer for the picture into out; returns the number read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from PIL import Image

    reading = read_number(picture, net)
    n = len(reading.digits)
    fig = plt.figure(figsize=(8, 4.6))
    grid = fig.add_gridspec(2, n, height_ratios=[2.2, 1], hspace=0.25)
    top = fig.add_subplot(grid[0, :])
    with Image.open(picture) as img:
        top.imshow(np.asarray(img))
    for i, d in enumerate(reading.digits):
        x0, y0, x1, y1 = d.box
        top.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="#d2552b", lw=2))
        top.text(x0, y0 - 8, str(i + 1), color="#d2552b", fontsize=12, fontweight="bold", va="bottom")
    top.set_title(f"read_number: {reading.number!r}, least sure {100 * reading.confidence:.1f}%", fontsize=11)
    top.axis("off")
    for i, d in enumerate(reading.digits):
        ax = fig.add_subplot(grid[1, i])
        ax.imshow(d.image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{i + 1}: {d.digit} ({100 * d.probability:.1f}%)", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return reading.number


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="docs", help="folder for number.jpg and number.png (default docs)")
    args = p.parse_args(argv)
    out = Path(args.out)
    net = LeNet5.pretrained()
    shown = render(out / "number.jpg", net)
    read = draw(out / "number.jpg", out / "number.png", net)
    print(f"{out / 'number.jpg'}: rendered {shown}; {out / 'number.png'}: read {read}")
    return 0 if read == shown else 1


if __name__ == "__main__":
    sys.exit(main())
