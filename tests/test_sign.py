"""The experiment people come for: xent's error is the positive gradient, so
sign -1 descends and sign +1 climbs; mse's is the negative one, the reverse.

The loss is measured on 1,000 held-out training images after every batch.
A climbing run rises batch after batch until the weights overflow to inf and
NaN (the ReLUs then turn NaN into 0 and the model sits at chance): the test
holds it to rising at every step while the weights are finite.
"""

import numpy as np
import pytest

from lenet5 import core
from lenet5.numpy_engine import output_error
from lenet5.params import init_params


def held_out_loss(params, images, labels, loss):
    """The mean loss over held-out images (the package's one NumPy softmax)."""
    z = core.forward(params, images)
    with np.errstate(all="ignore"):
        return float(output_error(z, labels, loss)[1].mean())


def run_20_batches(mnist_train, loss, sign, lr):
    images, labels = mnist_train
    probe_x, probe_y = images[50000:51000], labels[50000:51000]
    params = init_params(0)
    curve = [held_out_loss(params, probe_x, probe_y, loss)]
    for b in range(20):
        core.train_batch(
            params, images[b * 100 : (b + 1) * 100], labels[b * 100 : (b + 1) * 100], loss=loss, sign=sign, lr=lr
        )
        value = held_out_loss(params, probe_x, probe_y, loss)
        if not np.isfinite(params).all() or not np.isfinite(value):
            return curve, False
        curve.append(value)
    return curve, True


@pytest.mark.parametrize("loss,sign,lr", [("xent", -1, 0.1), ("mse", +1, 0.5)])
def test_descending_sign_lowers_the_loss(mnist_train, loss, sign, lr):
    curve, finite = run_20_batches(mnist_train, loss, sign, lr)
    assert finite
    assert curve[-1] < 0.95 * curve[0], curve


@pytest.mark.parametrize("loss,sign,lr", [("xent", +1, 0.1), ("mse", -1, 0.5)])
def test_climbing_sign_raises_the_loss(mnist_train, loss, sign, lr):
    curve, finite = run_20_batches(mnist_train, loss, sign, lr)
    assert len(curve) >= 4, curve
    assert all(later > earlier for earlier, later in zip(curve[:4], curve[1:4])), curve
    assert all(later >= earlier for earlier, later in zip(curve, curve[1:])), curve
    assert not finite or curve[-1] > curve[0]
