"""python -m lenet5: what the package's commands are."""
import sys

from ._version import DISTRIBUTION, __version__

COMMANDS = f"""lenet5 {__version__} ({DISTRIBUTION}): an exact, fast LeNet-5 for MNIST. Commands:

  python -m lenet5.train        (lenet5-train)       train; defaults: the reference program's run; --help
  python -m lenet5.experiment   (lenet5-experiment)  the loss-and-sign experiment: four runs, a figure, a table
  python -m lenet5.evaluate M   (lenet5-evaluate)    test accuracy and confusion matrix of a model file
  python -m lenet5.predict IMG  (lenet5-predict)     the digit in image files (photos, scans, .npy)
  python benchmarks/bench.py                         the C core against NumPy (and PyTorch), from a checkout
"""


def main() -> int:
    """Print the list of commands; returns the exit status 0."""
    sys.stdout.write(COMMANDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
