"""The engines that train and predict: the exact C core, or the NumPy twin.

Every engine follows one protocol, ``Engine``, so the training loop, the
experiment and the benchmark run the same work on any of them.  An engine
works on the caller's flat parameter array in place (docs/SPEC.md §3.1) and
keeps no weights of its own.  An option an engine cannot honour is an error,
never silently ignored.
"""

from __future__ import annotations

from typing import Optional, Protocol, Tuple, runtime_checkable

import numpy as np

from . import core


@runtime_checkable
class Engine(Protocol):
    """What the training loop needs of an engine."""

    name: str

    def train_batch(
        self,
        params: np.ndarray,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        loss: str,
        sign: int,
        lr: float,
        velocity: Optional[np.ndarray] = None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        warp: Optional[core.Warp] = None,
    ) -> Tuple[float, int]:
        """Train on one batch, updating params in place (docs/SPEC.md §8.1, §8.2);
        with a velocity buffer, SGD with momentum and weight decay (§8.5),
        updating velocity in place too; with a warp, on ``warp.apply(images)``
        (§8.6); returns (summed loss, number correct) of the forward pass."""
        ...

    def forward(self, params: np.ndarray, images: np.ndarray) -> np.ndarray:
        """The 10 ReLU-ed outputs of each image, shape (N, 10)."""
        ...

    def predict(self, params: np.ndarray, images: np.ndarray) -> np.ndarray:
        """The predicted digit of each image, shape (N,) (docs/SPEC.md §5.5)."""
        ...


class CEngine:
    """The C core: exact to the reference program's last bit."""

    name = "c"

    def __init__(self, kernel: str = "fast", threads: Optional[int] = None) -> None:
        core.check_kernel(kernel)
        core.check_threads(threads)
        self.kernel, self.threads = kernel, threads

    def train_batch(
        self,
        params: np.ndarray,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        loss: str,
        sign: int,
        lr: float,
        velocity: Optional[np.ndarray] = None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        warp: Optional[core.Warp] = None,
    ) -> Tuple[float, int]:
        """Train on one batch with the C core (docs/SPEC.md §8.1, §8.2, §8.5); see ``Engine.train_batch``."""
        return core.train_batch(
            params,
            images,
            labels,
            loss=loss,
            sign=sign,
            lr=lr,
            kernel=self.kernel,
            threads=self.threads,
            velocity=velocity,
            momentum=momentum,
            weight_decay=weight_decay,
            nesterov=nesterov,
            warp=warp,
        )

    def forward(self, params: np.ndarray, images: np.ndarray) -> np.ndarray:
        """The 10 ReLU-ed outputs of each image, shape (N, 10), from the C core."""
        return core.forward(params, images, kernel=self.kernel, threads=self.threads)

    def predict(self, params: np.ndarray, images: np.ndarray) -> np.ndarray:
        """The predicted digit of each image, from the C core (docs/SPEC.md §5.5)."""
        return core.predict(params, images, kernel=self.kernel, threads=self.threads)


#: The engines by name, as ``--engine`` takes them.
NAMES = ("c", "numpy")


def get(name: str, kernel: Optional[str] = None, threads: Optional[int] = None) -> Engine:
    """The engine called name.  kernel and threads are the C core's options
    (None: its defaults); the NumPy engine has neither, so giving them is a
    ValueError naming the option."""
    if name == "c":
        return CEngine("fast" if kernel is None else kernel, threads)
    if name == "numpy":
        for option, value in (("kernel", kernel), ("threads", threads)):
            if value is not None:
                raise ValueError(
                    f"{option}: the numpy engine has no {option} option "
                    "(its threads are BLAS's); use it with the c engine"
                )
        from .numpy_engine import NumpyEngine

        return NumpyEngine()
    raise ValueError(f"engine must be one of {list(NAMES)}, not {name!r}")
