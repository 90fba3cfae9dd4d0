"""lenet5: an exact, fast port of the classic sequential LeNet-5 MNIST trainer.

    from lenet5 import LeNet5, load_split
    net = LeNet5.load("model.npz")
    net.predict(images)

The names below load lazily: ``import lenet5`` or ``import lenet5.data``
does not load the compiled core; the first use of the model does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, List

from ._version import __version__

if TYPE_CHECKING:  # for type checkers and editors; at run time __getattr__ imports on use
    # "X as X" marks a re-export (the linters cannot read the __all__ built below).
    from .config import TrainConfig as TrainConfig
    from .data import DataError as DataError
    from .data import load_split as load_split
    from .images import ImageError as ImageError
    from .images import load_image as load_image
    from .images import preprocess as preprocess
    from .model import Evaluation as Evaluation
    from .model import FitResult as FitResult
    from .model import Interrupted as Interrupted
    from .model import LeNet5 as LeNet5
    from .numbers import NumberReading as NumberReading
    from .numbers import read_number as read_number
    from .params import ModelFileError as ModelFileError

#: public name -> the module that defines it
_EXPORTS = {
    "LeNet5": "model",
    "Evaluation": "model",
    "FitResult": "model",
    "Interrupted": "model",
    "ModelFileError": "params",
    "TrainConfig": "config",
    "DataError": "data",
    "load_split": "data",
    "preprocess": "images",
    "load_image": "images",
    "ImageError": "images",
    "read_number": "numbers",
    "NumberReading": "numbers",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562), so ``import lenet5`` stays light."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # next time a plain attribute
        return value
    raise AttributeError(f"module 'lenet5' has no attribute {name!r}")


def __dir__() -> List[str]:
    """The module's names, the lazy ones included."""
    return sorted(list(globals()) + list(_EXPORTS))
