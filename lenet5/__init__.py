"""lenet5: an exact, fast port of the classic sequential LeNet-5 MNIST trainer.

    from lenet5 import LeNet5
    net = LeNet5.load("model.npz")
    net.predict(images)
"""
from .model import Evaluation, LeNet5, ModelFileError
from .data import DataError, load_split

__version__ = "0.1.0"
__all__ = ["LeNet5", "Evaluation", "ModelFileError", "DataError", "load_split"]
