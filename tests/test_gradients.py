"""Per-image gradients against central finite differences of the loss.

mse's G is the NEGATIVE gradient of E = 1/2 sum (p - y)^2 (so the reference's
w += lr/B * S descends); xent's G is the POSITIVE gradient of -log p_label.

The reference back-propagates the output error through the output ReLU as
if it were the identity, so G is the true gradient only where every output is
active.  The model here gets output biases of +5 so that all ten are.
"""

import numpy as np
import pytest

from lenet5 import core
from lenet5.params import init_params

SIGN_OF_G = {"mse": -1.0, "xent": +1.0}


@pytest.fixture(scope="module")
def active_model():
    params = init_params(7)
    core.block(params, "b4")[:] = 5.0
    return params


def loss_at(params, image, label, loss):
    return core.image_gradient(params, image, label, loss)[1]


@pytest.mark.parametrize("loss", ["mse", "xent"])
@pytest.mark.parametrize("block", list(core.BLOCKS))
def test_gradient_matches_finite_differences(active_model, mnist_train, loss, block):
    images, labels = mnist_train
    rng = np.random.default_rng(abs(hash((loss, block))) % 2**32)
    for k in range(2):
        image, label = images[k], int(labels[k])
        assert (core.forward(active_model, image[None])[0] > 0).all()
        grad, _ = core.image_gradient(active_model, image, label, loss)
        offset, shape = core.BLOCKS[block]
        size = int(np.prod(shape))
        g = grad[offset : offset + size]
        largest = np.argsort(-np.abs(g))[:4]
        nonzero = np.flatnonzero(np.abs(g) > 1e-3 * np.abs(g).max())
        picks = np.unique(np.concatenate([largest, rng.choice(nonzero, min(4, nonzero.size), replace=False)]))
        for i in offset + picks:
            h = 1e-5 * max(1.0, abs(active_model[i]))
            plus, minus = active_model.copy(), active_model.copy()
            plus[i] += h
            minus[i] -= h
            fd = (loss_at(plus, image, label, loss) - loss_at(minus, image, label, loss)) / (2 * h)
            assert grad[i] == pytest.approx(SIGN_OF_G[loss] * fd, rel=2e-5, abs=1e-9), (block, i)


def test_gradient_is_not_trivially_zero(active_model, mnist_train):
    images, labels = mnist_train
    for loss in ("mse", "xent"):
        grad, _ = core.image_gradient(active_model, images[0], int(labels[0]), loss)
        for name, (offset, shape) in core.BLOCKS.items():
            assert np.abs(grad[offset : offset + int(np.prod(shape))]).max() > 0, (loss, name)


def test_batch_sum_is_the_sum_of_image_gradients(mnist_train):
    """One step of train_batch equals w + sign * lr/B * (G_1 + ... + G_B)."""
    images, labels = mnist_train
    params = init_params(3)
    total = np.zeros(core.N_PARAMS)
    for i in range(5):
        total = total + core.image_gradient(params, images[i], int(labels[i]), "xent")[0]
    stepped = params.copy()
    core.train_batch(stepped, images[:5], labels[:5], loss="xent", sign=-1, lr=0.1)
    assert np.array_equal(stepped, params - (0.1 / 5) * total)
