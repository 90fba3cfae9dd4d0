"""TEMPORARY SHIM (issue 23) -- DELETE WHEN BRANCH i22 IS MERGED.

Stands in for issue 22's agreed interface (``lenet5.images.InkMap``,
``ink_map``, ``digit_from_ink``) so that lenet5.numbers can be written and
tested against the real names before i22 lands.  Built from the current
images.py code; its paper estimate is a crude grey closing, not i22's.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Tuple, Union

import numpy as np

from . import images
from .images import BOX, FAINT, MIN_CONTRAST, NOISE_FLOOR, NOISE_SIGMAS, SIZE, WORK_SIDE, ImageError


@dataclass(frozen=True)
class InkMap:
    """SHIM: the ink (float32 (H, W), 0..1, bright on dark) and how it maps back."""
    ink: np.ndarray
    scale: float
    offset: Tuple[float, float]


def _load(picture: Union[str, os.PathLike[str]]) -> np.ndarray:
    if os.fspath(picture).lower().endswith(".npy"):
        return images.load_image(picture)
    images.load_image(picture)  # its checks and messages
    from PIL import Image, ImageOps
    with Image.open(picture) as img:
        img = ImageOps.exif_transpose(img)
        return images._pixels(img)


def ink_map(picture: Any) -> InkMap:
    """SHIM of images.ink_map."""
    from scipy import ndimage
    array = picture if isinstance(picture, np.ndarray) else _load(picture)
    grey = images._grey(array)
    f = max(1, -(-max(grey.shape) // WORK_SIDE))
    grey = images._reduce(grey, WORK_SIDE)
    h, w = grey.shape
    ring = max(1, min(h, w) // 20)
    border = np.concatenate([grey[:ring].ravel(), grey[-ring:].ravel(),
                             grey[:, :ring].ravel(), grey[:, -ring:].ravel()])
    paper0 = float(np.median(border))
    noise = 1.4826 * float(np.median(np.abs(border - paper0)))
    dark_ink = paper0 - float(grey.min()) >= float(grey.max()) - paper0
    size = max(5, min(h, w) // 4)
    if dark_ink:
        paper = ndimage.grey_closing(grey, size=(size, size), mode="nearest")
        ink = np.clip(paper - grey, 0.0, None)
    else:
        paper = ndimage.grey_opening(grey, size=(size, size), mode="nearest")
        ink = np.clip(grey - paper, 0.0, None)
    resid = np.concatenate([(paper - grey)[:ring].ravel(), (paper - grey)[-ring:].ravel(),
                            (paper - grey)[:, :ring].ravel(), (paper - grey)[:, -ring:].ravel()])
    noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    strongest = float(images._median3(ink).max()) if min(h, w) >= 3 else float(ink.max())
    if strongest < max(MIN_CONTRAST, NOISE_SIGMAS * noise):
        raise ImageError(f"no digit found: the picture is blank (the strongest ink differs from the paper by "
                         f"{strongest:.0f} of 255)")
    ink[ink < max(FAINT * strongest, NOISE_FLOOR * noise)] = 0.0
    ink = np.clip(ink / strongest, 0.0, 1.0)
    return InkMap(ink=ink.astype(np.float32), scale=float(f), offset=(0.0, 0.0))


def digit_from_ink(ink_piece: np.ndarray) -> np.ndarray:
    """SHIM of images.digit_from_ink: steps 6-8 of preprocess."""
    ink = np.asarray(ink_piece, dtype=np.float64)
    h, w = ink.shape
    rows, cols = np.nonzero(images._median3(ink) if min(h, w) >= 3 else ink)
    if rows.size == 0:
        rows, cols = np.nonzero(ink)
    if rows.size == 0:
        raise ImageError("no digit found: the piece is blank")
    ink = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    bh, bw = ink.shape
    scale = BOX / max(bh, bw)
    digit = np.clip(images._resize(ink, max(1, round(bh * scale)), max(1, round(bw * scale))), 0.0, 1.0)
    digit /= digit.max()
    total = digit.sum()
    com_y = float((digit.sum(axis=1) * np.arange(digit.shape[0])).sum() / total)
    com_x = float((digit.sum(axis=0) * np.arange(digit.shape[1])).sum() / total)
    top = int(np.clip(round(SIZE / 2 - com_y), 0, SIZE - digit.shape[0]))
    left = int(np.clip(round(SIZE / 2 - com_x), 0, SIZE - digit.shape[1]))
    out = np.zeros((SIZE, SIZE), dtype=np.uint8)
    out[top:top + digit.shape[0], left:left + digit.shape[1]] = np.round(digit * 255.0).astype(np.uint8)
    return out
