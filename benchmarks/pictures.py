"""Pictures benchmark: the 12-megapixel time, and how many pictures of each kind read right.

    python benchmarks/pictures.py [--per-kind N] [--seed S] [--before OLD_IMAGES_PY] [--tests-kinds]
                                  [--json docs/pictures.json]

1. Time: ``load_image`` + ``preprocess`` + ``LeNet5.predict`` of a 4000 x
   3000 phone JPEG (a digit on unevenly lit paper, grain), in-process, the
   median of 15 runs after 3 warm-up runs.
2. Accuracy: N pictures of each kind (MNIST test digits, the shipped
   pretrained model) made by this file's own renderers, independent of the
   tests' (tests/picture_kinds.py): other digits, another seed, other light,
   pens, colours and sizes; the blocky scans also from another handwriting
   set, the UCI 8 x 8 digits that scikit-learn ships (left out if it is not
   installed).

``--before PATH`` names an older ``lenet5/images.py`` (for instance from
``git show <commit>:lenet5/images.py > old_images.py``): it is timed and
scored on the same pictures in the same run, as the peer.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional

import numpy as np
from common import cpu_id, cpu_model, write_json  # benchmarks/common.py
from PIL import Image, ImageDraw
from scipy import ndimage

from lenet5 import LeNet5, load_split
from lenet5 import images as current

Maker = Callable[[np.ndarray, np.random.Generator, Path, str], Path]


def load_before(path: str) -> ModuleType:
    """An older images.py, imported as a module of the lenet5 package."""
    spec = importlib.util.spec_from_file_location("lenet5._images_before", path)
    if spec is None or spec.loader is None:
        sys.exit(f"pictures.py: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------
# Renderers (not the tests': these warp, blur and light differently).


def warped(digit: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """The digit's ink in 0..1 at size x size, sheared, turned and blurred a little."""
    big = np.asarray(Image.fromarray(digit).resize((size, size), Image.LANCZOS), np.float64) / 255
    angle, shear = np.radians(rng.uniform(-12, 12)), rng.uniform(-0.25, 0.25)
    a = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.array([[1, shear], [0, 1]])
    centre = np.array([size / 2, size / 2])
    out = ndimage.affine_transform(big, a, offset=centre - a @ centre, order=1)
    return np.clip(ndimage.gaussian_filter(out, rng.uniform(0, 0.012 * size)), 0, 1)


def placed(ink: np.ndarray, rng: np.random.Generator, wide: float = 1.6, tall: float = 1.6) -> np.ndarray:
    h, w = ink.shape
    sheet = np.zeros((int(h * rng.uniform(1.15, tall)), int(w * rng.uniform(1.15, wide))))
    y, x = rng.integers(0, sheet.shape[0] - h + 1), rng.integers(0, sheet.shape[1] - w + 1)
    sheet[y : y + h, x : x + w] = ink
    return sheet


def paper_texture(shape: tuple, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Smooth blotches of the paper's shade, +-amount."""
    small = rng.normal(0, 1, (max(2, shape[0] // 40), max(2, shape[1] // 40)))
    zoom = (shape[0] / small.shape[0], shape[1] / small.shape[1])
    t = ndimage.zoom(small, zoom, order=3)[: shape[0], : shape[1]]
    return amount * t / max(1e-9, np.abs(t).max())


def to_file(x: np.ndarray, path: Path, **options: Any) -> Path:
    Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8)).save(path, **options)
    return path


def photo(digit: np.ndarray, rng: np.random.Generator, folder: Path, name: str) -> Path:
    c = placed(warped(digit, int(rng.integers(60, 260)), rng), rng)
    paper, pen = rng.uniform(180, 250), rng.uniform(10, 90)
    x = paper + paper_texture(c.shape, rng, 6) + (pen - paper) * c + rng.normal(0, rng.uniform(2, 9), c.shape)
    tint = np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.78, 1.0)])
    return to_file(x[:, :, None] * tint, folder / f"{name}.jpg", quality=int(rng.integers(70, 96)))


