"""Whole-number benchmark: lenet5.read_number against Tesseract on handwritten numbers.

    python benchmarks/read_numbers.py [--count 100] [--seed 2026] [--no-tesseract] [--json docs/read_numbers.json]

It makes its own pictures: numbers of 2 to 6 MNIST test digits (each drawn
at random) side by side, in four kinds,

- apart:     a gap of 4 to 10 MNIST pixels between the digits' ink;
- nearly:    nearly touching, a gap of 1 to 2 MNIST pixels;
- touching:  the digits' ink boxes overlapping by 0 to 2 MNIST pixels;
- photo:     apart, on paper lit unevenly (25 to 45 % fall-off across the
             sheet, from a random side), with grain, turned up to 3 degrees,
             saved as JPEG;

dark ink on light paper, scaled 2 to 5 times, written to files in a
temporary folder.  Each file is read by ``lenet5.read_number`` (the shipped
pretrained model) and, where ``tesseract`` is on the PATH, by Tesseract with
``--psm 7`` (one line of text) and only the digits allowed.  It prints, per
kind and reader: whole numbers right, digits right (the digits of the
answer that an alignment with the truth matches: the length minus the edit
distance, at least 0) and the median time per picture (lenet5: in-process,
file read included; Tesseract: one process per picture, as people run it).
Tesseract is optional and never a dependency of lenet5.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from common import cpu_model, write_json  # benchmarks/common.py

from lenet5 import LeNet5, read_number
from lenet5.data import load_split
from lenet5.images import ImageError

KINDS = ("apart", "nearly", "touching", "photo")
#: The gap between neighbouring digits' ink, in MNIST pixels (negative: overlap).
GAPS = {"apart": (4, 10), "nearly": (1, 2), "touching": (-2, 0), "photo": (4, 10)}


def compose(digits: List[np.ndarray], gaps: List[int], rng: np.random.Generator) -> np.ndarray:
    """The digits' ink (0..255, bright) side by side at MNIST scale, each cut to
    its ink's columns, gaps[i] columns of paper after digit i (negative: overlap),
    a little vertical jitter, on a margin of paper."""
    crops = []
    for d in digits:
        cols = np.flatnonzero(d.max(axis=0) > 0)
        crops.append(d[:, cols.min() : cols.max() + 1].astype(np.float64))
    margin = 8
    width = sum(c.shape[1] for c in crops) + sum(gaps) + 2 * margin
    canvas = np.zeros((28 + 2 * margin, width))
    x = margin
    for i, c in enumerate(crops):
        y = margin + int(rng.integers(-2, 3))
        region = canvas[y : y + 28, x : x + c.shape[1]]
        np.maximum(region, c, out=region)
        x += c.shape[1] + (gaps[i] if i < len(gaps) else 0)
    return canvas


def make_picture(kind: str, digits: List[np.ndarray], path: Path, rng: np.random.Generator) -> None:
    """One picture of the digits, of the given kind, written to path."""
    from PIL import Image

    lo, hi = GAPS[kind]
    gaps = [int(rng.integers(lo, hi + 1)) for _ in digits[1:]]
    cover = compose(digits, gaps, rng)
    scale = int(rng.integers(2, 6))
    big = Image.fromarray(np.round(cover).astype(np.uint8)).resize(
        (cover.shape[1] * scale, cover.shape[0] * scale), Image.BICUBIC
    )
    if kind == "photo":
        big = big.rotate(float(rng.uniform(-3, 3)), resample=Image.BICUBIC, expand=True)
    ink = np.asarray(big, dtype=np.float64) / 255.0
    h, w = ink.shape
    paper = rng.uniform(200, 240)
    pen = rng.uniform(20, 60)
    if kind == "photo":
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        along = np.cos(angle) * (xx - w / 2) / w + np.sin(angle) * (yy - h / 2) / h
        along = (along - along.min()) / max(along.max() - along.min(), 1e-9)
        light = 1.0 - rng.uniform(0.25, 0.45) * along
        x = (paper + (pen - paper) * ink) * light + rng.normal(0, rng.uniform(3, 8), ink.shape)
        Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8)).save(path, format="JPEG", quality=85)
    else:
        x = paper + (pen - paper) * ink + rng.normal(0, 2, ink.shape)
        Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8)).save(path, format="PNG")


def make_set(count: int, seed: int, folder: Path, kinds: Tuple[str, ...] = KINDS) -> List[Tuple[str, Path, str]]:
    """count pictures per kind: (kind, path, the true number)."""
    images, labels = load_split("test", download=False, progress=False)
    rng = np.random.default_rng(seed)
    made = []
    for kind in kinds:
        for i in range(count):
            n = int(rng.integers(2, 7))
            picks = rng.integers(0, len(images), n)
            path = folder / f"{kind}-{i:04d}.{'jpg' if kind == 'photo' else 'png'}"
            make_picture(kind, [images[k] for k in picks], path, rng)
            made.append((kind, path, "".join(str(int(labels[k])) for k in picks)))
    return made


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def lenet5_reader(net: LeNet5) -> Callable[[Path], str]:
    def read(path: Path) -> str:
        try:
            return read_number(path, net).number
        except ImageError:
            return ""

    return read


def tesseract_reader(exe: str) -> Callable[[Path], str]:
    def read(path: Path) -> str:
        out = subprocess.run(
            [exe, str(path), "stdout", "--psm", "7", "-c", "tessedit_char_whitelist=0123456789"],
            capture_output=True,
            text=True,
        )
        return "".join(ch for ch in out.stdout if ch.isdigit())

    return read


def tesseract_version(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def score(reader: Callable[[Path], str], made: List[Tuple[str, Path, str]]) -> Dict[str, Dict[str, Any]]:
    """Per kind: numbers, whole right, digits, digits right, median seconds per picture."""
    table: Dict[str, Dict[str, Any]] = {}
    for kind, path, truth in made:
        start = time.perf_counter()
        got = reader(path)
        seconds = time.perf_counter() - start
        row = table.setdefault(kind, {"numbers": 0, "right": 0, "digits": 0, "digits_right": 0, "times": []})
        row["numbers"] += 1
        row["right"] += got == truth
        row["digits"] += len(truth)
        row["digits_right"] += max(0, len(truth) - edit_distance(got, truth))
        row["times"].append(seconds)
    for row in table.values():
        row["ms_per_picture"] = 1000 * statistics.median(row.pop("times"))
    return table


def print_table(results: Dict[str, Dict[str, Dict[str, Any]]]) -> None:
    print(f"{'kind':<10} {'reader':<10} {'numbers right':>16} {'digits right':>16} {'ms/picture':>11}")
    for kind in KINDS:
        for reader, table in results.items():
            if kind not in table:
                continue
            r = table[kind]
            print(
                f"{kind:<10} {reader:<10} {r['right']:>5}/{r['numbers']:<4} {100 * r['right'] / r['numbers']:5.1f}% "
                f"{100 * r['digits_right'] / r['digits']:15.1f}% {r['ms_per_picture']:11.1f}"
            )


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=100, help="pictures per kind (default 100)")
    p.add_argument("--seed", type=int, default=2026, help="seed of the pictures (default 2026)")
    p.add_argument("--no-tesseract", action="store_true", help="leave Tesseract out even if installed")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    net = LeNet5.pretrained()
    readers: Dict[str, Callable[[Path], str]] = {"lenet5": lenet5_reader(net)}
    exe = None if args.no_tesseract else shutil.which("tesseract")
    if exe:
        readers["tesseract"] = tesseract_reader(exe)
    with tempfile.TemporaryDirectory() as tmp:
        made = make_set(args.count, args.seed, Path(tmp))
        read_number(made[0][1], net)  # warm-up
        results = {name: score(reader, made) for name, reader in readers.items()}
    print(f"CPU: {cpu_model()}; {args.count} numbers of 2-6 MNIST test digits per kind, seed {args.seed}")
    if exe:
        print(f"peer: {tesseract_version(exe)}, --psm 7, digits only")
    else:
        print("peer: Tesseract not installed (or --no-tesseract): lenet5 alone")
    print_table(results)
    if args.json:
        for table in results.values():
            for r in table.values():
                r["numbers_right_pct"] = 100 * r["right"] / r["numbers"]
                r["digits_right_pct"] = 100 * r["digits_right"] / r["digits"]
        write_json(
            args.json,
            {
                "count": args.count,
                "seed": args.seed,
                "tesseract": tesseract_version(exe) if exe else None,
                "results": results,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
