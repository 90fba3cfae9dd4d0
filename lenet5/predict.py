"""python -m lenet5.predict IMAGE...: the digit in each image file.

    python -m lenet5.predict photo.jpg scan.png digit.npy --model model.npz
    python -m lenet5.predict *.png --model model.npz --json

Each picture is read (PNG, JPEG, BMP, GIF, TIFF, PBM/PGM/PPM, WebP, AVIF
through Pillow and SciPy, the extra ``images``; ``.npy`` arrays), made
MNIST-style as ``lenet5.preprocess`` does (``--no-preprocess``: a 28 x 28
image is taken as it is), and classified.  One line per image:
``path: digit (confidence)``; with ``--json`` one JSON object per line,
``{"path", "digit", "probabilities"}`` or ``{"path", "error"}``.  A picture
that cannot be used, whatever its decoder throws, gets an error line (on
standard error, or as a JSON object) and the others are still answered.
Text lines show control characters in names escaped (``\n``, ``\x1b``);
JSON keeps names as given.  An animated or multi-page picture is read from
its first frame, and a line on standard error says so.

``--number`` reads each picture as a whole number of one or more digits
(``lenet5.read_number``, docs/numbers.md): ``path: 2024 (4 digits, least
sure 97.3%)``, or with ``--json`` ``{"path", "number", "confidence",
"digits"}``.  Without it, a picture that seems to hold several digits side by
side gets a note on standard error suggesting ``--number``.

Exit status: 0 every image answered; 1 some image could not be used, or the
model file is bad; 2 a bad argument (no model to use, for one).
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import cli, images
from .images import ImageError, as_is
from .numbers import looks_like_a_number

PROG = "lenet5.predict"


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(
        prog=cli.prog("lenet5.predict"), description="The digit in each image file (or .npy array)."
    )
    p.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="picture files: PNG, JPEG, BMP, GIF, TIFF, PBM/PGM/PPM, WebP, AVIF (need Pillow and SciPy) or .npy arrays",
    )
    p.add_argument(
        "--model",
        metavar="PATH",
        help="model file (.npz or .dat; default: the pretrained model, if this version ships one)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per line: {"path", "digit", "probabilities"} or {"path", "error"}',
    )
    p.add_argument(
        "--no-preprocess",
        action="store_true",
        help="take each image as it is (it must be 28 x 28, white digit on black, like MNIST)",
    )
    cli.add_threads_option(p)
    p.add_argument(
        "--number",
        action="store_true",
        help="read each picture as a whole number of one or more digits (docs/numbers.md)",
    )
    cli.add_version_option(p)
    return p


def read_digit(path: str, prepare: bool, notes: Optional[List[str]] = None) -> np.ndarray:
    """One file to a (28, 28) uint8 image, through the one picture path
    (lenet5.images: decode, ink map, digit); ImageError (or ImportError) says
    why not, naming the file.  Notes about the file (an animation read from
    its first frame) are added to notes."""
    picture = images.read_picture(path)
    if notes is not None:
        notes.extend(picture.notes)
    try:
        if not prepare:
            return as_is(picture.pixels)
        ink = images.ink_map(picture.pixels)
        if notes is not None and looks_like_a_number(ink):  # a hint, docs/SPEC.md §14.7
            notes.append(f"note: {path} seems to hold several digits side by side; --number reads them as one number")
        return images.digit_from_ink(ink.ink)
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None


def escaped(text: str) -> str:
    """text with control characters (and undecodable bytes of a file name)
    escaped as Python writes them, so that one name cannot forge a line."""
    return "".join(repr(ch)[1:-1] if unicodedata.category(ch)[0] == "C" else ch for ch in text)


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
            notes: List[str] = []
            try:
                digits.append((path, read_digit(path, not args.no_preprocess, notes)))
            except ImageError as e:
                errors[path] = str(e)
            except ImportError as e:  # Pillow or SciPy is missing
                errors[path] = f"{path}: {e}"
            except MemoryError:
                errors[path] = f"{path}: not enough memory to read it"
            except Exception as e:  # a bug in reading one picture is still that picture's answer
                errors[path] = f"{path}: cannot read it ({images.one_line(e)})"
            for note in notes:
                cli.say(escaped(f"{PROG}: {note}"))
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
        record: Dict[str, Any] = {"path": path, "digit": digit, "probabilities": [float(p) for p in probabilities]}
        print(json.dumps(record))
    else:
        print(escaped(f"{path}: {digit} ({100 * float(probabilities[digit]):.1f}%)"))


def show_error(path: str, message: str, as_json: bool) -> None:
    """One unusable image: a line on standard error, or a JSON object with "error"."""
    if as_json:
        print(json.dumps({"path": path, "error": message}))
    else:
        cli.say(escaped(f"{PROG}: {message}"))


# -- --number: whole numbers (issue 23; docs/numbers.md) ---------------------------------


def read_numbers(args: argparse.Namespace) -> int:
    """The --number mode: one answer per picture, a whole number."""
    from .numbers import read_number

    net = cli.load_model(args.model)
    errors = 0
    for path in args.images:  # in the order given, each its own answer
        notes: List[str] = []
        try:
            picture = images.read_picture(path)
            notes.extend(picture.notes)
            reading = read_number(picture, net, threads=args.threads)
        except ImageError as e:
            message = str(e) if str(e).startswith(f"{path}:") else f"{path}: {e}"
        except ImportError as e:  # Pillow or SciPy is missing
            message = f"{path}: {e}"
        except MemoryError:
            message = f"{path}: not enough memory to read it"
        except Exception as e:  # a bug in reading one picture is still that picture's answer
            message = f"{path}: cannot read it ({images.one_line(e)})"
        else:
            message = ""
        for note in notes:
            cli.say(escaped(f"{PROG}: {note}"))
        if message:
            show_error(path, message, args.json)
            errors += 1
        elif args.json:
            print(json.dumps({"path": path, **reading.to_dict()}))
        else:
            count = len(reading.digits)
            print(
                escaped(
                    f"{path}: {reading.number} ({count} digit{'s' if count != 1 else ''}, "
                    f"least sure {100 * reading.confidence:.1f}%)"
                )
            )
    sys.stdout.flush()
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
