"""The network as a PyTorch module, both ways (docs/SPEC.md §15.5).

    module = net.to_torch()                  # float64; .float() for float32
    outputs = module(torch.from_numpy(images))   # uint8 (N, 28, 28) -> (N, 10)
    net = LeNet5.from_torch(module)          # or from its state_dict()

PyTorch is optional (``pip install torch``); this module imports it, and
``lenet5.model`` imports this module only when one of the two is called.

The module's ``state_dict`` keys and shapes (``STATE_SHAPES``):

    conv1.weight (6, 1, 5, 5)     conv1.bias (6,)
    conv2.weight (16, 6, 5, 5)    conv2.bias (16,)
    conv3.weight (120, 16, 5, 5)  conv3.bias (120,)
    fc.weight    (10, 120)        fc.bias    (10,)

A convolution's weight is lenet5's block with its first two axes swapped
(PyTorch's ``[out][in][kr][kc]`` against §3.1's ``[in][out][kr][kc]``), and
``fc.weight`` is W4 transposed.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

import numpy as np

from . import core
from .rules import SHAPES

MISSING = "LeNet5.to_torch and LeNet5.from_torch need PyTorch: pip install torch"

try:
    import torch
    from torch import nn
except ImportError:
    raise ImportError(MISSING) from None


def _module_shape(name: str) -> Tuple[int, ...]:
    """A block's shape as the module holds it: PyTorch keeps weights
    [output][input]..., the flat array [input][output]... (docs/SPEC.md §3.1)."""
    shape = SHAPES[name]
    return (shape[1], shape[0], *shape[2:]) if name.startswith("W") else shape


#: state_dict key -> (lenet5 block, shape in the module), from lenet5.rules.SHAPES
STATE_SHAPES: Dict[str, Tuple[str, Tuple[int, ...]]] = {
    f"{layer}.{kind}": (block, _module_shape(block))
    for layer, n in (("conv1", 1), ("conv2", 2), ("conv3", 3), ("fc", 4))
    for kind, block in (("weight", f"W{n}"), ("bias", f"b{n}"))
}


def normalise(images: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28) raw pixels (uint8, or floats of 0..255) -> (N, 1, 28, 28)
    float64 normalised by docs/SPEC.md §4: each image by its own mean and
    standard deviation, a flat image to zeros (the zero frame is the first
    convolution's padding)."""
    if images.dim() != 3 or tuple(images.shape[1:]) != (28, 28):
        raise ValueError(f"images must have shape (N, 28, 28), not {tuple(images.shape)}")
    if images.is_complex() or images.dtype == torch.bool:
        raise TypeError(f"images must be uint8 or raw 0..255 floats, not {images.dtype}")
    x = images.reshape(-1, 784).to(torch.float64)
    mean = x.sum(dim=1, keepdim=True) / 784
    var = (x * x).sum(dim=1, keepdim=True) / 784 - mean * mean
    # the flat-image rule: var is exactly 0 and x - mean is 0 everywhere; dividing by 1 keeps it so
    std = torch.sqrt(torch.where(var > 0, var, torch.ones_like(var)))
    return ((x - mean) / std).reshape(-1, 1, 28, 28)


class LeNet5Module(nn.Module):
    """LeNet-5 as docs/SPEC.md §5 lays it out: the 28 x 28 image normalised
    (§4) in a zero frame of 2, three 5 x 5 convolutions with ReLU (the first
    two followed by 2 x 2 max pooling), and a fully connected layer whose ten
    outputs are ReLU-ed too.  ``forward`` takes uint8 images (N, 28, 28) or
    floats of raw 0..255 pixels of that shape and returns the (N, 10) outputs
    in the module's float type; the normalisation runs in float64 first."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.conv3 = nn.Conv2d(16, 120, 5)
        self.fc = nn.Linear(120, 10)
        self.pool = nn.MaxPool2d(2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = normalise(images).to(self.conv1.weight.dtype)
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.relu(self.conv3(x)).flatten(1)
        return torch.relu(self.fc(x))


def _swap(block: np.ndarray) -> np.ndarray:
    """A block between lenet5's layout and PyTorch's, either way: the first two
    axes of a convolution swapped, the fully connected matrix transposed."""
    return block.transpose(1, 0, 2, 3) if block.ndim == 4 else block.T


def to_module(params: np.ndarray) -> LeNet5Module:
    """A float64 LeNet5Module holding these parameters (§3.1)."""
    params = core.check_params(np.array(params, dtype=np.float64))
    module = LeNet5Module().double()
    state = {
        key: torch.from_numpy(np.ascontiguousarray(_swap(core.block(params, name))))
        for key, (name, _) in STATE_SHAPES.items()
    }
    module.load_state_dict(state)
    return module


def from_state(source: Any) -> np.ndarray:
    """The flat parameter array (§3.1) of a module (its ``state_dict()``) or a
    state dict with exactly STATE_SHAPES' keys and shapes, converted to
    float64; ValueError or TypeError says what does not fit.  The values
    themselves (finite) are for LeNet5's own checks."""
    state: Mapping[str, Any] = source.state_dict() if isinstance(source, nn.Module) else source
    if not isinstance(state, Mapping):
        raise TypeError(f"from_torch takes a torch.nn.Module or a state_dict, not {type(source).__name__}")
    missing = [k for k in STATE_SHAPES if k not in state]
    extra = [str(k) for k in state if k not in STATE_SHAPES]
    if missing or extra:
        raise ValueError(
            "not a LeNet-5 state_dict: "
            + "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unexpected {', '.join(extra[:5])}" if extra else "",
                )
                if part
            )
            + f" (the keys are {', '.join(STATE_SHAPES)})"
        )
    params = np.zeros(core.N_PARAMS, dtype=np.float64)
    for key, (name, shape) in STATE_SHAPES.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{key} must be a torch.Tensor, not {type(value).__name__}")
        if tuple(value.shape) != shape:
            raise ValueError(f"{key} has shape {tuple(value.shape)}, expected {shape}")
        if not value.is_floating_point():
            raise TypeError(f"{key} has dtype {value.dtype}, expected a floating-point tensor")
        core.block(params, name)[...] = _swap(value.detach().to("cpu", torch.float64).numpy())
    return params
