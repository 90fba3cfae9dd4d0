"""The NumPy twin of the C core's training-image warp (csrc/augment.c's
readable one and csrc/fast.c's vector one, docs/SPEC.md §8.6), line by line,
to the same bytes.

The C core warps the images when training (each as its tile loads it, or
all at once with ``lenet5.core.augment``); this
module exists to show what it computes and to hold it to that in the tests.
Training never imports it.

Why it ships in the package rather than under tests/: it is the warp's
readable definition, the executable form of docs/SPEC.md §8.6 that the spec
points to (``lenet5.augment.augment_numpy``), as ``lenet5.numpy_engine`` is
of the rest of the core; people who learn from this package read and call
it (``augment_numpy(images, index, seed=..., epoch=..., ...)`` gives the bytes
``core.augment`` gives), and the brief's rule that every elementwise feature
keeps a NumPy twin held to the same bytes applies to installed copies too
(tests/test_augment.py holds it).  It needs only NumPy and costs nothing
unless imported.
Every pixel goes through the same rounded double operations in the same
order.  The one transcendental step, the sine and cosine of each image's
angle, uses Python's ``math`` module, which calls the same libm as the C
core; NumPy's vectorised ``np.sin`` is a different implementation and may
differ in the last bit.
"""

from __future__ import annotations

import math
from typing import List

import numpy as np

MASK64 = (1 << 64) - 1
CENTRE = (28 - 1) / 2.0  # 13.5, the middle of the pixel grid
DEGREES_TO_RADIANS = 3.141592653589793 / 180.0


def splitmix64(x: int) -> int:
    """SplitMix64's mix of a 64-bit counter (csrc/augment.c)."""
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def image_key(seed: int, epoch: int, index: int) -> int:
    """The generator key of one image: seed, epoch and index mixed in, in that order."""
    return splitmix64(splitmix64(splitmix64(seed) ^ epoch) ^ index)


def uniform_draws(key: int, count: int = 4) -> List[float]:
    """Draws k = 0..count-1 of one image, uniform on [-1, 1) (top 53 bits times 2^-52, minus 1)."""
    return [float(splitmix64((key + k) & MASK64) >> 11) * 2.0**-52 - 1.0 for k in range(count)]


def warp_image(image: np.ndarray, key: int, shift: float, rotate: float, scale: float) -> np.ndarray:
    """One 28 x 28 uint8 image warped as csrc/augment.c's l5_warp_image_ref does it."""
    u = uniform_draws(key)
    angle = rotate * u[0] * DEGREES_TO_RADIANS
    s = 1.0 + scale * u[1]
    tx, ty = shift * u[2], shift * u[3]
    a, b = math.cos(angle) / s, math.sin(angle) / s
    r, c = np.meshgrid(np.arange(28, dtype=np.float64), np.arange(28, dtype=np.float64), indexing="ij")
    x = (c - CENTRE) - tx
    y = (r - CENTRE) - ty
    sx = (a * x + b * y) + CENTRE
    sy = (a * y - b * x) + CENTRE
    fx0, fy0 = np.floor(sx), np.floor(sy)
    fx, fy = sx - fx0, sy - fy0
    x0, y0 = fx0.astype(np.int64), fy0.astype(np.int64)

    def pixel(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        inside = (rows >= 0) & (rows < 28) & (cols >= 0) & (cols < 28)
        return np.where(inside, image[np.clip(rows, 0, 27), np.clip(cols, 0, 27)], 0.0)

    p00, p01 = pixel(y0, x0), pixel(y0, x0 + 1)
    p10, p11 = pixel(y0 + 1, x0), pixel(y0 + 1, x0 + 1)
    top = p00 + fx * (p01 - p00)
    bottom = p10 + fx * (p11 - p10)
    v = np.floor((top + fy * (bottom - top)) + 0.5)
    return np.clip(v, 0.0, 255.0).astype(np.uint8)


def augment_numpy(
    images: np.ndarray, index: np.ndarray, *, seed: int, epoch: int, shift: float, rotate: float, scale: float
) -> np.ndarray:
    """The twin of ``lenet5.core.augment``: the same bytes, one image at a time."""
    flat = images.reshape(-1, 28, 28)
    out = np.empty_like(flat)
    for i in range(len(flat)):
        out[i] = warp_image(flat[i].astype(np.float64), image_key(seed, epoch, int(index[i])), shift, rotate, scale)
    return out.reshape(images.shape)
