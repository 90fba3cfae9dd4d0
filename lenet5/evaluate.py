"""python -m lenet5.evaluate MODEL: test accuracy and confusion matrix of a model.

Exit status: 0 done; 1 a data or model file is bad; 2 a bad argument.
"""
import argparse
import json
import sys

from .data import DataError, load_split
from .model import LeNet5, ModelFileError
from .train import _threads


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m lenet5.evaluate",
                                description="Test accuracy and confusion matrix of a model file.")
    p.add_argument("model", help="model file (.npz or .dat)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the MNIST files")
    p.add_argument("--split", choices=["test", "train"], default="test")
    p.add_argument("--threads", type=_threads, default=None, help="threads of the C core")
    p.add_argument("--json", metavar="PATH", help="write accuracy and confusion matrix as JSON")
    args = p.parse_args(argv)
    try:
        net = LeNet5.load(args.model)
        images, labels = load_split(args.split, args.data_dir)
    except (ModelFileError, DataError) as e:
        print(f"lenet5.evaluate: {e}", file=sys.stderr)
        return 1
    result = net.evaluate(images, labels, threads=args.threads)
    print(f"{args.model} on the {len(labels)} {args.split} images:")
    print(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"accuracy": result.accuracy, "correct": result.correct, "total": result.total,
                       "confusion": result.confusion.tolist()}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
