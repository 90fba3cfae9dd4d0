"""The trainer's optimizer, schedule, augmentation, validation and preset
options, run as a user would: bad values exit 2 with nothing written, --val
adds the per-epoch validation accuracy, a preset's values yield to explicit
options."""

import json

import pytest

from helpers import run_train
from lenet5 import LeNet5
from lenet5.loop import validation_split

SMALL = ("--loss", "xent", "--train-limit", 600, "--batch-size", 100, "--quiet")


run = run_train


@pytest.mark.parametrize(
    "args,message",
    [
        (("--val", 600), "--val 600 leaves none"),
        (("--val", 550), "--batch-size 100 is larger than the 50"),
        (("--momentum", -0.1), "argument --momentum"),
        (("--momentum", 1), "argument --momentum"),
        (("--weight-decay", -1e-4), "argument --weight-decay"),
        (("--schedule", "linear"), "argument --schedule"),
        (("--preset", "worst"), "argument --preset"),
        (("--nesterov",), "nesterov needs a momentum"),
        (("--warmup", 2, "--epochs", 2), "warmup"),
        (("--val", -3), "argument --val"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(tmp_path, args, message):
    r = run(*SMALL, *args, "--save", tmp_path / "m.npz", "--json", tmp_path / "s.json")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_resuming_a_run_without_momentum_with_momentum_is_refused(tmp_path):
    ck = tmp_path / "ck.npz"
    assert run(*SMALL, "--checkpoint", ck).returncode == 0
    before = ck.read_bytes()
    r = run(*SMALL, "--resume", ck, "--momentum", 0.9, "--save", tmp_path / "m.npz")
    assert r.returncode == 2 and "--momentum 0.9 differs from the checkpoint's 0.0" in r.stderr
    assert ck.read_bytes() == before and not (tmp_path / "m.npz").exists()


def test_val_reports_validation_accuracy_per_epoch(tmp_path, mnist_train):
    r = run(
        *SMALL,
        "--val",
        100,
        "--epochs",
        2,
        "--momentum",
        0.9,
        "--augment",
        "--shuffle",
        "--seed",
        3,
        "--json",
        tmp_path / "s.json",
        "--save",
        tmp_path / "m.npz",
    )
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert len(s["epoch_val_accuracy"]) == 2 and len(s["epoch_test_accuracy"]) == 2
    # The last figure is the saved model's accuracy on the seeded hold-out of the 600 images.
    train_rows, val_rows = validation_split(600, 100, 3)
    assert len(set(train_rows) | set(val_rows)) == 600 and len(val_rows) == 100
    net = LeNet5.load(tmp_path / "m.npz")
    held_out = net.evaluate(mnist_train[0][val_rows], mnist_train[1][val_rows]).accuracy
    assert s["epoch_val_accuracy"][-1] == held_out
    assert s["images_seen"] == 2 * 500 and s["val"] == 100
    assert s["test_accuracy"] == s["epoch_test_accuracy"][-1]


def test_without_val_the_summary_has_no_validation_accuracy(tmp_path):
    assert run(*SMALL, "--json", tmp_path / "s.json").returncode == 0
    assert "epoch_val_accuracy" not in json.loads((tmp_path / "s.json").read_text())


def test_preset_values_yield_to_explicit_options(tmp_path):
    r = run(*SMALL, "--preset", "best", "--epochs", 2, "--momentum", 0.5, "--json", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert (s["epochs"], s["momentum"], s["batch_size"]) == (2, 0.5, 100)  # given
    assert (s["nesterov"], s["schedule"], s["augment"], s["weight_decay"]) == (True, "cosine", True, 5e-4)  # preset
