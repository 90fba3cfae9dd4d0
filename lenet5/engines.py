"""The engines that can train and predict: the exact C core, or the NumPy twin.

Both take the same arguments so the trainer, the experiment and the benchmark
can run the same work on either.
"""
from . import core


class CEngine:
    """The C core: exact to the reference program's last bit."""

    name = "c"

    def __init__(self, kernel="fast", threads=None):
        core.check_kernel(kernel)
        core.check_threads(threads)
        self.kernel, self.threads = kernel, threads

    def train_batch(self, params, images, labels, *, loss, sign, lr):
        return core.train_batch(params, images, labels, loss=loss, sign=sign, lr=lr,
                                kernel=self.kernel, threads=self.threads)

    def forward(self, params, images):
        return core.forward(params, images, kernel=self.kernel, threads=self.threads)

    def predict(self, params, images):
        return core.predict(params, images, kernel=self.kernel, threads=self.threads)


def _numpy_engine(kernel="fast", threads=None):
    from .numpy_engine import NumpyEngine
    return NumpyEngine()


ENGINES = {"c": CEngine, "numpy": _numpy_engine}


def get(name, kernel="fast", threads=None):
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {sorted(ENGINES)}, not {name!r}")
    return ENGINES[name](kernel=kernel, threads=threads)