def ridge_pen(digit: np.ndarray, rng: np.random.Generator, folder: Path, name: str) -> Path:
    """A fine pen: the ridge line of the smoothed digit (where it is highest
    across the stroke), 1 or 2 pixels wide, on a canvas of 150-400 pixels."""
    canvas_side = int(rng.integers(150, 400))
    size = int(canvas_side * rng.uniform(0.5, 0.8))
    c = ndimage.gaussian_filter(warped(digit, size, rng), size / 60)
    ridge = (c > 0.3) & (
        ((c >= np.roll(c, 1, 0)) & (c >= np.roll(c, -1, 0))) | ((c >= np.roll(c, 1, 1)) & (c >= np.roll(c, -1, 1)))
    )
    if rng.random() < 0.5:
        ridge = ndimage.binary_dilation(ridge, np.ones((1, 2), bool))
    line = np.zeros((canvas_side, canvas_side))
    y, x = rng.integers(0, canvas_side - size + 1, 2)
    line[y : y + size, x : x + size] = ridge
    paper, pen = rng.uniform(215, 255), rng.uniform(0, 80)
    return to_file(paper + (pen - paper) * line + rng.normal(0, 2, line.shape), folder / f"{name}.png")


def vignette_and_shadow(digit: np.ndarray, rng: np.random.Generator, folder: Path, name: str) -> Path:
    """Light falling off 15-35 % towards a corner, and the soft shadow of a hand or phone."""
    c = placed(warped(digit, int(rng.integers(80, 240)), rng), rng, 2.0, 2.0)
    h, w = c.shape
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(-0.2, 1.2) * h, rng.uniform(-0.2, 1.2) * w
    far = np.hypot(yy - cy, xx - cx) / np.hypot(h, w)
    light = 1 - rng.uniform(0.15, 0.35) * far / far.max()
    shadow = Image.new("L", (w, h), 0)
    ey, ex = rng.uniform(0, h), rng.uniform(0, w)
    ImageDraw.Draw(shadow).ellipse([ex - w * 0.5, ey - h * 0.3, ex + w * 0.5, ey + h * 0.3], fill=255)
    soft = ndimage.gaussian_filter(np.asarray(shadow, np.float64) / 255, 0.06 * max(h, w))
    light *= 1 - rng.uniform(0.1, 0.3) * soft
    paper, pen = rng.uniform(190, 250), rng.uniform(10, 70)
    x = (paper + (pen - paper) * c) * light + rng.normal(0, 3, c.shape)
    return to_file(x, folder / f"{name}.jpg", quality=88)


def hsv_colour(hue: float, saturation: float, value: float) -> np.ndarray:
    rgb = Image.new("HSV", (1, 1), (int(hue * 255), int(saturation * 255), int(value * 255))).convert("RGB")
    return np.array(rgb.getpixel((0, 0)), np.float64)


def colour_pair(digit: np.ndarray, rng: np.random.Generator, folder: Path, name: str) -> Path:
    """Ink of any hue on paper of another, the two at least 90 apart in RGB."""
    while True:
        ink = hsv_colour(rng.random(), rng.uniform(0.5, 1), rng.uniform(0.4, 1))
        paper = hsv_colour(rng.random(), rng.uniform(0.05, 0.6), rng.uniform(0.5, 1))
        if np.linalg.norm(ink - paper) >= 90:
            break
    c = placed(warped(digit, int(rng.integers(60, 220)), rng), rng)[:, :, None]
    x = paper + (ink - paper) * c + rng.normal(0, 3, c.shape)
    return to_file(x, folder / f"{name}.{'png' if rng.random() < 0.5 else 'jpg'}")


#: how to store a picture so that the EXIF orientation shows it upright
STORE = {
    2: Image.FLIP_LEFT_RIGHT,
    3: Image.ROTATE_180,
    4: Image.FLIP_TOP_BOTTOM,
    5: Image.TRANSPOSE,
    6: Image.ROTATE_90,
    7: Image.TRANSVERSE,
    8: Image.ROTATE_270,
}


