"""Digits from the real world: picture files and arrays to MNIST-style 28 x 28 images.

    from lenet5 import LeNet5, load_image, preprocess
    digit = preprocess(load_image("photo.jpg"))   # (28, 28) uint8, white ink on black
    LeNet5.load("model.npz").predict(digit)

Every picture goes through one path (docs/SPEC.md §13): decode (the allowed
formats only, reduced while decoding so memory stays bounded, EXIF
orientation applied), one ink map (``ink_map``: the paper's shade estimated
across the sheet at the scale of the strokes, ink as the difference from it
in colour), then a digit (``digit_from_ink``: thin strokes thickened, the
ink's box scaled to 20 pixels, its centre of mass in the middle of 28 x 28).
``load_image`` reads PNG, JPEG (MPO), BMP, GIF, TIFF, PBM/PGM/PPM, WebP and
AVIF through Pillow and ``.npy`` arrays through NumPy; the ink map needs
SciPy.  Both are the optional extra ``images``.  Whatever cannot be used
raises ``ImageError`` with one line that says why.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, List, Optional, Tuple, Union

import numpy as np

from ._version import install_hint
from .files import PathLike

__all__ = [
    "ImageError",
    "InkMap",
    "ink_map",
    "digit_from_ink",
    "preprocess",
    "as_is",
    "load_image",
    "decode_image",
    "MAX_PIXELS",
    "FORMATS",
]

#: The largest picture decoded: a photo of 4,000 x 4,000 pixels is 16 M; a
#: file that claims more could be a decompression bomb (a few KB that
#: decode to gigabytes), so it is refused before its pixels are read.
MAX_PIXELS = 50_000_000

#: The formats Pillow may open (its own names; "PPM" is PBM, PGM and PPM;
#: JPEG includes MPO, a JPEG with a preview; AVIF where this Pillow has it).
#: Nothing else reaches a decoder: no PostScript, no plugin for a format
#: nobody asked for.
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "PPM", "WEBP", "AVIF")
SHOWN_FORMATS = "PNG, JPEG, BMP, GIF, TIFF, PBM/PGM/PPM, WebP or AVIF"

#: MNIST's geometry: the ink's box is scaled to BOX pixels on its longer
#: side and centred by its centre of mass in a SIZE x SIZE image.
SIZE, BOX = 28, 20

#: Pictures are reduced to at most about this many pixels a side (by
#: averaging f x f blocks, f a whole number) while or right after decoding:
#: enough for a digit that fills a fifth of the frame, and averaging is the
#: first defence against grain.
WORK_SIDE = 256

#: Large pictures are converted and reduced a band of rows at a time, each
#: band about this many pixels, so no full-size converted copy is made.
BAND_PIXELS = 1 << 22

#: Ink must stand out from the paper by this much (in 0..255 units) and by
#: NOISE_SIGMAS times the paper's own noise, or the picture counts as blank.
MIN_CONTRAST = 24.0
NOISE_SIGMAS = 6.0

#: White noise of deviation 1 leaves a deviation of about this after its
#: Gaussian smoothing (sigma 0.8 pixels) is taken away (measured: 0.79).
GRAIN_SHARE = 0.79

#: What is fainter than this fraction of the strongest ink, or than
#: NOISE_FLOOR times the paper's noise, is paper.
FAINT = 0.1
NOISE_FLOOR = 3.0

#: Dark ink is measured relative to the paper beside it (a stroke in shadow
#: is as dark, for its paper, as one in the light); paper darker than this
#: (of 255) counts as this, so grain in the dark is not blown up.
PAPER_FLOOR = 96.0

#: The strongest ink is the value that the brightest STRONGEST_SHARE of the
#: pixels (at least STRONGEST_MIN of them) reach: a lone speck is not it.
STRONGEST_SHARE, STRONGEST_MIN = 0.001, 5

#: A patch of ink smaller than this share of the largest one (or than
#: SPECK pixels) is a speck of grain and is dropped; so is a patch whose
#: strongest pixel is below FAINT_PATCH (of the strongest ink): shading.
SPECK_SHARE, SPECK, FAINT_PATCH = 0.02, 3, 0.5

#: The strokes whose width sets the paper estimate's scale are the ink of
#: the first, wide estimate at or above this share of the strongest.
STROKE_LEVEL = 0.25

#: Transparency: alpha at or above OPAQUE (of 255) is opaque, at or below
#: CLEAR transparent; opaque pixels whose colours span no more than
#: ONE_COLOUR (10th to 90th percentile, each channel) are "one colour".
OPAQUE, CLEAR, ONE_COLOUR = 192.0, 64.0, 48.0

#: Strokes, in pixels of the 20-pixel box: MNIST's are about STROKE wide;
#: a digit whose strokes would come out thinner than THIN is thickened to STROKE.
STROKE, THIN = 2.5, 1.6


class ImageError(ValueError):
    """A picture that cannot be used: the message says why, in one line."""


@dataclass(frozen=True)
class InkMap:
    """The ink of a picture (docs/SPEC.md §13.3), and where it lies in the picture.

    ink: float32 (H, W) in 0..1, bright ink on a dark (0) ground; paper is 0.
    scale, offset: ink pixel (row r, column c) covers the picture's pixels,
        as displayed (EXIF orientation applied) at full resolution, x in
        [offset[0] + c * scale, offset[0] + (c + 1) * scale) and y in
        [offset[1] + r * scale, offset[1] + (r + 1) * scale).  offset is
        (0, 0) except where an orientation reversed an axis whose length is
        not a whole number of blocks (then it is slightly negative).
    stroke: the strokes' typical width, in ink pixels.
    """

    ink: np.ndarray
    scale: float
    offset: Tuple[float, float]
    stroke: float = field(default=1.0)


@dataclass
class Picture:
    """A decoded picture (what ``read_picture`` gives; ``load_image`` gives its pixels).

    pixels: as load_image describes them (a .npy file's array as stored,
        memory-mapped); scale and offset: where a pixel lies in the picture
        as displayed at full resolution, as in InkMap; notes: what the
        reader should be told (an animation read from its first frame)."""

    pixels: np.ndarray
    scale: float = 1.0
    offset: Tuple[float, float] = (0.0, 0.0)
    notes: List[str] = field(default_factory=list)


def _ndimage() -> Any:
    """scipy.ndimage, or ImportError naming the extra that installs it."""
    try:
        from scipy import ndimage
    except ImportError:
        raise ImportError(f"reading digits from pictures needs SciPy: {install_hint('images')}") from None
    return ndimage


# ----------------------------------------------------------------------------
# Arrays: shape, values (§13.1) and reduction (§13.2).


def _check_array(array: Any) -> None:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"image must be a numpy array, not {type(array).__name__}")
    if array.dtype.kind not in "buif":
        raise TypeError(f"image must have an integer, float or bool dtype, not {array.dtype}")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageError(f"image must have shape (H, W), (H, W, 3) or (H, W, 4), not {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageError(f"image is empty (shape {array.shape})")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise ImageError(f"image too large: {array.shape[1]} x {array.shape[0]} pixels (the limit is {MAX_PIXELS:,})")


def _levels(array: np.ndarray) -> Tuple[float, float]:
    """(low, gain) such that (x - low) * gain, clipped, is the pixel in 0..255:
    bool 0/255; integers in 0..255 as they are; floats in 0..1 times 255;
    anything else stretched from its minimum to its maximum (§13.1)."""
    if array.dtype == np.bool_:
        return 0.0, 255.0
    low, high = float(np.min(array)), float(np.max(array))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ImageError("image holds NaN or infinite values")
    if array.dtype.kind in "ui" and low >= 0 and high <= 255:
        return 0.0, 1.0
    if array.dtype.kind == "f" and low >= 0 and high <= 1:
        return 0.0, 255.0
    return low, (255.0 / (high - low) if high > low else 0.0)


def _block_sum(x: np.ndarray, f: int) -> np.ndarray:
    """Sums of f x f blocks over the first two axes; the last blocks may be partial."""
    if f == 1:
        return x
    x = np.add.reduceat(x, np.arange(0, x.shape[0], f), axis=0)
    return np.add.reduceat(x, np.arange(0, x.shape[1], f), axis=1)


def _block_counts(n: int, f: int) -> np.ndarray:
    starts = np.arange(0, n, f)
    return (np.minimum(starts + f, n) - starts).astype(np.float32)


def _reduce_array(array: Any) -> Tuple[np.ndarray, Optional[np.ndarray], int]:
    """An array as float32 colour (h, w, 1 or 3) in 0..255 and alpha (h, w) in
    0..255 (None without one), averaged by f x f blocks so that the longer side
    is at most WORK_SIDE; a band of rows at a time, alpha-weighted (§13.2)."""
    _check_array(array)
    low, gain = _levels(array)
    height, width = array.shape[:2]
    f = max(1, -(-max(height, width) // WORK_SIDE))
    channels = 1 if array.ndim == 2 else array.shape[2]
    has_alpha = channels == 4
    rows = f * max(1, BAND_PIXELS // max(1, width * f))
    colour_parts, alpha_parts = [], []
    for y in range(0, height, rows):
        band = np.asarray(array[y : y + rows], dtype=np.float32)
        if band.ndim == 2:
            band = band[:, :, None]
        if gain != 1.0 or low != 0.0:
            band = (band - np.float32(low)) * np.float32(gain)
        np.clip(band, 0.0, 255.0, out=band)
        if has_alpha:
            alpha = band[:, :, 3]
            colour = band[:, :, :3] * (alpha[:, :, None] / np.float32(255.0))
            colour_parts.append(_block_sum(colour, f))
            alpha_parts.append(_block_sum(alpha, f))
        else:
            colour_parts.append(_block_sum(band[:, :, :3], f))
    colour = np.concatenate(colour_parts)
    area = np.outer(_block_counts(height, f), _block_counts(width, f)).astype(np.float32)
    if not has_alpha:
        return colour / area[:, :, None], None, f
    alpha_sum = np.concatenate(alpha_parts)
    seen = alpha_sum > 0  # colour weighted by alpha; where nothing is opaque it does not matter
    colour = np.where(seen[:, :, None], colour * (np.float32(255.0) / np.where(seen, alpha_sum, 1))[:, :, None], 0)
    return colour.astype(np.float32), (alpha_sum / area).astype(np.float32), f


# ----------------------------------------------------------------------------
# The ink map (§13.3).


def _stroke_width(ink: np.ndarray, quantile: float, level: float = 0.5) -> float:
    """The width of the strokes of an ink map (in its pixels): twice the
    distance from the middle of a stroke to beyond its edge, taken at the
    given quantile of the middles (ridge points of the distance transform)."""
    ndimage = _ndimage()
    top = float(ink.max())
    if top <= 0:
        return 1.0
    mask = ink >= level * top
    distance = ndimage.distance_transform_edt(mask)
    ridge = mask & (distance >= ndimage.maximum_filter(distance, size=3))
    middles = distance[ridge]
    if middles.size == 0:
        return 1.0
    return max(1.0, 2.0 * float(np.quantile(middles, quantile)))


def _strongest(ink: np.ndarray) -> float:
    k = min(ink.size, max(STRONGEST_MIN, int(STRONGEST_SHARE * ink.size)))
    return float(np.partition(ink.ravel(), ink.size - k)[ink.size - k])


def _paper_and_ink(planes: np.ndarray, dark: List[bool], size: int) -> np.ndarray:
    """Ink against a paper estimated locally: a grey closing (dark ink) or
    opening (light ink) of each smoothed channel with a size x size square,
    the difference taken relative to the paper for dark ink; channels joined
    as the root mean square."""
    ndimage = _ndimage()
    total = np.zeros(planes.shape[:2], np.float32)
    for c in range(planes.shape[2]):
        plane = planes[:, :, c]
        smooth = ndimage.gaussian_filter(plane, 0.8, mode="nearest")
        if dark[c]:
            paper = ndimage.grey_closing(smooth, size=(size, size), mode="nearest")
            diff = (paper - plane) * (np.float32(255.0) / np.maximum(paper, np.float32(PAPER_FLOOR)))
        else:
            paper = ndimage.grey_opening(smooth, size=(size, size), mode="nearest")
            diff = plane - paper
        np.clip(diff, 0.0, None, out=diff)
        total += diff * diff
    return np.sqrt(total / np.float32(planes.shape[2]))


def _grain(colour: np.ndarray) -> float:
    """The paper's grain, as a deviation in 0..255: per channel, the median
    absolute deviation of what a Gaussian smoothing (sigma 0.8) removes,
    scaled to the noise's own deviation (for white noise that part keeps
    GRAIN_SHARE of it); channels joined as the root mean square.  The median
    ignores strokes' edges while they are fewer than half the pixels."""
    ndimage = _ndimage()
    total = 0.0
    for c in range(colour.shape[2]):
        plane = colour[:, :, c]
        detail = plane - ndimage.gaussian_filter(plane, 0.8, mode="nearest")
        total += (1.4826 * float(np.median(np.abs(detail - np.median(detail)))) / GRAIN_SHARE) ** 2
    return math.sqrt(total / colour.shape[2])


