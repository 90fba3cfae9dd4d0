"""The public API as a notebook uses it: LeNet5.fit on the one training loop,
the Engine protocol, the loop's stop and resume, lazy loading, the version
and the console commands."""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lenet5
from helpers import CASES, GOLDEN, golden_params, sha256
from lenet5 import LeNet5, TrainConfig
from lenet5.checkpoint import load_checkpoint
from lenet5.engines import CEngine, Engine, get
from lenet5.loop import Diverged, History, Position, Stopped, train
from lenet5.model import Interrupted


@pytest.mark.parametrize("name", ["xent_b10_n100_e1", "mse_b300_n300_e1"])
def test_fit_reproduces_the_golden_bytes(name, mnist_train):
    case = CASES[name]
    images, labels = mnist_train
    n = case["train_images"]
    net = LeNet5(golden_params(case["init"]))
    result = net.fit(
        images[:n],
        labels[:n],
        loss=case["loss"],
        sign=case["sign"],
        lr=case["lr"],
        batch_size=case["batch_size"],
        epochs=case["epochs"],
        progress=False,
    )
    assert sha256(net.params) == case["output_sha256"]
    assert result.images_seen == n // case["batch_size"] * case["batch_size"]
    assert result.test_accuracy is None  # no test set given


def test_fit_reports_test_accuracy_per_epoch_and_a_summary(mnist_train, mnist_test):
    images, labels = mnist_train
    net = LeNet5.init(seed=3)
    result = net.fit(
        images[:1200], labels[:1200], loss="xent", batch_size=100, epochs=2, test=mnist_test, progress=False
    )
    assert len(result.history.test_accuracy) == 2 and len(result.history.batch_loss) == 24
    assert result.test_accuracy == result.history.test_accuracy[-1] > 0.5
    s = result.summary()
    assert s["test_correct"] == int((net.predict(mnist_test[0]) == mnist_test[1]).sum())
    assert (s["loss"], s["sign"], s["lr"], s["engine"], s["kernel"]) == ("xent", -1, 0.1, "c", "fast")
    assert net.meta["loss"] == "xent" and net.meta["images_seen"] == 2400


def test_fit_checkpoint_then_resume_gives_the_same_bytes(tmp_path, mnist_train):
    images, labels = mnist_train[0][:2000], mnist_train[1][:2000]
    options = dict(loss="xent", batch_size=100, epochs=2, shuffle=True, seed=4, progress=False)
    whole = LeNet5.init(seed=4)
    whole.fit(images, labels, **options)
    ck = tmp_path / "ck.npz"
    first = LeNet5.init(seed=4)
    first.fit(images, labels, **dict(options, epochs=1), checkpoint=ck)
    saved = load_checkpoint(ck)
    assert saved.position == Position(1, 0)
    # the checkpoint says epochs=1: make it a 2-epoch run resumed after its first epoch
    from dataclasses import replace

    saved.config = replace(saved.config, epochs=2)
    resumed = LeNet5.init(seed=99)  # its own parameters are replaced by the checkpoint's
    resumed.fit(images, labels, resume=saved, progress=False)
    assert sha256(resumed.params) == sha256(whole.params)


def test_loop_stops_between_batches_and_resumes_to_the_same_bytes(mnist_train):
    images, labels = mnist_train[0][:1000], mnist_train[1][:1000]
    config = TrainConfig(loss="xent", batch_size=100, epochs=2, shuffle=True, seed=1)
    engine = CEngine("fast", 2)
    whole = golden_params("init_seed1.dat")
    train(engine, whole, images, labels, config)
    part, history = golden_params("init_seed1.dat"), History()
    with pytest.raises(Stopped) as stop:  # stop after the 13th batch: epoch 2, batch 3
        train(engine, part, images, labels, config, history=history, should_stop=lambda: len(history.batch_loss) == 13)
    assert stop.value.position == Position(1, 3)
    train(engine, part, images, labels, config, start=stop.value.position, history=history)
    assert sha256(part) == sha256(whole)
    assert len(history.batch_loss) == 20


