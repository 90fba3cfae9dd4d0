"""python -m lenet5: what the package's commands are."""
import sys

COMMANDS = """lenet5: an exact, fast LeNet-5 for MNIST. Commands:

  python -m lenet5.train        train (defaults: the reference program's run); --help for options
  python -m lenet5.experiment   the loss-and-sign experiment: four runs, a figure and a table
  python -m lenet5.evaluate M   test accuracy and confusion matrix of a model file
  python benchmarks/bench.py    the C core against NumPy (and PyTorch), from a source checkout
"""

if __name__ == "__main__":
    sys.stdout.write(COMMANDS)
