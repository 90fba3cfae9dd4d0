"""python -m lenet5.predict IMAGE...: the digit in each image file.

    python -m lenet5.predict photo.jpg scan.png digit.npy --model model.npz
    python -m lenet5.predict *.png --model model.npz --json

Each picture is read (PNG, JPEG, BMP, GIF, TIFF, PGM through Pillow, the
extra ``images``; ``.npy`` arrays without it), made MNIST-style by
``lenet5.preprocess`` (``--no-preprocess``: a 28 x 28 image is taken as it
is), and classified.  One line per image: ``path: digit (confidence)``; with
``--json`` one JSON object per line, ``{"path", "digit", "probabilities"}``
or ``{"path", "error"}``.  A picture that cannot be used gets an error line
(on standard error, or as a JSON object) and the others are still answered.

Exit status: 0 every image answered; 1 some image could not be used, or the
model file is bad; 2 a bad argument (no model to use, for one).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import cli
from .images import ImageError, as_is, load_image, preprocess

PROG = "lenet5.predict"


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(prog="python -m lenet5.predict",
                                description="The digit in each image file (or .npy array).")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files: PNG, JPEG, BMP, GIF, TIFF, PGM (needs Pillow) or .npy arrays")
    p.add_argument("--model", metavar="PATH",
                   help="model file (.npz or .dat; default: the pretrained model, if this version ships one)")
    p.add_argument("--json", action="store_true",
                   help='one JSON object per line: {"path", "digit", "probabilities"} or {"path", "error"}')
    p.add_argument("--no-preprocess", action="store_true",
                   help="take each image as it is (it must be 28 x 28, white digit on black, like MNIST)")
    p.add_argument("--threads", type=cli.thread_count, default=None, metavar="N",
                   help="threads of the C core (default: OMP_NUM_THREADS, else all cores)")
    p.add_argument("--number", action="store_true",
                   help="read each picture as a whole number of one or more digits (docs/numbers.md)")
    return p


def read_digit(path: str, prepare: bool) -> np.ndarray:
    """One file to a (28, 28) uint8 image; ImageError (or ImportError) says why not."""
    pixels = load_image(path)
    try:
        return preprocess(pixels) if prepare else as_is(pixels)
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None


def main(argv: Optional[List[str]] = None) -> int:
    """Classify image files from the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.number:
        if args.no_preprocess:
            parser.error("argument --number: not allowed with --no-preprocess (a number is found in the ink)")
        return cli.run(PROG, lambda: read_numbers(args))

    def body() -> int:
        net = cli.load_model(args.model)
        digits: List[Tuple[str, np.ndarray]] = []
        errors: Dict[str, str] = {}
        for path in args.images:
            try:
                digits.append((path, read_digit(path, not args.no_preprocess)))
                if not args.no_preprocess:
                    suggest_number(path)
            except ImageError as e:
                errors[path] = str(e)
            except ImportError as e:  # Pillow is missing
                errors[path] = f"{path}: {e}"
        answers: Dict[str, Tuple[int, np.ndarray]] = {}
        if digits:
            batch = np.stack([d for _, d in digits])
            found = np.atleast_1d(net.predict(batch, threads=args.threads))  # its argmax, docs/SPEC.md §5.5
            proba = net.predict_proba(batch, threads=args.threads)
            answers = {path: (int(k), p) for (path, _), k, p in zip(digits, found, proba)}
        for path in args.images:  # in the order given
            if path in answers:
                show_answer(path, *answers[path], args.json)
            else:
                show_error(path, errors[path], args.json)
        sys.stdout.flush()
        return 1 if errors else 0

    return cli.run(PROG, body)


def show_answer(path: str, digit: int, probabilities: np.ndarray, as_json: bool) -> None:
    """One answer: "path: digit (confidence)", or its JSON object."""
    if as_json:
        record: Dict[str, Any] = {"path": path, "digit": digit,
                                  "probabilities": [float(p) for p in probabilities]}
        print(json.dumps(record))
    else:
        print(f"{path}: {digit} ({100 * float(probabilities[digit]):.1f}%)")


def show_error(path: str, message: str, as_json: bool) -> None:
    """One unusable image: a line on standard error, or a JSON object with "error"."""
    if as_json:
        print(json.dumps({"path": path, "error": message}))
    else:
        cli.say(f"{PROG}: {message}")



# -- --number: whole numbers (issue 23; docs/numbers.md) ---------------------------------

def suggest_number(path: str) -> None:
    """Single-digit mode: a note on standard error when the picture looks like
    several digits side by side (docs/SPEC.md §14.6)."""
    from .numbers import looks_like_a_number
    try:
        several = looks_like_a_number(path)
    except (ImageError, ImportError):  # the digit was read; the note is only a hint
        return
    if several:
        cli.say(f"{PROG}: note: {path} seems to hold several digits side by side; "
                "--number reads them as one number")


def read_numbers(args: argparse.Namespace) -> int:
    """The --number mode: one answer per picture, a whole number."""
    from .numbers import read_number
    net = cli.load_model(args.model)
    errors = 0
    for path in args.images:  # in the order given
        try:
            reading = read_number(path, net, threads=args.threads)
        except (ImageError, ImportError) as e:
            message = str(e) if str(e).startswith(f"{path}:") else f"{path}: {e}"
            show_error(path, message, args.json)
            errors += 1
            continue
        if args.json:
            print(json.dumps({"path": path, **reading.to_dict()}))
        else:
            count = len(reading.digits)
            print(f"{path}: {reading.number} ({count} digit{'s' if count != 1 else ''}, "
                  f"least sure {100 * reading.confidence:.1f}%)")
    sys.stdout.flush()
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