def test_loop_max_batches_and_divergence(mnist_train):
    images, labels = mnist_train[0][:3000], mnist_train[1][:3000]
    climbing = TrainConfig(loss="xent", sign=+1, batch_size=100)
    params = golden_params("init_seed1.dat")
    with pytest.raises(Diverged) as info:
        train(CEngine(), params, images, labels, climbing)
    assert "diverged at epoch 1" in str(info.value)
    params = golden_params("init_seed1.dat")
    history = train(CEngine(), params, images, labels, climbing, stop_on_divergence=False)
    assert history.diverged_at is not None and len(history.batch_loss) == 30
    history = train(
        CEngine(),
        golden_params("init_seed1.dat"),
        images,
        labels,
        TrainConfig(loss="xent", batch_size=100),
        max_batches=4,
    )
    assert len(history.batch_loss) == 4 and history.train_seconds > 0


@pytest.mark.parametrize(
    "change,error,message",
    [
        (dict(batch_size=0), ValueError, "batch_size must be at least 1"),
        (dict(epochs=1.5), TypeError, "epochs must be a whole number"),
        (dict(seed=-1), ValueError, "seed must be at least 0"),
        (dict(lr=float("nan")), ValueError, "lr must be finite"),
        (dict(sign=0), ValueError, r"sign must be \+1 or -1"),
        (dict(loss="hinge"), ValueError, "loss must be one of"),
        (dict(shuffle="no"), TypeError, "shuffle must be True or False"),
    ],
)
def test_train_config_refuses_bad_settings(change, error, message):
    with pytest.raises(error, match=message):
        TrainConfig(**change)


def test_config_defaults_descend_each_loss():
    assert (TrainConfig().sign, TrainConfig().lr) == (1, 0.5)
    assert (TrainConfig(loss="xent").sign, TrainConfig(loss="xent").lr) == (-1, 0.1)
    assert TrainConfig(loss="xent", sign=1).climb_warning() and not TrainConfig().climb_warning()


def test_engines_follow_one_protocol_and_refuse_what_they_cannot_honour():
    assert isinstance(get("c"), Engine) and isinstance(get("numpy"), Engine)
    assert get("c", kernel="reference", threads=2).threads == 2
    with pytest.raises(ValueError, match="numpy engine has no threads option"):
        get("numpy", threads=2)
    with pytest.raises(ValueError, match="numpy engine has no kernel option"):
        get("numpy", kernel="fast")
    with pytest.raises(ValueError, match="engine must be one of"):
        get("torch")
    with pytest.raises(ValueError, match="numpy engine"):
        LeNet5.init().fit(
            np.zeros((10, 28, 28), np.uint8),
            np.zeros(10, np.uint8),
            batch_size=5,
            engine="numpy",
            threads=1,
            progress=False,
        )


def test_interrupted_is_a_keyboard_interrupt_with_the_position():
    e = Interrupted(Position(0, 37), 200, "ck.npz")
    assert isinstance(e, KeyboardInterrupt)
    assert str(e) == "interrupted at epoch 1, after batch 37 of 200; checkpoint written to ck.npz"


def test_importing_the_package_or_its_data_does_not_load_the_core():
    code = (
        "import sys, lenet5, lenet5.data, lenet5.files\n"
        "assert 'lenet5._core' not in sys.modules and 'lenet5.core' not in sys.modules, sorted(sys.modules)\n"
        "lenet5.LeNet5\n"
        "assert 'lenet5._core' in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_one_version_in_code_and_metadata():
    assert importlib.metadata.version("lenet5-exact") == lenet5.__version__


@pytest.mark.parametrize("command", ["lenet5-train", "lenet5-evaluate", "lenet5-experiment"])
def test_console_commands_are_installed(command):
    path = Path(sys.executable).parent / command
    if not path.exists():
        pytest.skip(f"{command} is not installed beside {sys.executable}")
    r = subprocess.run([str(path), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage:" in r.stdout


def test_every_option_says_what_it_does():
    from lenet5 import evaluate, experiment
    from lenet5 import train as train_cli

    for parser in (train_cli.build_parser(), evaluate.build_parser(), experiment.build_parser()):
        for action in parser._actions:
            assert action.help, f"{parser.prog}: {action.option_strings or action.dest} has no help"


def test_readme_install_hints_name_the_distribution():
    root = Path(__file__).resolve().parent.parent
    for path in (root / "lenet5").glob("*.py"):
        text = path.read_text()
        assert "pip install 'lenet5[" not in text and 'pip install "lenet5[' not in text, path
    assert os.path.exists(GOLDEN)