def _ink(colour: np.ndarray, alpha: Optional[np.ndarray], scale: float, offset: Tuple[float, float]) -> InkMap:
    """The ink map of reduced planes (§13.3)."""
    ndimage = _ndimage()
    if alpha is not None:  # transparency (§13.3, step 1)
        if not (alpha > 0).any():
            raise ImageError("no digit found: the picture is fully transparent")
        opaque, clear = alpha >= OPAQUE, alpha <= CLEAR
        shades = colour[opaque]
        if (
            clear.any()
            and opaque.any()
            and (np.quantile(shades, 0.9, axis=0) - np.quantile(shades, 0.1, axis=0)).max() <= ONE_COLOUR
        ):
            colour = alpha[:, :, None]  # the ink is what is opaque, whatever its colour
        else:
            paper = np.median(shades, axis=0) if opaque.any() else np.full(colour.shape[2], 255.0)
            a = (alpha / np.float32(255.0))[:, :, None]
            colour = colour * a + paper.astype(np.float32) * (np.float32(1.0) - a)
    colour = colour.astype(np.float32, copy=False)
    height, width, channels = colour.shape
    # Which way each channel's ink goes: towards the extreme that lies further from its median.
    dark = []
    for c in range(channels):
        low, middle, high = np.quantile(colour[:, :, c], [0.001, 0.5, 0.999])
        dark.append(bool(middle - low >= high - middle))
    # Two passes: a wide paper estimate finds the strokes, their width sets the final one.
    wide = 2 * (min(height, width) // 4) + 1
    first = _paper_and_ink(colour, dark, wide) if wide >= 3 else _paper_and_ink(colour, dark, 3)
    strongest = _strongest(first)
    noise = _grain(colour)
    strokes = np.where(first >= NOISE_SIGMAS * noise, np.minimum(first, strongest), 0)  # not grain
    stroke = _stroke_width(strokes, 0.9, STROKE_LEVEL) if strongest > 0 else 1.0
    size = min(max(wide, 3), max(5, 2 * int(math.ceil(stroke)) + 3))
    ink = first if size == wide else _paper_and_ink(colour, dark, size)
    strongest = _strongest(ink)
    need = max(MIN_CONTRAST, NOISE_SIGMAS * noise)
    if strongest < need:
        raise ImageError(
            f"no digit found: the picture is blank (its strongest mark differs from the paper by "
            f"{strongest:.0f} of 255; a digit needs {need:.0f})"
        )
    floor = max(FAINT * strongest, NOISE_FLOOR * noise)
    ink = np.where(ink >= floor, np.minimum(ink / np.float32(strongest), np.float32(1.0)), np.float32(0.0))
    labels, count = ndimage.label(ink > 0, structure=np.ones((3, 3), bool))
    if count > 1:  # specks of grain and faint patches (shading the paper estimate missed) go
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        peaks = np.zeros(count + 1, np.float32)
        peaks[1:] = ndimage.maximum(ink, labels, np.arange(1, count + 1))
        keep = (sizes >= max(SPECK, SPECK_SHARE * sizes.max())) & (peaks >= FAINT_PATCH)
        ink = np.where(keep[labels], ink, np.float32(0.0))
    return InkMap(ink.astype(np.float32), float(scale), (float(offset[0]), float(offset[1])), float(stroke))


def ink_map(picture: Union[PathLike, np.ndarray]) -> InkMap:
    """The ink of a picture (docs/SPEC.md §13.1-13.3): float32 (H, W) in 0..1,
    bright ink on 0 paper, at most about WORK_SIDE pixels a side, with the
    scale and offset that map it back onto the picture as displayed.

    picture: a file name (read as ``load_image`` reads it, EXIF orientation
    applied, reduced while decoding) or an array as ``preprocess`` takes it.
    Raises ImageError for a blank picture (no ink stands out from the paper)
    or one that cannot be used; ImportError if SciPy (or Pillow, for a
    picture file) is missing."""
    if isinstance(picture, np.ndarray):
        source = Picture(picture)
    else:
        source = read_picture(picture)
    colour, alpha, f = _reduce_array(source.pixels)
    return _ink(colour, alpha, source.scale * f, source.offset)


# ----------------------------------------------------------------------------
# From ink to an MNIST digit (§13.4).


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of a triangle filter, widened when shrinking so
    that every input pixel counts (anti-aliased); rows sum to 1."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    distance = np.abs(np.arange(n_in)[None, :] - centres[:, None]) / support
    weights = np.clip(1.0 - distance, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def _crop(ink: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        raise ImageError("no digit found: the picture is blank (no ink is left)")
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def digit_from_ink(ink_piece: np.ndarray) -> np.ndarray:
    """A (28, 28) uint8 MNIST-style digit from ink (docs/SPEC.md §13.4).

    ink_piece: a 2-D float array in 0..1, bright ink on 0 (the ink of
    ``ink_map``, or any crop of it: it is cropped to its nonzero box here).
    Strokes that would be thinner than MNIST's after scaling are thickened,
    the ink's box is scaled to 20 pixels on its longer side (anti-aliased)
    and placed with its centre of mass at the middle of 28 x 28.
    ``preprocess(x)`` is ``digit_from_ink(ink_map(x).ink)``."""
    if not isinstance(ink_piece, np.ndarray):
        raise TypeError(f"ink must be a numpy array, not {type(ink_piece).__name__}")
    if ink_piece.ndim != 2 or ink_piece.dtype.kind not in "uif":
        raise ImageError(f"ink must be a 2-D array of numbers, not {ink_piece.dtype} of shape {ink_piece.shape}")
    ink = np.asarray(ink_piece, dtype=np.float32)
    if not np.isfinite(ink).all():
        raise ImageError("ink holds NaN or infinite values")
    ink = _crop(np.clip(ink, 0.0, 1.0))
    longer = max(ink.shape)
    stroke = _stroke_width(ink, 0.5)
    if stroke * BOX / longer < THIN:
        # Thicken by a radius that brings the stroke to STROKE pixels of the
        # box the thickened digit will have (it grows by twice the radius).
        radius = (STROKE * longer - stroke * BOX) / (2.0 * (BOX - STROKE))
        pad = int(math.ceil(radius)) + 1
        ink = np.pad(ink, pad)
        solid = ink >= 0.5 * float(ink.max())
        distance = _ndimage().distance_transform_edt(~solid)
        ink = _crop(np.maximum(ink, np.clip(np.float32(radius + 0.5) - distance, 0.0, 1.0).astype(np.float32)))
    height, width = ink.shape
    factor = BOX / max(height, width)
    out_h, out_w = max(1, round(height * factor)), max(1, round(width * factor))
    digit = _resample_matrix(height, out_h) @ ink.astype(np.float64) @ _resample_matrix(width, out_w).T
    digit = np.clip(digit, 0.0, 1.0)
    top_value = float(digit.max())
    if not top_value > 0:
        raise ImageError("no digit found: the picture is blank (no ink is left)")
    digit /= top_value
    # The centre of mass goes to pixel (14, 14), where MNIST's digits have theirs
    # (the test set's mean is (13.99, 14.01) in row and column indices).
    total = float(digit.sum())
    com_y = float((digit.sum(axis=1) * np.arange(out_h)).sum() / total)
    com_x = float((digit.sum(axis=0) * np.arange(out_w)).sum() / total)
    top = int(np.clip(round(SIZE / 2 - com_y), 0, SIZE - out_h))
    left = int(np.clip(round(SIZE / 2 - com_x), 0, SIZE - out_w))
    out = np.zeros((SIZE, SIZE), dtype=np.uint8)
    out[top : top + out_h, left : left + out_w] = np.round(digit * 255.0).astype(np.uint8)
    return out


def preprocess(array: Any) -> np.ndarray:
    """A (28, 28) uint8 MNIST-style digit from a picture of one digit (docs/SPEC.md §13).

    array: (H, W) grey, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA; bool,
    integers in 0..255, floats in 0..1; other values (16-bit, floats beyond
    1) are stretched from their minimum to their maximum onto 0..255.  Any
    size up to MAX_PIXELS.  The steps: reduce, one ink map (``ink_map``:
    transparency, the paper's shade estimated across the sheet, ink as the
    difference from it in colour, specks dropped), then ``digit_from_ink``
    (thin strokes thickened, the box scaled to 20 pixels, the centre of mass
    at the middle).

    Raises ImageError for a picture with no ink (a blank page) or one that is
    not an image at all, TypeError for something that is not a numeric array,
    ImportError if SciPy is missing.
    """
    _check_array(array)
    return digit_from_ink(ink_map(array).ink)


def as_is(array: Any) -> np.ndarray:
    """A 28 x 28 picture taken as it is, for a model: only made grey (ITU-R 601
    weights, values as preprocess reads them, transparent over white) and
    rounded to uint8; no inversion, cropping or centring."""
    _check_array(array)
    if array.shape[:2] != (SIZE, SIZE):
        raise ImageError(
            f"without preprocessing an image must be 28 x 28 pixels, not {array.shape[1]} x {array.shape[0]}"
        )
    colour, alpha, _ = _reduce_array(array)
    if colour.shape[2] == 3:
        grey = colour @ np.array([0.299, 0.587, 0.114], np.float32)
    else:
        grey = colour[:, :, 0]
    if alpha is not None:
        grey = grey * (alpha / 255.0) + 255.0 * (1.0 - alpha / 255.0)
    return np.round(np.clip(grey, 0, 255)).astype(np.uint8)


# ----------------------------------------------------------------------------
# Files (§13.5).


def _pillow() -> Any:
    """PIL.Image, or ImportError naming the extra that installs it."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            f"reading image files needs Pillow: {install_hint('images')} (.npy arrays need nothing)"
        ) from None
    return Image


def load_image(path: PathLike) -> np.ndarray:
    """The pixels of a picture file, for preprocess: uint8 (H, W), (H, W, 3) or
    (H, W, 4), or float32 (H, W) in 0..255 for 16-bit and float pictures
    (stretched from their minimum to their maximum), as displayed (EXIF
    orientation applied).  Pictures larger than WORK_SIDE (256) pixels a side
    are reduced while decoding, by averaging f x f blocks (f whole), to about
    that size: ``ink_map(path)`` says how its ink maps onto the full picture.

    ``.npy`` files are read with NumPy (``allow_pickle=False``), as stored;
    everything else through Pillow, the formats in FORMATS only (PNG, JPEG,
    BMP, GIF, TIFF, PBM/PGM/PPM, WebP, AVIF).  An animated or multi-page
    picture is read from its first frame, with a warning.  Raises ImageError
    (naming the file) for a missing file, a folder, an unsupported format,
    a damaged file, one larger than MAX_PIXELS, or anything its decoder
    throws; ImportError if Pillow is needed and missing."""
    picture = read_picture(path)
    for note in picture.notes:
        warnings.warn(note, stacklevel=2)
    return np.array(picture.pixels)


def decode_image(data: bytes, shown: str = "the image") -> np.ndarray:
    """The pixels of a picture file's bytes (PNG, JPEG, ...) through Pillow, as
    ``load_image`` gives them; ImageError names ``shown`` and what is wrong."""
    return decode_picture(data, shown).pixels


def decode_picture(data: bytes, shown: str = "the image") -> Picture:
    """A picture file's bytes as a Picture (as ``read_picture`` gives for a
    file): its pixels, maybe reduced, with the scale and offset that map them
    back onto the picture as displayed (docs/SPEC.md §13.5)."""
    if not data:
        raise ImageError(f"{shown}: empty")
    return _decode(io.BytesIO(data), shown)


def read_picture(path: PathLike) -> Picture:
    """A picture file (or .npy array) as a Picture: decoded through the one
    path (docs/SPEC.md §13.5), with its scale, offset and notes.  ImageError
    (naming the file as given) for anything that cannot be used."""
    shown = os.fspath(path)  # messages name the file as the caller did
    path = Path(path)
    try:
        if not path.exists():
            raise ImageError(f"{shown}: no such file")
        if path.is_dir():
            raise ImageError(f"{shown}: is a folder, not an image file")
        if path.stat().st_size == 0:
            raise ImageError(f"{shown}: the file is empty")
        if path.suffix.lower() == ".npy":
            return Picture(_load_npy(path, shown))
        with open(path, "rb") as stream:
            return _decode(stream, shown)
    except OSError as e:  # unreadable: permissions, I/O errors
        raise ImageError(f"{shown}: cannot read it ({e.strerror or e})") from None
    except MemoryError:
        raise ImageError(f"{shown}: not enough memory to read it") from None


def _load_npy(path: Path, shown: str) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, TypeError, EOFError, OverflowError) as e:  # not .npy, Python objects, a lying header
        raise ImageError(f"{shown}: not a usable .npy array ({one_line(e)})") from None
    if not isinstance(array, np.ndarray):
        raise ImageError(f"{shown}: not a .npy array")
    if array.dtype.kind not in "buif":
        raise ImageError(f"{shown}: not a picture: a .npy array of {array.dtype} (pictures are numbers)")
    try:
        _check_array(array)
    except ImageError as e:
        raise ImageError(f"{shown}: {e}") from None
    return array


def one_line(e: BaseException) -> str:
    """An exception as one line: its type and its message, whitespace folded."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


#: HEIF brands (the ftyp box's major brand): photos from phones, which Pillow does not read.
_HEIF = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1")

#: EXIF orientation -> how the stored pixels become the displayed picture:
#: (transpose rows and columns first?, reverse the displayed x?, reverse the displayed y?)
_ORIENT = {
    1: (False, False, False),
    2: (False, True, False),
    3: (False, True, True),
    4: (False, False, True),
    5: (True, False, False),
    6: (True, True, False),
    7: (True, True, True),
    8: (True, False, True),
}


def _orientation(img: Any) -> int:
    """The EXIF Orientation tag (1..8); a broken or missing one reads as 1."""
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block: the picture is read as stored
        return 1
    return value if isinstance(value, int) and value in _ORIENT else 1


def _decode(stream: BinaryIO, shown: str) -> Picture:
    """Decode through Pillow (allowed formats, bounded memory, orientation)."""
    Image = _pillow()
    head = stream.read(12)
    stream.seek(0)
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF:
        raise ImageError(f"{shown}: a HEIC/HEIF photo, not a supported picture format: export it as JPEG or PNG")
    with warnings.catch_warnings():
        # Pillow only warns between its own limit and twice it: refuse those too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            Image.init()
            with Image.open(stream, formats=[name for name in FORMATS if name in Image.OPEN]) as img:
                return _pixels(img, shown)
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{shown}: too large to decode safely (a decompression bomb?)") from None
        except Image.UnidentifiedImageError:
            raise ImageError(
                f"{shown}: not a supported picture format: not an image, or not one of {SHOWN_FORMATS}"
            ) from None
        except MemoryError:
            raise ImageError(f"{shown}: not enough memory to decode it") from None
        except Exception as e:  # whatever a decoder throws is this file's answer
            raise ImageError(
                f"{shown}: a damaged or truncated image, or one Pillow cannot decode ({one_line(e)})"
            ) from None


def _pixels(img: Any, shown: str) -> Picture:
    """An opened Pillow image, reduced while decoding, as displayed (§13.5)."""
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{shown}: too large to decode safely: {width} x {height} pixels "
            f"(the limit is {MAX_PIXELS:,}; a decompression bomb?)"
        )
    notes = []
    if img.format != "MPO" and getattr(img, "is_animated", False):
        notes.append(f"{shown}: an animated or multi-page picture: read from its first frame")
    orientation = _orientation(img)
    f = max(1, -(-max(width, height) // WORK_SIDE))
    scale = 1
    if img.format in ("JPEG", "MPO") and f > 1:  # decode at 1/2, 1/4 or 1/8 directly
        img.draft(img.mode, (-(-width // f), -(-height // f)))
        scale = 1 << max(0, round(math.log2(width / img.size[0])))
        f = max(1, -(-max(img.size) // WORK_SIDE))
    img.load()
    array = _reduce_image(img, f, shown)
    scale *= f
    swap, flip_x, flip_y = _ORIENT[orientation]
    if swap:
        array = array.swapaxes(0, 1)
        width, height = height, width
    if flip_x:
        array = array[:, ::-1]
    if flip_y:
        array = array[::-1]
    offset = (width - array.shape[1] * scale if flip_x else 0.0, height - array.shape[0] * scale if flip_y else 0.0)
    return Picture(np.ascontiguousarray(array), float(scale), (float(offset[0]), float(offset[1])), notes)


def _reduce_image(img: Any, f: int, shown: str) -> np.ndarray:
    """A loaded Pillow image as an array, converted and averaged by f x f blocks
    a band of rows at a time: uint8 L, RGB or RGBA, or float32 0..255 for deep
    modes (stretched from the picture's minimum to its maximum)."""
    width, height = img.size
    rows = f * max(1, BAND_PIXELS // max(1, width * f))
    deep = img.mode in ("I", "F") or img.mode.startswith("I;16")
    if deep:
        low, high = (float(v) for v in img.getextrema())
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ImageError(f"{shown}: the picture holds NaN or infinite values")
        gain = 255.0 / (high - low) if high > low else 0.0
    elif img.mode in ("1", "L"):
        mode = "L"
    elif img.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (img.mode == "P" and "transparency" in img.info):
        mode = "RGBA"
    else:
        mode = "RGB"
    parts = []
    for y in range(0, height, rows):
        piece = img.crop((0, y, width, min(height, y + rows))) if rows < height else img
        if deep:
            band = np.asarray(piece).astype(np.float32)
            if not np.isfinite(band).all():
                raise ImageError(f"{shown}: the picture holds NaN or infinite values")
            band = np.clip((band - np.float32(low)) * np.float32(gain), 0.0, 255.0)
            area = np.outer(_block_counts(band.shape[0], f), _block_counts(band.shape[1], f))
            parts.append((_block_sum(band, f) / area).astype(np.float32))
            continue
        if piece.mode != mode:
            piece = piece.convert(mode)
        if f > 1:
            if mode == "RGBA":  # average colours weighted by alpha
                piece = piece.convert("RGBa").reduce(f).convert("RGBA")
            else:
                piece = piece.reduce(f)
        parts.append(np.asarray(piece))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
