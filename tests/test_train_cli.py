"""python -m lenet5.train and python -m lenet5.evaluate, run as a user would."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import CASES, GOLDEN, file_sha256, run_train

run = run_train


@pytest.mark.parametrize(
    "name", ["xent_b10_n100_e1", "mse_b300_n300_e1", pytest.param("mse_b300_n60000_e1", marks=pytest.mark.slow)]
)
def test_cli_reproduces_golden(tmp_path, name):
    case = CASES[name]
    out = tmp_path / "out.dat"
    r = run(
        "--init",
        GOLDEN / case["init"],
        "--loss",
        case["loss"],
        "--sign",
        f"{case['sign']:+d}",
        "--lr",
        case["lr"],
        "--batch-size",
        case["batch_size"],
        "--train-limit",
        case["train_images"],
        "--epochs",
        case["epochs"],
        "--save",
        out,
        "--json",
        tmp_path / "s.json",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    assert file_sha256(out) == case["output_sha256"]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["test_correct"] == case["test_correct"]
    assert summary["isa"] in ("avx512", "avx2", "sse2", "generic")  # the variant that ran (SPEC §9.4)
    assert f" | {summary['isa']}" in r.stdout


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["xent", "mse"])
def test_one_epoch_from_scratch_reaches_96_percent(tmp_path, loss):
    r = run("--loss", loss, "--json", tmp_path / "s.json", "--save", tmp_path / "m.npz", "--quiet")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["test_accuracy"] >= 0.96, s
    for key in (
        "test_accuracy",
        "test_correct",
        "train_seconds",
        "images_per_second",
        "loss",
        "sign",
        "lr",
        "batch_size",
        "epochs",
    ):
        assert key in s
    assert s["loss"] == loss and s["sign"] == {"xent": -1, "mse": 1}[loss]
    assert s["lr"] == {"xent": 0.1, "mse": 0.5}[loss] and s["batch_size"] == 300 and s["epochs"] == 1
    assert "test accuracy" in r.stdout and "images/s" in r.stdout
    ev = run(tmp_path / "m.npz", module="lenet5.evaluate")
    assert ev.returncode == 0 and f"({s['test_correct']}/10000)" in ev.stdout


def test_a_log_gets_one_plain_line_per_epoch(tmp_path):
    """Standard error is a pipe here, as in CI or nohup: no bar refreshes, one line an epoch."""
    r = run("--loss", "xent", "--train-limit", 600, "--batch-size", 100, "--epochs", 2)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["epoch 1/2", "epoch 2/2"], r.stderr
    assert lines[2:] == ["the trained model was not saved: give --save PATH to keep it"], r.stderr
    assert "test accuracy" in lines[0] and "test accuracy" in lines[1]
    assert "\r" not in r.stderr and "acc=" not in r.stderr


def test_a_terminal_gets_a_live_progress_bar(tmp_path):
    """On a terminal (a pseudo-terminal here) the bar shows the running loss and accuracy."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 wide
    shown = []

    def read_terminal():  # read as it comes: a full terminal buffer would block the trainer
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal closed: everything was read
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    try:
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "lenet5.train",
                "--loss",
                "xent",
                "--train-limit",
                "4000",
                "--batch-size",
                "10",
                "--epochs",
                "2",
            ],
            stderr=child,
            stdout=subprocess.PIPE,
            timeout=300,
        )
    finally:
        os.close(child)
        reader.join(timeout=30)
        os.close(main)
    assert p.returncode == 0
    text = b"".join(shown).decode(errors="replace")
    assert "acc=" in text and "loss=" in text and "batch/s" in text
    assert "epoch 1/2: test accuracy" in text and "epoch 2/2: test accuracy" in text


