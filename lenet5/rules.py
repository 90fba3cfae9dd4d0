"""The rules of lenet5's arguments and its limits, in pure Python: no C is loaded.

Every boundary checks its input with these functions before any work: the C
core's (``lenet5.core``, before a pointer reaches C), the NumPy twin's, the
training settings' (``TrainConfig``) and the command line's (``lenet5.cli``
turns them into argument types).  Bad input raises ``TypeError`` (the wrong
kind of thing) or ``ValueError`` (the right kind, a wrong value) naming the
argument; with ``name=None`` just the rule, for argparse, which names the
flag itself.

The figures below (shapes, offsets, limits, codes) are the C core's, written
here once for Python; ``lenet5.core`` asserts each against the compiled core
when it loads it, so the two cannot drift apart.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Dict, NoReturn, Optional, Tuple

import numpy as np

#: The shape of each parameter block, in the flat array's order (docs/SPEC.md §3.1):
#: weights [input map][output map][row][column], then the biases.
SHAPES: Dict[str, Tuple[int, ...]] = {
    "W1": (1, 6, 5, 5),
    "W2": (6, 16, 5, 5),
    "W3": (16, 120, 5, 5),
    "W4": (120, 10),
    "b1": (6,),
    "b2": (16,),
    "b3": (120,),
    "b4": (10,),
}


def _blocks() -> Dict[str, Tuple[int, Tuple[int, ...]]]:
    """Each block's (offset, shape): the blocks follow each other in SHAPES' order."""
    blocks, offset = {}, 0
    for name, shape in SHAPES.items():
        blocks[name] = (offset, shape)
        offset += int(np.prod(shape))
    return blocks


#: The parameter blocks of the flat array: name -> (offset, shape), in docs/SPEC.md §3.1 order.
BLOCKS: Dict[str, Tuple[int, Tuple[int, ...]]] = _blocks()
#: Parameters of the whole network (51,902).
N_PARAMS: int = sum(int(np.prod(shape)) for shape in SHAPES.values())
#: Pixels of one MNIST image (28 x 28 bytes).
IMAGE_PIXELS: int = 784
#: Outputs: the ten digits.
N_CLASSES: int = 10
#: The largest thread count the core takes; 0 (None in Python) is the default.
MAX_THREADS: int = 1024

#: The losses and the C core's code for each (lenet5.h: L5_LOSS_*).
LOSSES: Dict[str, int] = {"mse": 0, "xent": 1}
#: The kernels of the C core and their codes (lenet5.h: L5_KERNEL_*).
KERNELS: Dict[str, int] = {"reference": 0, "fast": 1}

#: The largest augmentation ranges the core takes (docs/SPEC.md §8.6): beyond
#: them a digit leaves its frame or turns over.
AUGMENT_LIMITS: Dict[str, float] = {"shift": 14.0, "rotate": 90.0, "scale": 0.5}


def block(params: np.ndarray, name: str) -> np.ndarray:
    """A view of one parameter block (``"W1"`` ... ``"b4"``) in its shape (docs/SPEC.md §3.1)."""
    offset, shape = BLOCKS[name]
    return params[offset : offset + int(np.prod(shape))].reshape(shape)


def _refuse(kind: type, name: Optional[str], rule: str) -> NoReturn:
    """Raise kind("<name> <rule>"); with name None, just the rule (the command
    line's argument parser names the flag itself)."""
    raise kind(f"{name} {rule}" if name else rule)


def check_params(params: Any, writable: bool = False, name: str = "params") -> np.ndarray:
    """A float64 array of N_PARAMS values, C-contiguous (and writable if asked)."""
    if not isinstance(params, np.ndarray):
        _refuse(TypeError, name, f"must be a numpy array, not {type(params).__name__}")
    if params.dtype != np.float64:
        _refuse(TypeError, name, f"must have dtype float64, not {params.dtype}")
    if params.shape != (N_PARAMS,):
        _refuse(ValueError, name, f"must have shape ({N_PARAMS},), not {params.shape}")
    if not params.flags.c_contiguous:
        _refuse(ValueError, name, "must be C-contiguous (use np.ascontiguousarray)")
    if writable and not params.flags.writeable:
        _refuse(ValueError, name, "must be writable: training updates it in place")
    return params


def check_images(images: Any, name: str = "images") -> int:
    """uint8 images, (N, 28, 28) or (N, 784), C-contiguous; returns N."""
    if not isinstance(images, np.ndarray):
        _refuse(TypeError, name, f"must be a numpy array, not {type(images).__name__}")
    if images.dtype != np.uint8:
        _refuse(TypeError, name, f"must have dtype uint8 (raw MNIST pixels 0..255), not {images.dtype}")
    if not (
        (images.ndim == 3 and images.shape[1:] == (28, 28)) or (images.ndim == 2 and images.shape[1] == IMAGE_PIXELS)
    ):
        _refuse(ValueError, name, f"must have shape (N, 28, 28) or (N, 784), not {images.shape}")
    if images.shape[0] < 1:
        _refuse(ValueError, name, "holds no images (need at least 1)")
    if not images.flags.c_contiguous:
        _refuse(ValueError, name, "must be C-contiguous (use np.ascontiguousarray)")
    return int(images.shape[0])


def check_labels(labels: Any, n: int, name: str = "labels") -> np.ndarray:
    """Integer labels in 0..9, one per image; returns them as contiguous uint8."""
    if not isinstance(labels, np.ndarray):
        _refuse(TypeError, name, f"must be a numpy array, not {type(labels).__name__}")
    if not np.issubdtype(labels.dtype, np.integer):
        _refuse(TypeError, name, f"must have an integer dtype, not {labels.dtype}")
    if labels.shape != (n,):
        _refuse(ValueError, name, f"must have shape ({n},) to match the images, not {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES):
        _refuse(ValueError, name, f"must lie in 0..9; found {labels.min()}..{labels.max()}")
    return np.ascontiguousarray(labels, dtype=np.uint8)


def check_loss(loss: Any, name: Optional[str] = "loss") -> int:
    """'mse' or 'xent'; returns the C code."""
    if loss not in LOSSES:
        _refuse(ValueError, name, f"must be one of {sorted(LOSSES)}, not {loss!r}")
    return LOSSES[loss]


def check_sign(sign: Any, name: Optional[str] = "sign") -> int:
    """+1 or -1 (the update is w + sign * lr/B * S, docs/SPEC.md §8.2)."""
    if isinstance(sign, bool) or sign not in (1, -1):
        _refuse(ValueError, name, f"must be +1 or -1, not {sign!r}")
    return int(sign)


def check_lr(lr: Any, name: Optional[str] = "lr") -> float:
    """A finite learning rate > 0."""
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        _refuse(TypeError, name, f"must be a number, not {type(lr).__name__}")
    if not math.isfinite(lr) or lr <= 0:
        _refuse(ValueError, name, f"must be finite and > 0, not {lr!r}")
    return float(lr)


def check_momentum(momentum: Any, name: Optional[str] = "momentum") -> float:
    """A momentum mu in [0, 1) (docs/SPEC.md §8.5); 0 keeps no memory of past steps."""
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        _refuse(TypeError, name, f"must be a number, not {type(momentum).__name__}")
    if not 0.0 <= float(momentum) < 1.0:
        _refuse(ValueError, name, f"must be at least 0 and below 1, not {momentum!r}")
    return float(momentum)


def check_weight_decay(decay: Any, name: Optional[str] = "weight_decay") -> float:
    """A finite L2 weight decay >= 0 (docs/SPEC.md §8.5)."""
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real):
        _refuse(TypeError, name, f"must be a number, not {type(decay).__name__}")
    if not math.isfinite(decay) or decay < 0:
        _refuse(ValueError, name, f"must be finite and >= 0, not {decay!r}")
    return float(decay)


def check_count(value: Any, name: Optional[str], minimum: int = 1) -> int:
    """A whole number >= minimum (batch size, epochs, image counts, seeds)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _refuse(TypeError, name, f"must be a whole number, not {value!r}")
    if value < minimum:
        _refuse(ValueError, name, f"must be at least {minimum}, not {value}")
    return int(value)


def check_kernel(kernel: Any, name: Optional[str] = "kernel") -> int:
    """'fast' or 'reference'; returns the C code."""
    if kernel not in KERNELS:
        _refuse(ValueError, name, f"must be one of {sorted(KERNELS)}, not {kernel!r}")
    return KERNELS[kernel]


def check_threads(threads: Any, name: Optional[str] = "threads") -> int:
    """None for the default (OMP_NUM_THREADS, else all cores), or 1..MAX_THREADS;
    returns the C value (0 for the default) (docs/SPEC.md §9.1)."""
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        _refuse(TypeError, name, f"must be an integer, not {type(threads).__name__}")
    if not 1 <= int(threads) <= MAX_THREADS:
        _refuse(ValueError, name, f"must be between 1 and {MAX_THREADS}, not {threads}")
    return int(threads)


def check_velocity(velocity: Any) -> np.ndarray:
    """The momentum buffer: like params, float64 of N_PARAMS values, writable."""
    return check_params(velocity, writable=True, name="velocity")


def check_augment_range(value: Any, name: str) -> float:
    """One augmentation range (shift in pixels, rotate in degrees, scale as a
    fraction): a number from 0 to its AUGMENT_LIMITS entry (docs/SPEC.md §8.6)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _refuse(TypeError, name, f"must be a number, not {type(value).__name__}")
    limit = AUGMENT_LIMITS[name]
    if not 0.0 <= float(value) <= limit:
        _refuse(ValueError, name, f"must lie in 0..{limit}, not {value!r}")
    return float(value)
