"""Digits from the real world: image files and arrays to MNIST-style 28 x 28 images.

    from lenet5 import LeNet5, load_image, preprocess
    digit = preprocess(load_image("photo.jpg"))   # (28, 28) uint8, white ink on black
    LeNet5.load("model.npz").predict(digit)

``preprocess`` makes any picture of one digit look the way MNIST's digits
were made (docs/SPEC.md §13): grey, bright ink on a dark ground, the ink's
box scaled to 20 pixels on its longer side, its centre of mass in the middle
of 28 x 28.  It needs only NumPy.  ``load_image`` reads PNG, JPEG, BMP, GIF,
TIFF and PGM through Pillow (the optional extra ``images``) and ``.npy``
arrays without it.  Whatever cannot be used raises ``ImageError`` with one
line that says why.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Union

import numpy as np

from ._version import install_hint

__all__ = ["ImageError", "preprocess", "as_is", "load_image", "decode_image", "MAX_PIXELS"]

#: The largest image decoded: a photo of 4,000 x 4,000 pixels is 16 M; a
#: file that claims more could be a decompression bomb (a few KB that
#: decode to gigabytes), so it is refused before its pixels are read.
MAX_PIXELS = 50_000_000

#: MNIST's geometry: the ink's box is scaled to BOX pixels on its longer
#: side and centred by its centre of mass in a SIZE x SIZE image.
SIZE, BOX = 28, 20

#: Pictures are reduced to at most this many pixels a side (by averaging
#: blocks of pixels) before anything else: enough for a digit that fills a
#: fifth of the frame, and averaging is the first defence against grain.
WORK_SIDE = 256

#: Ink must stand out from the paper by this much (in 0..255 units) and by
#: NOISE_SIGMAS times the paper's own noise, or the picture counts as blank.
MIN_CONTRAST = 24.0
NOISE_SIGMAS = 6.0

#: What is fainter than this fraction of the strongest ink, or than
#: NOISE_FLOOR times the paper's noise, is paper.
FAINT = 0.1
NOISE_FLOOR = 3.0

PathLike = Union[str, "os.PathLike[str]"]


class ImageError(ValueError):
    """A picture that cannot be used: the message says why, in one line."""


def _grey(array: Any) -> np.ndarray:
    """A 2-D float32 grey image in 0..255 from (H, W), (H, W, 3) or (H, W, 4).

    Integers must lie in 0..255; floats are taken as 0..1 if none exceeds 1,
    else as 0..255.  Colour becomes grey with ITU-R 601 weights (as Pillow's
    "L"); a transparent pixel counts as white paper."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"image must be a numpy array, not {type(array).__name__}")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"image must have an integer, float or bool dtype, not {array.dtype}")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageError(f"image must have shape (H, W), (H, W, 3) or (H, W, 4), not {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageError(f"image is empty (shape {array.shape})")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise ImageError(f"image too large: {array.shape[1]} x {array.shape[0]} pixels (the limit is {MAX_PIXELS:,})")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ImageError("image holds NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    scale = 1.0
    if np.issubdtype(array.dtype, np.floating):
        if low < 0 or high > 255:
            raise ImageError(f"float pixels must lie in 0..1 or 0..255, not {low:g}..{high:g}")
        scale = 255.0 if high <= 1.0 else 1.0
    elif low < 0 or high > 255:
        raise ImageError(f"integer pixels must lie in 0..255, not {low:g}..{high:g}")

    # float32 holds 0..255 exactly; one channel at a time keeps a large
    # photo's memory small until it is averaged down (WORK_SIDE).
    def channel(i: int) -> np.ndarray:
        plane = array if array.ndim == 2 else array[:, :, i]
        return plane.astype(np.float32) * np.float32(scale)

    if array.ndim == 2 or array.shape[2] == 1:
        return channel(0)
    grey = np.float32(0.299) * channel(0)
    grey += np.float32(0.587) * channel(1)
    grey += np.float32(0.114) * channel(2)
    if array.shape[2] == 4:  # over white paper
        alpha = channel(3) / np.float32(255.0 * scale)
        grey = grey * alpha + np.float32(255.0) * (np.float32(1.0) - alpha)
    return grey


def _reduce(x: np.ndarray, side: int) -> np.ndarray:
    """Average blocks of f x f pixels so that the longer side is at most about side."""
    f = -(-max(x.shape) // side)  # ceil
    if f <= 1:
        return x.astype(np.float64)
    h, w = x.shape[0] // f * f, x.shape[1] // f * f
    if h == 0 or w == 0:  # a strip thinner than one block: keep it as it is
        return x.astype(np.float64)
    return x[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3), dtype=np.float64)


def _median3(x: np.ndarray) -> np.ndarray:
    """3 x 3 median (edges repeated): lone specks of grain vanish, strokes stay."""
    padded = np.pad(x, 1, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3)).reshape(x.shape + (9,))
    return np.partition(windows, 4, axis=-1)[..., 4]


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of a triangle filter, widened when shrinking so
    that every input pixel counts (anti-aliased); rows sum to 1."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    distance = np.abs(np.arange(n_in)[None, :] - centres[:, None]) / support
    weights = np.clip(1.0 - distance, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def _resize(x: np.ndarray, height: int, width: int) -> np.ndarray:
    return _resample_matrix(x.shape[0], height) @ x @ _resample_matrix(x.shape[1], width).T


def preprocess(array: Any) -> np.ndarray:
    """A (28, 28) uint8 MNIST-style digit from a picture of one digit (docs/SPEC.md §13).

    array: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA; uint8 (or other
    integers in 0..255), bool, or floats in 0..1 or 0..255; any size from
    28 to about 7,000 pixels a side.  The steps, as MNIST was made:

    1. grey (ITU-R 601 weights; transparent counts as white paper);
    2. the paper's shade is the median of the border; ink is what differs
       from it, in whichever direction the picture's extremes say, so dark on
       light and light on dark both give bright ink on black;
    3. the contrast is stretched so the strongest ink (after a 3 x 3 median
       that ignores specks) is 255, and ink fainter than a tenth of that
       is dropped as paper;
    4. crop to the ink's bounding box, scale its longer side to 20 pixels
       keeping the aspect ratio (anti-aliased);
    5. paste into 28 x 28 with the ink's centre of mass at the centre.

    Raises ImageError for a picture with no ink (a blank page) or one that is
    not an image at all, TypeError for something that is not an array.
    """
    grey = _reduce(_grey(array), WORK_SIDE)
    h, w = grey.shape
    ring = max(1, min(h, w) // 20)
    border = np.concatenate([grey[:ring].ravel(), grey[-ring:].ravel(),
                             grey[:, :ring].ravel(), grey[:, -ring:].ravel()])
    paper = float(np.median(border))
    noise = 1.4826 * float(np.median(np.abs(border - paper)))
    # Ink lies on the side of the paper where the picture reaches furthest.
    dark_ink = paper - float(grey.min()) >= float(grey.max()) - paper
    ink = np.clip(paper - grey if dark_ink else grey - paper, 0.0, None)
    strongest = float(_median3(ink).max()) if min(h, w) >= 3 else float(ink.max())
    if strongest < max(MIN_CONTRAST, NOISE_SIGMAS * noise):
        raise ImageError(f"no digit found: the picture is blank (the strongest ink differs from the paper by "
                         f"{strongest:.0f} of 255)")
    ink[ink < max(FAINT * strongest, NOISE_FLOOR * noise)] = 0.0
    ink = np.clip(ink / strongest, 0.0, 1.0)
    rows, cols = np.nonzero(_median3(ink) if min(h, w) >= 3 else ink)
    if rows.size == 0:  # only specks were left: use them rather than nothing
        rows, cols = np.nonzero(ink)
    ink = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    bh, bw = ink.shape
    scale = BOX / max(bh, bw)
    digit = np.clip(_resize(ink, max(1, round(bh * scale)), max(1, round(bw * scale))), 0.0, 1.0)
    digit /= digit.max()
    # The centre of mass goes to pixel (14, 14), where MNIST's digits have theirs
    # (the test set's mean is (13.99, 14.01) in row and column indices).
    total = digit.sum()
    com_y = float((digit.sum(axis=1) * np.arange(digit.shape[0])).sum() / total)
    com_x = float((digit.sum(axis=0) * np.arange(digit.shape[1])).sum() / total)
    top = int(np.clip(round(SIZE / 2 - com_y), 0, SIZE - digit.shape[0]))
    left = int(np.clip(round(SIZE / 2 - com_x), 0, SIZE - digit.shape[1]))
    out = np.zeros((SIZE, SIZE), dtype=np.uint8)
    out[top:top + digit.shape[0], left:left + digit.shape[1]] = np.round(digit * 255.0).astype(np.uint8)
    return out


def as_is(array: Any) -> np.ndarray:
    """A 28 x 28 picture taken as it is, for a model: only made grey (as in
    preprocess) and rounded to uint8; no inversion, cropping or centring."""
    grey = _grey(array)
    if grey.shape != (SIZE, SIZE):
        raise ImageError(f"without preprocessing an image must be 28 x 28 pixels, not "
                         f"{grey.shape[1]} x {grey.shape[0]}")
    return np.round(grey).astype(np.uint8)


def _pillow() -> Any:
    """PIL.Image, or ImportError naming the extra that installs it."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(f"reading image files needs Pillow: {install_hint('images')} "
                          "(.npy arrays need nothing)") from None
    return Image


def load_image(path: PathLike) -> np.ndarray:
    """The pixels of an image file, for preprocess: uint8 (H, W), (H, W, 3) or
    (H, W, 4), or float64 (H, W) in 0..255 for 16-bit and float images.

    ``.npy`` files are read with NumPy (``allow_pickle=False``); everything
    else through Pillow (PNG, JPEG, BMP, GIF (its first frame), TIFF, PGM, ...).
    Raises ImageError for a missing file, a folder, a file that is not an
    image, a truncated one, or one larger than MAX_PIXELS; ImportError if
    Pillow is needed and missing."""
    shown = os.fspath(path)  # messages name the file as the caller did
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{shown}: no such file")
    if path.is_dir():
        raise ImageError(f"{shown}: is a folder, not an image file")
    try:
        if path.stat().st_size == 0:
            raise ImageError(f"{shown}: the file is empty")
        if path.suffix.lower() == ".npy":
            return _load_npy(path, shown)
        return _load_picture(path, shown)
    except OSError as e:  # unreadable: permissions, I/O errors
        raise ImageError(f"{shown}: cannot read it ({e.strerror or e})") from None


def decode_image(data: bytes, shown: str = "the image") -> np.ndarray:
    """The pixels of an image file's bytes (PNG, JPEG, ...) through Pillow, as
    ``load_image`` gives them; ImageError names ``shown`` and what is wrong."""
    if not data:
        raise ImageError(f"{shown}: empty")
    return _load_picture(io.BytesIO(data), shown)


def _load_npy(path: Path, shown: str) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:  # not a .npy file, or one holding Python objects
        raise ImageError(f"{shown}: not a usable .npy array ({e})") from None
    if not isinstance(array, np.ndarray):
        raise ImageError(f"{shown}: not a .npy array")
    if array.ndim >= 2 and array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise ImageError(f"{shown}: too large: {array.shape[1]} x {array.shape[0]} pixels "
                         f"(the limit is {MAX_PIXELS:,})")
    return np.array(array)


def _load_picture(path: Union[Path, BinaryIO], shown: str) -> np.ndarray:
    Image = _pillow()
    with warnings.catch_warnings():
        # Pillow only warns between its own limit and twice it: refuse those too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise ImageError(f"{shown}: too large to decode safely: {width} x {height} pixels "
                                     f"(the limit is {MAX_PIXELS:,}; a decompression bomb?)")
                img.load()
                return _pixels(img)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{shown}: too large to decode safely (a decompression bomb?)") from None
        except Image.UnidentifiedImageError:
            raise ImageError(f"{shown}: not an image file (Pillow cannot identify it)") from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:  # Pillow's ways of saying "broken"
            if isinstance(e, ImageError):
                raise
            raise ImageError(f"{shown}: a damaged or truncated image ({e})") from None


def _pixels(img: Any) -> np.ndarray:
    """An opened Pillow image as an array for _grey."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        x = np.asarray(img, dtype=np.float64)
        high = float(x.max()) if x.size else 0.0
        low = float(x.min()) if x.size else 0.0
        if high > 255 or low < 0:  # 16-bit or float: to 0..255 by its own range
            x = (x - low) * (255.0 / (high - low)) if high > low else np.zeros_like(x)
        return x
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if img.mode == "L":
        return np.asarray(img)
    return np.asarray(img.convert("RGBA" if has_alpha else "RGB"))
