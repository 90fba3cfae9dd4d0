"""python -m lenet5.evaluate [MODEL]: test accuracy and confusion matrix of a
model (without MODEL: the pretrained one shipped with the package).

Exit status: 0 done; 1 a data or model file is bad; 2 a bad argument.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from . import cli
from .data import DataError, load_split
from .files import write_text_atomic

PROG = "lenet5.evaluate"


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(
        prog=cli.prog("lenet5.evaluate"), description="Accuracy and confusion matrix of a model file on MNIST."
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help="model file (.npz or .dat); default: the pretrained model shipped with lenet5",
    )
    cli.add_data_option(p)
    cli.add_version_option(p)
    p.add_argument(
        "--split",
        choices=["test", "train"],
        default="test",
        help="which MNIST images to score: the 10,000 test images (default) or the 60,000 training images",
    )
    cli.add_threads_option(p)
    p.add_argument("--json", metavar="PATH", help="also write accuracy and confusion matrix as JSON (default: none)")
    p.add_argument(
        "--figures",
        metavar="DIR",
        help="also draw confusion.png, mistakes.png, filters.png and feature_maps.png into DIR "
        "(needs matplotlib; default: none)",
    )
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Score a model file from the command line; returns the exit status."""
    p = build_parser()
    args = p.parse_args(argv)
    cli.check_output(p, "--json", args.json)

    def body() -> int:
        if args.figures:
            from .plots import MISSING, have_matplotlib

            if not have_matplotlib():  # said before the work, and the command fails: nothing was drawn
                raise cli.Stop(f"--figures {args.figures}: {MISSING}", 1)
        net = cli.load_model(args.model)
        try:
            images, labels = load_split(args.split, args.data_dir)
        except DataError as e:
            raise cli.Stop(str(e), 1) from None
        result = net.evaluate(images, labels, threads=args.threads)
        print(f"{args.model or 'the pretrained model'} on the {len(labels)} {args.split} images:")
        print(result)
        if args.json:
            write_text_atomic(
                args.json,
                json.dumps(
                    {
                        "accuracy": result.accuracy,
                        "correct": result.correct,
                        "total": result.total,
                        "confusion": result.confusion.tolist(),
                    },
                    indent=1,
                )
                + "\n",
            )
        if args.figures:
            from .figures import write_figures

            for line in write_figures(net, images, labels, result, Path(args.figures)):
                cli.say(line)
        return 0

    return cli.run(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
