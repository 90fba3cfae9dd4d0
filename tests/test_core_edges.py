"""The C core at its edges: odd batch sizes (a partial tile, several partial
chunks), one image, every thread count; training, prediction and gradients.
tests/sanitize.sh runs this file (with the other core tests) against a build
with AddressSanitizer and UndefinedBehaviorSanitizer."""

import os

import numpy as np
import pytest

from lenet5 import core
from lenet5.params import init_params


@pytest.mark.skipif(not os.environ.get("LENET5_EXPECT_CORE_IN"), reason="only under tests/sanitize.sh")
def test_the_expected_build_is_loaded():
    """Under tests/sanitize.sh the sanitized extension must be the one tested."""
    expected = os.environ["LENET5_EXPECT_CORE_IN"]
    assert core.__file__.startswith(expected)
    from lenet5 import _core

    assert _core.__file__.startswith(expected)


@pytest.mark.parametrize("n", [1, 7, 301])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_odd_batch_sizes_train_and_predict(mnist_train, n, threads):
    images, labels = mnist_train[0][:n], mnist_train[1][:n]
    for loss, sign, lr in (("mse", 1, 0.5), ("xent", -1, 0.1)):
        ref, fast = init_params(n), init_params(n)
        r = core.train_batch(ref, images, labels, loss=loss, sign=sign, lr=lr, kernel="reference")
        f = core.train_batch(fast, images, labels, loss=loss, sign=sign, lr=lr, threads=threads)
        assert np.array_equal(ref.view(np.uint64), fast.view(np.uint64)) and r[1] == f[1]
        out = core.forward(fast, images, threads=threads)
        assert out.shape == (n, 10) and np.isfinite(out).all() and (out >= 0).all()
        assert np.array_equal(core.predict(fast, images, threads=threads), out.argmax(axis=1))


@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_image_gradient_is_finite_and_complete(mnist_train, loss):
    params = init_params(1)
    for i in (0, 1, 2):
        grad, value = core.image_gradient(params, mnist_train[0][i], int(mnist_train[1][i]), loss)
        assert grad.shape == (core.N_PARAMS,) and np.isfinite(grad).all() and np.isfinite(value)


def test_extreme_images_and_weights():
    """Flat, saturated and random images, tiny and huge weights: no crash, no NaN from finite input."""
    rng = np.random.default_rng(0)
    images = np.stack(
        [
            np.zeros((28, 28)),
            np.full((28, 28), 255),
            rng.integers(0, 256, (28, 28)),
            np.eye(28) * 255,
            np.zeros((28, 28)),
        ]
    ).astype(np.uint8)
    images[4, 0, 0] = 1
    labels = np.array([0, 9, 3, 5, 1], dtype=np.uint8)
    for scale in (1e-12, 1.0, 50.0):
        for kernel in ("reference", "fast"):
            params = init_params(2) * scale
            core.train_batch(params, images, labels, loss="xent", sign=-1, lr=0.1, kernel=kernel)
            core.forward(params, images, kernel=kernel)
