"""The model as a PyTorch module, both ways (lenet5/torch_model.py, docs/SPEC.md §15.5).

to_torch's float64 outputs within 1e-9 of lenet5's on the 10,000 test
images (slow; 1,000 in the default run); from_torch(to_torch()) gives back
the same parameter bytes; a model fine-tuned for a few batches in PyTorch
loads back and gives PyTorch's digits with outputs within 1e-9 (slow); from_torch refuses what load would refuse.
Skipped, saying why, without PyTorch; the message for a missing PyTorch is
checked without it.
"""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lenet5 import LeNet5, core
from lenet5.params import init_params

try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (pip install torch)")

ROOT = Path(__file__).resolve().parent.parent


def random_model(seed):
    """A fresh model with random biases (live and dead ReLUs in every layer)."""
    params = init_params(seed)
    params[core.BLOCKS["b1"][0] :] = np.random.default_rng(seed).normal(0, 0.2, core.N_PARAMS - core.BLOCKS["b1"][0])
    return LeNet5(params)


def run(module, images):
    with torch.no_grad():
        return module(torch.tensor(images)).numpy()


@pytest.fixture(scope="module")
def pretrained():
    return LeNet5.pretrained()


@needs_torch
@pytest.mark.parametrize(
    "count", [pytest.param(1000, id="1000"), pytest.param(10000, id="10000", marks=pytest.mark.slow)]
)
def test_float64_module_gives_lenet5s_outputs_on_the_test_set(pretrained, mnist_test, count):
    images = mnist_test[0][:count]
    module = pretrained.to_torch()
    assert isinstance(module, torch.nn.Module)
    assert all(p.dtype == torch.float64 for p in module.parameters())
    outputs = run(module, images)
    assert outputs.dtype == np.float64 and outputs.shape == (count, 10)
    assert np.abs(outputs - pretrained.forward(images)).max() <= 1e-9
    assert np.array_equal(outputs.argmax(axis=1), pretrained.predict(images))
    # raw 0..255 pixels as floats give what the bytes give
    assert np.array_equal(run(module, images[:300].astype(np.float32)), outputs[:300])
    assert np.array_equal(run(module, images[:300].astype(np.float64)), outputs[:300])


@needs_torch
def test_flat_images_and_a_model_with_live_and_dead_units(mnist_test):
    net = random_model(4)
    flat = np.stack([np.full((28, 28), v, np.uint8) for v in (0, 9, 255)])
    images = np.concatenate([flat, mnist_test[0][:100]])
    outputs = run(net.to_torch(), images)
    assert np.isfinite(outputs).all()
    assert np.abs(outputs - net.forward(images)).max() <= 1e-9
    assert np.array_equal(outputs[0], outputs[1]) and np.array_equal(outputs[0], outputs[2])


@needs_torch
def test_float32_module_gives_the_same_digit_on_at_least_999_per_mille(pretrained, mnist_test):
    module = pretrained.to_torch().float()
    outputs = run(module, mnist_test[0])
    assert outputs.dtype == np.float32
    assert np.mean(outputs.argmax(axis=1) == pretrained.predict(mnist_test[0])) >= 0.999


@needs_torch
@pytest.mark.parametrize("seed", [None, 0, 5])
def test_from_torch_of_to_torch_gives_back_the_same_bytes(pretrained, seed):
    net = pretrained if seed is None else random_model(seed)
    module = net.to_torch()
    assert LeNet5.from_torch(module).params.tobytes() == net.params.tobytes()
    assert LeNet5.from_torch(module.state_dict()).params.tobytes() == net.params.tobytes()
    # a float32 module reads back as its float32 values, exactly
    small = module.float()
    back = LeNet5.from_torch(small)
    assert back.params.tobytes() == net.params.astype(np.float32).astype(np.float64).tobytes()


@needs_torch
@pytest.mark.slow
def test_a_model_fine_tuned_in_pytorch_loads_back_and_gives_pytorchs_digits(pretrained, mnist_train, mnist_test):
    torch.manual_seed(0)
    module = pretrained.to_torch()
    optimiser = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
    images, labels = mnist_train
    for batch in range(5):
        rows = slice(64 * batch, 64 * batch + 64)
        loss = torch.nn.functional.cross_entropy(
            module(torch.tensor(images[rows])), torch.tensor(labels[rows], dtype=torch.int64)
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    tuned = LeNet5.from_torch(module)
    assert not np.array_equal(tuned.params, pretrained.params)  # it did learn something
    outputs = run(module, mnist_test[0])
    assert np.array_equal(tuned.predict(mnist_test[0]), outputs.argmax(axis=1))
    assert np.abs(tuned.forward(mnist_test[0]) - outputs).max() <= 1e-9


@needs_torch
def test_state_dict_keys_are_the_documented_ones():
    from lenet5.torch_model import STATE_SHAPES

    state = LeNet5.init(0).to_torch().state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == [(k, s) for k, (_, s) in STATE_SHAPES.items()]
    page = (ROOT / "docs" / "export.md").read_text()
    for key, (_, shape) in STATE_SHAPES.items():
        assert re.search(rf"`{re.escape(key)}`.*\({', '.join(map(str, shape))},?\)", page), key


@needs_torch
def test_from_torch_refuses_what_load_would_refuse():
    good = LeNet5.init(0).to_torch().state_dict()

    def changed(**kw):
        state = dict(good)
        for key, value in kw.items():
            if value is None:
                del state[key.replace("__", ".")]
            else:
                state[key.replace("__", ".")] = value
        return state

    nan = good["conv2.weight"].clone()
    nan[3, 2, 1, 0] = float("nan")
    inf = good["fc.bias"].clone()
    inf[4] = float("inf")
    cases = [
        (changed(conv2__weight=nan), ValueError, "NaN or infinite"),
        (changed(fc__bias=inf), ValueError, "NaN or infinite"),
        (changed(fc__bias=None), ValueError, "missing fc.bias"),
        (dict(good, **{"conv4.weight": good["fc.bias"]}), ValueError, "unexpected conv4.weight"),
        (changed(conv1__weight=good["conv1.weight"][:5]), ValueError, r"shape \(5, 1, 5, 5\), expected \(6, 1, 5, 5\)"),
        (changed(conv1__bias=torch.zeros(6, dtype=torch.int64)), TypeError, "floating-point"),
        (changed(conv1__bias=np.zeros(6)), TypeError, "torch.Tensor"),
        ("model.pt", TypeError, "a torch.nn.Module or a state_dict"),
        (torch.nn.Linear(2, 2), ValueError, "not a LeNet-5 state_dict"),
    ]
    for source, error, message in cases:
        with pytest.raises(error, match=message):
            LeNet5.from_torch(source)


def test_without_pytorch_to_torch_says_what_to_install():
    """With torch hidden (or absent): ImportError naming `pip install torch`, from both directions."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from lenet5 import LeNet5\n"
        "for call in (lambda: LeNet5.init(0).to_torch(), lambda: LeNet5.from_torch({})):\n"
        "    try:\n        call()\n    except ImportError as e:\n        print(e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("pip install torch") == 2, r.stdout