def rotated_phone(digit: np.ndarray, rng: np.random.Generator, folder: Path, name: str) -> Path:
    """A 1500-3000 pixel phone photo stored turned (orientation 3, 6 or 8, sometimes a mirror one)."""
    side = int(rng.integers(1500, 3000))
    c = placed(warped(digit, int(side * rng.uniform(0.3, 0.6)), rng), rng, 1.6, 2.2)
    x = rng.uniform(190, 240) + (rng.uniform(20, 70) - 215) * c + rng.normal(0, 5, c.shape)
    orientation = int(rng.choice([3, 6, 8, 3, 6, 8, 5, 7]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    shown = Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8)).convert("RGB")
    path = folder / f"{name}.jpg"
    shown.transpose(STORE[orientation]).save(path, quality=85, exif=exif)
    return path


def cut_out(digit: np.ndarray, rng: np.random.Generator, folder: Path, name: str) -> Path:
    """A digit exported with a transparent background: black, white or a random colour."""
    c = placed(warped(digit, int(rng.integers(40, 200)), rng), rng)
    rgba = np.zeros(c.shape + (4,))
    kind = int(rng.integers(3))
    rgba[:, :, :3] = (0, 0, 0) if kind == 0 else (255, 255, 255) if kind == 1 else rng.integers(0, 256, 3)
    rgba[:, :, 3] = 255 * c
    path = folder / f"{name}.png"
    Image.fromarray(np.round(rgba).astype(np.uint8), "RGBA").save(path)
    return path


def blocks(levels: np.ndarray, rng: np.random.Generator, folder: Path, name: str) -> Path:
    """An 8 x 8 scan (0..1, ink bright) blown up 8 times without smoothing, dark on light."""
    big = np.kron(levels, np.ones((8, 8)))
    x = np.pad(250 * (1 - big), int(rng.integers(0, 12)), constant_values=250)
    return to_file(x, folder / f"{name}.png")


def mnist_blocky(digit: np.ndarray, rng: np.random.Generator, folder: Path, name: str) -> Path:
    small = np.asarray(Image.fromarray(digit[3:25, 3:25]).resize((8, 8), Image.BILINEAR), np.float64) / 255
    return blocks(np.round(small * 16) / 16, rng, folder, name)


KINDS: Dict[str, Maker] = {
    "plain photo": photo,
    "thin pen": ridge_pen,
    "uneven light": vignette_and_shadow,
    "coloured ink": colour_pair,
    "EXIF orientation": rotated_phone,
    "transparent": cut_out,
    "blocky scan (MNIST)": mnist_blocky,
}


# ----------------------------------------------------------------------------


def phone_jpeg(path: Path, digit: np.ndarray) -> None:
    """A 4000 x 3000 photo of a digit on grainy paper, lit 10 % less on one side
    (the reader before issue 22 still reads it)."""
    rng = np.random.default_rng(0)
    ink = np.asarray(Image.fromarray(digit).resize((1500, 1500), Image.BICUBIC), np.float32) / 255
    light = (1 - 0.1 * np.arange(4000, dtype=np.float32) / 4000)[None, :]
    x = np.empty((3000, 4000, 3), np.uint8)
    for channel, paper in enumerate((232.0, 226.0, 205.0)):
        plane = np.float32(paper) * light * np.ones((3000, 1), np.float32)
        plane[700:2200, 1200:2700] *= 1 - 0.85 * ink
        plane += rng.standard_normal(plane.shape, dtype=np.float32) * 6
        x[:, :, channel] = np.clip(plane, 0, 255)
    Image.fromarray(x).save(path, quality=90)


def time_12mp(path: Path, module: ModuleType, net: LeNet5, warm: int = 3, runs: int = 15) -> float:
    times: List[float] = []
    for k in range(warm + runs):
        start = time.perf_counter()
        net.predict(module.preprocess(module.load_image(path)))
        if k >= warm:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def score(module: ModuleType, paths: List[Path], labels: List[int], net: LeNet5) -> int:
    right = 0
    for path, label in zip(paths, labels):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                right += int(net.predict(module.preprocess(module.load_image(path)))) == label
        except Exception:  # a picture the reader cannot use counts as wrong
            pass
    return right


