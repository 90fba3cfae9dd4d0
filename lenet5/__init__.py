"""lenet5: an exact, fast port of the classic sequential LeNet-5 MNIST trainer.

    from lenet5 import LeNet5, load_split
    net = LeNet5.load("model.npz")
    net.predict(images)

The names below load lazily: ``import lenet5`` or ``import lenet5.data``
does not load the compiled core; the first use of the model does.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # for type checkers and editors; at run time __getattr__ imports on use
    from .data import DataError, load_split
    from .loop import TrainConfig
    from .model import Evaluation, FitResult, Interrupted, LeNet5
    from .params import ModelFileError

#: public name -> the module that defines it
_EXPORTS = {
    "LeNet5": "model", "Evaluation": "model", "FitResult": "model", "Interrupted": "model",
    "ModelFileError": "params", "TrainConfig": "loop",
    "DataError": "data", "load_split": "data",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # next time a plain attribute
        return value
    raise AttributeError(f"module 'lenet5' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(list(globals()) + list(_EXPORTS))
