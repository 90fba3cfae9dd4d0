"""What the network's ten outputs mean: their softmax, the probabilities of
the ten digits (docs/SPEC.md §6.4).  NumPy only, no C: the package's one
softmax in Python, used by ``LeNet5.predict_proba`` (outputs of either
engine), the page's answers and the NumPy twin's output errors.  The C core
computes its own, in C, inside the training kernels."""

from __future__ import annotations

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, 10) outputs, shifted by each row's largest value
    so no exponential overflows (docs/SPEC.md §6.4); rows sum to 1."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