def tests_kinds(
    readers: Dict[str, ModuleType], net: LeNet5, images: np.ndarray, labels: np.ndarray, per_kind: int, folder: Path
) -> Dict[str, Dict[str, int]]:
    """How many of per_kind pictures of each kind the tests make
    (tests/picture_kinds.py, seed 99) each reader reads right, under
    pictures.py's names for the kinds."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    try:
        import picture_kinds
    finally:
        sys.path.pop(0)
    rng = np.random.default_rng(99)
    table: Dict[str, Dict[str, int]] = {}
    for kind, make in picture_kinds.KINDS.items():
        pick = rng.choice(len(images), per_kind, replace=False)
        paths = [make(images[k], rng, folder, f"tests-{kind.split()[0]}{i}") for i, k in enumerate(pick)]
        name = "blocky scan (MNIST)" if kind == "blocky scan" else kind
        table[name] = {
            reader: score(module, paths, [int(labels[k]) for k in pick], net) for reader, module in readers.items()
        }
        for path in paths:
            path.unlink()
        print(f"  tests' {kind}: " + ", ".join(f"{r} {c}/{per_kind}" for r, c in table[name].items()))
    return table


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--per-kind", type=int, default=100, metavar="N", help="pictures of each kind (default 100)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--before", metavar="PATH", help="an older lenet5/images.py to compare with")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.add_argument(
        "--tests-kinds",
        action="store_true",
        help="also score tests/picture_kinds.py's pictures (seed 99): docs/pictures.md's tests columns",
    )
    args = p.parse_args(argv)
    readers = {"after": current}
    if args.before:
        readers["before"] = load_before(args.before)
    net = LeNet5.pretrained()
    images, labels = load_split("test")
    rng = np.random.default_rng(args.seed)
    result: Dict[str, Any] = {"cpu": cpu_model(), "cpu_id": cpu_id(), "per_kind": args.per_kind}
    print(f"CPU: {result['cpu']} ({result['cpu_id']})")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        phone = folder / "phone.jpg"
        phone_jpeg(phone, 255 - images[0])
        result["time_12mp_ms"] = {}
        for name, module in readers.items():
            result["time_12mp_ms"][name] = 1000 * time_12mp(phone, module, net)
        shown = ", ".join(f"{name} {ms:.0f} ms" for name, ms in result["time_12mp_ms"].items())
        print(f"4000 x 3000 JPEG, load_image + preprocess + predict (median of 15 after 3): {shown}")
        sets = {kind: (make, images, labels) for kind, make in KINDS.items()}
        try:
            from sklearn.datasets import load_digits

            uci = load_digits()
            sets["blocky scan (UCI 8 x 8)"] = (
                lambda levels, r, d, n: blocks(levels, r, d, n),
                uci.images / 16.0,
                uci.target,
            )
        except ImportError:
            print("scikit-learn is not installed: the UCI blocky scans are left out")
        table: Dict[str, Dict[str, int]] = {}
        for kind, (make, pool, truth) in sets.items():
            pick = rng.choice(len(pool), args.per_kind, replace=False)
            paths = [make(pool[k], rng, folder, f"{kind.split()[0]}{i}") for i, k in enumerate(pick)]
            table[kind] = {
                name: score(module, paths, [int(truth[k]) for k in pick], net) for name, module in readers.items()
            }
            for path in paths:
                path.unlink()
        result["right"] = table
        if args.tests_kinds:
            result["tests_right"] = tests_kinds(readers, net, images, labels, args.per_kind, folder)
    n = args.per_kind
    print(f"\n{'kind of picture':26s}" + "".join(f"{name:>10s}" for name in readers))
    for kind, counts in table.items():
        print(f"{kind:26s}" + "".join(f"{counts[name]:>6d}/{n:<3d}" for name in readers))
    total = {name: sum(c[name] for c in table.values()) for name in readers}
    print(f"{'all':26s}" + "".join(f"{100 * total[name] / (n * len(table)):>9.1f}%" for name in readers))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
