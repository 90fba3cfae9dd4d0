"""The pretrained model shipped in the package: it loads, it scores what the
docs say, the evaluate command uses it by default, and the command the
docs give rebuilds it byte for byte (slow)."""

import shlex
import subprocess
import sys

import numpy as np
import pytest

from lenet5 import LeNet5
from lenet5.model import PRETRAINED_COMMAND, PRETRAINED_PATH
from lenet5.params import read_params

#: The test accuracy the README and docs/usage.md state for the shipped model.
PRETRAINED_ACCURACY = 0.9949


def test_pretrained_model_is_package_data_and_loads():
    assert PRETRAINED_PATH.is_file() and PRETRAINED_PATH.parent.name == "pretrained"
    net = LeNet5.pretrained()
    assert net.meta["epochs"] == 20 and net.meta["loss"] == "xent"


def test_pretrained_model_scores_what_the_readme_says(mnist_test):
    result = LeNet5.pretrained().evaluate(*mnist_test)
    assert result.accuracy == PRETRAINED_ACCURACY


def test_evaluate_without_a_model_scores_the_pretrained_one():
    r = subprocess.run([sys.executable, "-m", "lenet5.evaluate"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "the pretrained model on the 10000 test images" in r.stdout
    assert f"accuracy {100 * PRETRAINED_ACCURACY:.2f}%" in r.stdout


@pytest.mark.slow
def test_the_readme_command_rebuilds_the_pretrained_model_byte_for_byte(tmp_path):
    args = shlex.split(PRETRAINED_COMMAND)
    assert args[:3] == ["python", "-m", "lenet5.train"] and args[-2] == "--save"
    out = tmp_path / "rebuilt.npz"
    r = subprocess.run([sys.executable, *args[1:-1], str(out), "--quiet"], capture_output=True, text=True, timeout=5400)
    assert r.returncode == 0, r.stderr
    rebuilt, shipped = read_params(out)[0], read_params(PRETRAINED_PATH)[0]
    assert rebuilt.tobytes() == shipped.tobytes()
    assert np.array_equal(rebuilt, LeNet5.pretrained().params)
