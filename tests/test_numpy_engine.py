"""The NumPy twin agrees with the C core: gradients to 1e-12, weights after
10 batches to 1e-9, test accuracy after an epoch to 0.1 percentage point."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lenet5 import core
from lenet5 import numpy_engine as ne
from lenet5.params import init_params


def assert_blocks_close(expected, got, rel):
    for name, (offset, shape) in core.BLOCKS.items():
        size = int(np.prod(shape))
        a, b = expected[offset : offset + size], got[offset : offset + size]
        assert np.abs(a - b).max() <= rel * np.abs(a).max(), name


@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_per_image_gradient_matches_c(mnist_train, loss):
    images, labels = mnist_train
    params = init_params(1)
    for i in range(6):
        c_grad, c_loss = core.image_gradient(params, images[i], int(labels[i]), loss)
        np_grad, np_loss, _ = ne.batch_gradient(params, images[i : i + 1], labels[i : i + 1], loss)
        assert_blocks_close(c_grad, np_grad, 1e-12)
        assert np_loss[0] == pytest.approx(c_loss, rel=1e-12)


@pytest.mark.parametrize("loss,sign,lr", [("mse", 1, 0.5), ("xent", -1, 0.1)])
def test_weights_after_10_batches_match_c(mnist_train, loss, sign, lr):
    images, labels = mnist_train
    c_params, np_params = init_params(2), init_params(2)
    engine = ne.NumpyEngine()
    for b in range(10):
        rows = slice(b * 300, (b + 1) * 300)
        c_out = core.train_batch(c_params, images[rows], labels[rows], loss=loss, sign=sign, lr=lr)
        np_out = engine.train_batch(np_params, images[rows], labels[rows], loss=loss, sign=sign, lr=lr)
        assert np_out[1] == c_out[1] and np_out[0] == pytest.approx(c_out[0], rel=1e-9)
    assert_blocks_close(c_params, np_params, 1e-9)


def test_flat_image_and_forward(mnist_test):
    images = mnist_test[0][:50].copy()
    images[3] = 17
    params = init_params(4)
    assert np.allclose(ne.NumpyEngine().forward(params, images), core.forward(params, images), rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_one_epoch_accuracy_matches_c(tmp_path):
    """The same experiment on both engines, through the trainer command."""
    result = {}
    for engine in ("c", "numpy"):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "lenet5.train",
                "--loss",
                "xent",
                "--engine",
                engine,
                "--quiet",
                "--json",
                tmp_path / f"{engine}.json",
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert r.returncode == 0, r.stderr
        result[engine] = json.loads((tmp_path / f"{engine}.json").read_text())
    assert result["numpy"]["engine"] == "numpy"
    assert abs(result["c"]["test_accuracy"] - result["numpy"]["test_accuracy"]) <= 0.001