def test_climbing_sign_is_allowed_but_announced_and_divergence_stops(tmp_path):
    out = tmp_path / "m.npz"
    r = run("--loss", "xent", "--sign", "+1", "--train-limit", 3000, "--batch-size", 100, "--save", out, "--quiet")
    assert "climbs the loss" in r.stderr
    assert r.returncode == 3, r.stderr
    assert "diverged" in r.stderr and "--sign -1" in r.stderr
    assert not out.exists()
    assert "Traceback" not in r.stderr


def test_shuffle_is_seeded(tmp_path):
    args = ("--loss", "xent", "--train-limit", 1000, "--batch-size", 100, "--shuffle", "--quiet")
    run(*args, "--seed", 4, "--save", tmp_path / "a.dat")
    run(*args, "--seed", 4, "--save", tmp_path / "b.dat")
    run(
        "--loss",
        "xent",
        "--train-limit",
        1000,
        "--batch-size",
        100,
        "--seed",
        4,
        "--quiet",
        "--save",
        tmp_path / "c.dat",
    )
    assert file_sha256(tmp_path / "a.dat") == file_sha256(tmp_path / "b.dat") != file_sha256(tmp_path / "c.dat")


ARG_ERRORS = [
    (["--loss", "hinge"], "invalid choice"),
    (["--sign", "0"], "must be +1 or -1"),
    (["--lr", "0"], "must be finite and > 0"),
    (["--lr", "-0.5"], "must be finite and > 0"),
    (["--lr", "nan"], "must be finite and > 0"),
    (["--lr", "inf"], "must be finite and > 0"),
    (["--batch-size", "0"], "at least 1"),
    (["--batch-size", "-3"], "at least 1"),
    (["--epochs", "0"], "at least 1"),
    (["--threads", "0"], "between 1 and 1024"),
    (["--threads", "5000"], "between 1 and 1024"),
    (["--seed", "-1"], "at least 0"),
    (["--engine", "numpy", "--threads", "2"], "the numpy engine has no threads option"),
    (["--batch-size", "500", "--train-limit", "100"], "larger than the 100 training images"),
    (["--train-limit", "70000"], "exceeds the 60000"),
    (["--save", "model.txt"], "use a .npz or .dat"),
    (["--save", "/no/such/folder/m.npz"], "does not exist"),
    (["--json", "/no/such/folder/s.json"], "does not exist"),
    (["--bogus"], "unrecognized arguments"),
]


@pytest.mark.parametrize("args,message", ARG_ERRORS, ids=[" ".join(a) for a, _ in ARG_ERRORS])
def test_argument_errors_exit_2_with_one_line(tmp_path, args, message):
    r = run(*args, "--quiet", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can write into, root included (chattr +i where root)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("root without chattr: no way to make a read-only folder")
        yield folder
        subprocess.run(["chattr", "-i", str(folder)])
    else:
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)


@pytest.mark.parametrize("flag", ["--save", "--json", "--checkpoint"])
def test_read_only_output_folder_is_refused_before_training(read_only_folder, flag):
    name = "out.json" if flag == "--json" else "out.npz"
    r = run(flag, read_only_folder / name, "--quiet")
    assert r.returncode == 2 and "not writable" in r.stderr, r.stderr
    assert "test accuracy" not in r.stdout  # refused before any training
    assert list(read_only_folder.iterdir()) == []


@pytest.mark.parametrize("content,message", [(b"\0" * 100, "100 bytes"), (np.full(51902, np.nan).tobytes(), "NaN")])
def test_bad_init_model_exits_1(tmp_path, content, message):
    (tmp_path / "bad.dat").write_bytes(content)
    r = run("--init", tmp_path / "bad.dat", "--quiet")
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr
    r = run(tmp_path / "bad.dat", module="lenet5.evaluate")
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr


def test_bad_data_exits_1(tmp_path):
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (tmp_path / name).write_bytes(b"\x00\x00\x08\x03garbage")
    r = run("--data-dir", tmp_path, "--quiet")
    assert r.returncode == 1 and "data error" in r.stderr and "Traceback" not in r.stderr
    assert "train-images-idx3-ubyte" in r.stderr
