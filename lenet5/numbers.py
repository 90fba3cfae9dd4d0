"""Whole numbers: several handwritten digits in one picture, read left to right.

    from lenet5 import read_number
    reading = read_number("meter.jpg")       # a path or an array, as preprocess takes
    reading.number, reading.confidence       # "2024", the least sure digit's probability
    reading.digits[0].box                    # (x0, y0, x1, y1) in the picture as displayed

The picture becomes one ink map (``lenet5.images.ink_map``, docs/SPEC.md
§13); the map is cut into digits (docs/SPEC.md §14): connected pieces of ink,
pieces of one digit joined, specks dropped, touching digits split where the
network is most sure of both sides; each digit is made MNIST-style exactly as
a picture of one digit is (``digit_from_ink``) and read by the network.
Needs scipy (the extra ``images``) for the connected components.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._version import install_hint
from .images import ImageError, InkMap, Picture, digit_from_ink, ink_map

if TYPE_CHECKING:
    from .model import LeNet5

__all__ = ["DigitReading", "NumberReading", "read_number", "reading_payload", "looks_like_a_number", "ink_of"]

#: Ink at least this strong (of the strongest, 1) makes the pieces that are
#: labelled; fainter ink goes to the nearest piece (§14.1).
LABEL_LEVEL = 0.25
#: Fainter ink further than this many pixels of the ink map from any piece is dropped.
REACH = 3.0
#: A piece with less than this fraction of the largest piece's pixels is a speck.
SPECK_AREA = 0.02
#: Pieces overlapping in x by at least this fraction of the narrower one are one digit.
JOIN_OVERLAP = 0.5
#: Pieces at least TALL times the tallest's height are digits of their own;
#: a shorter one joins a piece it overlaps in x, or one within NEAR times
#: that piece's height, if it is shorter than TALL times that piece's height.
TALL, NEAR = 0.7, 0.2
#: A joined piece shorter than this fraction of the tallest one is a mark, not a digit.
DIGIT_HEIGHT = 0.4
#: Only this many of the largest pieces are considered (a picture of grain has thousands).
MAX_PIECES = 64
#: A piece wider than SURE_WIDE times a digit's height may be digits
#: touching (4 % of MNIST's digits are wider than 1.15 times their height, 1 %
#: than 1.43): it is split where the network is surer of both sides than of
#: the whole.  Wider than MUST_SPLIT times (0.1 % of MNIST's digits), it is split.
SURE_WIDE, MUST_SPLIT = 1.25, 1.6
#: So is one wider than WIDE times a digit's height and CROWDED times the
#: median width of the others that are not as thin as a 1 (THIN).
WIDE, CROWDED, THIN = 0.9, 1.6, 0.5
#: Two digit-tall pieces overlapping in x are one digit unless the network is
#: less than JOIN_DOUBT times as sure of them joined as of either alone.
JOIN_DOUBT = 0.5
#: How many of the thinnest columns are tried as cuts, and how near an edge
#: (as a fraction of the width) a cut may lie.
CUTS, CUT_MARGIN = 8, 0.15
#: The note suggesting --number: two digit-sized pieces with a gap of at least
#: this fraction of their median height.
NOTE_GAP = 0.25


@dataclass(frozen=True)
class DigitReading:
    """One digit of a number, as the network read it."""

    digit: int  #: the digit (the argmax of the outputs, docs/SPEC.md §5.5)
    probability: float  #: its probability (docs/SPEC.md §6.4)
    probabilities: np.ndarray  #: (10,) float64, all ten
    box: Tuple[int, int, int, int]  #: (x0, y0, x1, y1) in the picture as displayed, x1 and y1 exclusive
    image: np.ndarray  #: (28, 28) uint8, the MNIST-style image the network saw


@dataclass(frozen=True)
class NumberReading:
    """A whole number: its digits from left to right."""

    number: str  #: the digits as text, "2024"
    confidence: float  #: the least sure digit's probability
    digits: Tuple[DigitReading, ...]  #: left to right

    def to_dict(self, inputs: bool = False) -> Dict[str, Any]:
        """The --json object without "path"; ``inputs`` adds each digit's
        28 x 28 ``"input"`` (as the page's API gives it)."""
        digits = []
        for d in self.digits:
            entry: Dict[str, Any] = {
                "digit": d.digit,
                "probability": d.probability,
                "probabilities": [float(p) for p in d.probabilities],
                "box": list(d.box),
            }
            if inputs:
                entry["input"] = d.image.astype(int).tolist()
            digits.append(entry)
        return {"number": self.number, "confidence": self.confidence, "digits": digits}


def reading_payload(reading: NumberReading) -> Dict[str, Any]:
    """The answer of ``POST /api/read-number``: the --json object without
    "path", each digit with its "input" (28 x 28 ints)."""
    return reading.to_dict(inputs=True)


# -- segmentation (docs/SPEC.md §14) ------------------------------------------------------


@dataclass
class _Piece:
    """A part of the ink map: its ink (others' ink zeroed) within its box (rows, columns, exclusive ends)."""

    ink: np.ndarray
    top: int
    left: int

    @property
    def height(self) -> int:
        return int(self.ink.shape[0])

    @property
    def width(self) -> int:
        return int(self.ink.shape[1])


Judge = Callable[[Sequence[np.ndarray]], np.ndarray]


def _ndimage() -> Any:
    try:
        from scipy import ndimage
    except ImportError:
        raise ImportError(f"reading whole numbers needs scipy: {install_hint('images')}") from None
    return ndimage


def _trim(ink: np.ndarray, top: int, left: int) -> Optional[_Piece]:
    """The piece cut to its ink's bounding box, or None if it holds no ink."""
    rows, cols = np.nonzero(ink)
    if rows.size == 0:
        return None
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    return _Piece(ink[r0:r1, c0:c1], top + int(r0), left + int(c0))


def _components(ink: np.ndarray) -> Tuple[np.ndarray, List[int], Dict[int, Tuple[slice, slice]]]:
    """§14.1: the labelled pieces (specks dropped), fainter ink given to the
    nearest one: (owner map, the pieces' labels, their boxes)."""
    ndimage = _ndimage()
    eight = np.ones((3, 3), dtype=bool)
    labels, count = ndimage.label(ink >= LABEL_LEVEL, structure=eight)
    if count == 0:  # only faint ink: take all of it
        labels, count = ndimage.label(ink > 0, structure=eight)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    # Specks go first, so that they neither join a digit nor count as one.
    keep = np.flatnonzero(areas >= SPECK_AREA * areas.max())
    keep = keep[np.argsort(-areas[keep], kind="stable")][:MAX_PIECES] + 1
    kept = np.isin(labels, keep)
    distance, (near_r, near_c) = ndimage.distance_transform_edt(~kept, return_indices=True)
    owner = np.where((ink > 0) & (distance <= REACH), labels[near_r, near_c], 0)
    owner[~kept & (owner > 0) & ~np.isin(owner, keep)] = 0
    boxes = ndimage.find_objects(owner)
    spans = {int(k): boxes[k - 1] for k in keep if k - 1 < len(boxes) and boxes[k - 1] is not None}
    return owner, sorted(spans), spans


def _pieces(ink: np.ndarray, judge: Optional[Judge]) -> List[_Piece]:
    """§14.2-14.3: pieces of one digit joined, marks dropped; in no particular order.

    judge (the network's probabilities for ink pieces) settles whether two
    digit-tall pieces overlapping in x are one digit (a 6 in two strokes) or
    two (a slanted 1 leaning over a 4); without it they stay apart."""
    owner, labels, spans = _components(ink)
    if not labels:
        return []
    group = {k: k for k in labels}

    def root(k: int) -> int:
        while group[k] != k:
            k = group[k]
        return k

    height = {k: spans[k][0].stop - spans[k][0].start for k in labels}
    tallest = max(height.values())

    def overlap(a: int, b: int) -> float:
        """How much of the narrower one's columns the two share (0..1)."""
        (_, ac), (_, bc) = spans[a], spans[b]
        shared = min(ac.stop, bc.stop) - max(ac.start, bc.start)
        return max(0, shared) / min(ac.stop - ac.start, bc.stop - bc.start)

    def gap(a: int, b: int) -> int:
        (ar, ac), (br, bc) = spans[a], spans[b]
        return max(max(ac.start, bc.start) - min(ac.stop, bc.stop), max(ar.start, br.start) - min(ar.stop, br.stop), 0)

    # A piece shorter than a neighbour joins the one it overlaps most in x,
    # else the nearest within reach.
    for a in labels:
        if height[a] >= TALL * tallest:
            continue
        others = [b for b in labels if b != a and height[a] < TALL * height[b]]
        best = max(others, key=lambda b: (overlap(a, b), -gap(a, b)), default=None)
        if best is not None and (overlap(a, best) >= JOIN_OVERLAP or gap(a, best) <= NEAR * height[best]):
            group[root(a)] = root(best)

    def piece(ks: List[int]) -> Optional[_Piece]:
        return _trim(np.where(np.isin(owner, ks), ink, 0.0), 0, 0)

    members: Dict[int, List[int]] = {}
    for k in labels:
        members.setdefault(root(k), []).append(k)
    # Two digit-tall groups overlapping in x: one digit if the network is surer of it whole.
    if judge is not None:
        merged = True
        while merged:
            merged = False
            roots = sorted(members, key=lambda r: min(spans[k][1].start for k in members[r]))
            for ra, rb in zip(roots, roots[1:]):
                a0 = min(spans[k][1].start for k in members[ra])
                a1 = max(spans[k][1].stop for k in members[ra])
                b0 = min(spans[k][1].start for k in members[rb])
                b1 = max(spans[k][1].stop for k in members[rb])
                if min(a1, b1) - max(a0, b0) < JOIN_OVERLAP * min(a1 - a0, b1 - b0):
                    continue
                pa, pb, both = piece(members[ra]), piece(members[rb]), piece(members[ra] + members[rb])
                if pa is None or pb is None or both is None:
                    continue
                sure = judge([both.ink, pa.ink, pb.ink]).max(axis=1)
                if sure[0] >= JOIN_DOUBT * min(sure[1], sure[2]):
                    members[ra] += members.pop(rb)
                    merged = True
                    break
    pieces = [p for p in (piece(ks) for ks in members.values()) if p is not None]
    tallest = max(p.height for p in pieces)
    return [p for p in pieces if p.height >= DIGIT_HEIGHT * tallest]


def _split(piece: _Piece, digit_height: float, typical_width: Optional[float], judge: Judge) -> List[_Piece]:
    """§14.4: a piece that may be digits touching, cut along one of its thin
    columns where the network is most sure of both sides (then each side
    again); kept whole where the rules say it is one digit."""
    h, w = max(piece.height, digit_height), piece.width
    crowded = typical_width is not None and w > CROWDED * typical_width and w > WIDE * h
    if w <= SURE_WIDE * h and not crowded:
        return [piece]
    smooth = np.convolve(piece.ink.sum(axis=0), np.ones(3) / 3, mode="same")
    lo, hi = max(1, int(np.ceil(CUT_MARGIN * w))), min(w - 1, int(np.floor((1 - CUT_MARGIN) * w)))
    if hi < lo:
        return [piece]
    columns = list(range(lo, hi + 1))
    # Local minima of the smoothed column sums first, thinnest first; then the thinnest other columns.
    minima = sorted(
        (c for c in columns if smooth[c] <= smooth[c - 1] and smooth[c] <= smooth[min(c + 1, w - 1)]),
        key=lambda c: smooth[c],
    )
    rest = sorted((c for c in columns if c not in minima), key=lambda c: smooth[c])
    halves: List[Tuple[_Piece, _Piece]] = []
    for c in minima + rest:
        left = _trim(piece.ink[:, :c], piece.top, piece.left)
        right = _trim(piece.ink[:, c:], piece.top, piece.left + c)
        # Each side must be as tall as a digit: a cut through a 7's bar is no split.
        if left is not None and right is not None and min(left.height, right.height) >= DIGIT_HEIGHT * h:
            halves.append((left, right))
        if len(halves) == CUTS:
            break
    if not halves:
        return [piece]
    sure = judge([piece.ink] + [half.ink for pair in halves for half in pair]).max(axis=1)
    both = np.minimum(sure[1::2], sure[2::2])
    best = int(np.argmax(both))
    if w <= MUST_SPLIT * h and both[best] <= sure[0]:
        return [piece]
    left, right = halves[best]
    return _split(left, digit_height, typical_width, judge) + _split(right, digit_height, typical_width, judge)


def _segment(ink: np.ndarray, judge: Judge) -> List[_Piece]:
    """§14: the digits' pieces of an ink map, left to right."""
    pieces = _pieces(ink, judge)
    if not pieces:
        return []
    digit_height = float(np.median([p.height for p in pieces]))
    out: List[_Piece] = []
    for p in pieces:
        others = [q.width for q in pieces if q is not p and q.width >= THIN * digit_height]
        out.extend(_split(p, digit_height, float(np.median(others)) if others else None, judge))
    # Left to right by the centre of each piece's box.
    return sorted(out, key=lambda p: p.left + p.width / 2)


def _box(piece: _Piece, ink: InkMap) -> Tuple[int, int, int, int]:
    """The piece's box in the picture as displayed, at full resolution, ends exclusive (§14.6)."""
    ox, oy = ink.offset
    s = ink.scale
    return (
        int(np.floor(ox + piece.left * s)),
        int(np.floor(oy + piece.top * s)),
        int(np.ceil(ox + (piece.left + piece.width) * s)),
        int(np.ceil(oy + (piece.top + piece.height) * s)),
    )


def looks_like_a_number(picture: Any) -> bool:
    """True if the picture (a path, an array or its InkMap) holds at least two
    digit-sized pieces with a gap of at least NOTE_GAP of their median height
    between neighbours (docs/SPEC.md §14.7): the hint that single-digit mode
    should suggest --number."""
    ink = picture if isinstance(picture, InkMap) else ink_map(picture)
    pieces = sorted(_pieces(ink.ink, None), key=lambda p: p.left)
    if len(pieces) < 2:
        return False
    gap = NOTE_GAP * float(np.median([p.height for p in pieces]))
    return any(b.left - (a.left + a.width) >= gap for a, b in zip(pieces, pieces[1:]))


PictureLike = Union[str, "os.PathLike[str]", np.ndarray, InkMap, Picture]


def ink_of(picture: Picture) -> InkMap:
    """The ink map of a picture already read (``lenet5.images.read_picture``),
    mapped onto the full picture as ``ink_map(path)`` maps it."""
    ink = ink_map(picture.pixels)
    (px, py), s = picture.offset, picture.scale
    return InkMap(ink.ink, ink.scale * s, (px + ink.offset[0] * s, py + ink.offset[1] * s), ink.stroke)


def read_number(picture: PictureLike, net: Optional[LeNet5] = None, threads: Optional[int] = None) -> NumberReading:
    """The whole number in a picture of one or more handwritten digits.

    picture: a path to a picture file or ``.npy`` array, an array as
    ``preprocess`` takes, a decoded ``lenet5.images.Picture`` (which knows
    how it was reduced), or an ``InkMap`` (``lenet5.images.ink_map``); net: a LeNet5 (default: the shipped pretrained
    model); threads: the C core's threads (default as ``LeNet5.predict``).
    Raises ImageError for a blank or unusable picture (naming the
    file), ImportError if Pillow or scipy is needed and missing.
    """
    if net is None:
        from .model import LeNet5

        net = LeNet5.pretrained()
    if isinstance(picture, InkMap):
        ink = picture
    elif isinstance(picture, Picture):  # already decoded (and maybe reduced): boxes still at full size
        ink = ink_of(picture)
    elif isinstance(picture, np.ndarray):
        ink = ink_map(picture)
    else:
        shown = os.fspath(picture)
        try:
            ink = ink_map(picture)
        except ImageError as e:  # the file is named once
            if str(e).startswith(shown + ":"):
                raise
            raise ImageError(f"{shown}: {e}") from None

    def judge(inks: Sequence[np.ndarray]) -> np.ndarray:
        return np.atleast_2d(net.predict_proba(np.stack([digit_from_ink(i) for i in inks]), threads=threads))

    pieces = _segment(ink.ink, judge)
    if not pieces:
        raise ImageError("no digit found: the ink map holds no ink")
    images = np.stack([digit_from_ink(p.ink) for p in pieces])
    found = np.atleast_1d(net.predict(images, threads=threads))  # its argmax, docs/SPEC.md §5.5
    proba = np.atleast_2d(net.predict_proba(images, threads=threads))
    digits = tuple(
        DigitReading(
            digit=int(k),
            probability=float(p[k]),
            probabilities=np.asarray(p, dtype=np.float64),
            box=_box(piece, ink),
            image=im,
        )
        for piece, k, p, im in zip(pieces, found, proba, images)
    )
    return NumberReading(
        number="".join(str(d.digit) for d in digits), confidence=min(d.probability for d in digits), digits=digits
    )
