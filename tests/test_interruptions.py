"""Nothing lost: checkpoints, resume after SIGKILL, Ctrl-C at a batch
boundary, identical bytes at every thread count, and failed runs that leave
existing files as they were."""

import json
import signal
import subprocess
import time

import numpy as np
import pytest

from helpers import CASES, GOLDEN, file_sha256, train_cmd

CASE = CASES["mse_b300_n60000_e1"]  # the reference program's own run: the trainer's defaults


def checkpoint_position(path):
    with np.load(path) as f:
        return json.loads(str(f["meta"]))["checkpoint"]


def wait_for(path, process, timeout=120):
    start = time.time()
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.time() - start < timeout
        time.sleep(0.005)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_golden_bytes(tmp_path):
    ck, out = tmp_path / "ck.npz", tmp_path / "out.dat"
    p = subprocess.Popen(
        train_cmd(
            "--init", GOLDEN / CASE["init"], "--checkpoint", ck, "--checkpoint-every", 10, "--save", out, "--quiet"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(ck, p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    assert not out.exists()
    position = checkpoint_position(ck)
    assert position["epoch"] == 0 and 0 < position["batch"] < 200 and position["batch"] % 10 == 0
    r = subprocess.run(train_cmd("--resume", ck, "--save", out, "--quiet"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "resuming at epoch 1" in r.stderr
    assert file_sha256(out) == CASE["output_sha256"]


@pytest.mark.slow
def test_ctrl_c_stops_at_a_batch_boundary_with_a_checkpoint(tmp_path):
    ck, out = tmp_path / "ck.npz", tmp_path / "out.dat"
    p = subprocess.Popen(
        train_cmd(
            "--init", GOLDEN / CASE["init"], "--checkpoint", ck, "--checkpoint-every", 10, "--save", out, "--quiet"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(ck, p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted at epoch 1, after batch" in err and "resume with: python -m lenet5.train --resume" in err
    assert "Traceback" not in err and not out.exists()
    stopped_after = int(err.split("after batch ")[1].split()[0])
    assert checkpoint_position(ck)["batch"] == stopped_after < 200
    r = subprocess.run(train_cmd("--resume", ck, "--save", out, "--quiet"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert file_sha256(out) == CASE["output_sha256"]


@pytest.mark.slow
def test_ctrl_c_without_checkpoint_says_nothing_was_saved(tmp_path):
    p = subprocess.Popen(
        train_cmd("--loss", "xent", "--epochs", 3, "--json", tmp_path / "s.json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = p.stderr.readline()  # training is under way (and Ctrl-C handled) once epoch 1 is done
    assert first.startswith("epoch 1/3:"), first
    p.send_signal(signal.SIGINT)
    rest, err = p.communicate(timeout=300)
    assert p.returncode == 130 and "nothing saved" in err and "Traceback" not in err
    assert not (tmp_path / "s.json").exists()


@pytest.mark.slow
def test_resume_across_epochs_matches_one_run(tmp_path):
    """A checkpoint at an epoch boundary, with shuffling: the permutation of
    each epoch is fixed by (seed, epoch), so the resumed run sees the same order."""
    args = (
        "--loss",
        "xent",
        "--train-limit",
        9000,
        "--batch-size",
        100,
        "--epochs",
        3,
        "--shuffle",
        "--seed",
        9,
        "--quiet",
    )
    subprocess.run(train_cmd(*args, "--save", tmp_path / "whole.dat"), check=True, capture_output=True)
    ck = tmp_path / "ck.npz"
    p = subprocess.Popen(
        train_cmd(*args, "--checkpoint", ck, "--checkpoint-every", 5), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    while not ck.exists() or checkpoint_position(ck)["epoch"] < 1:
        assert p.poll() is None or ck.exists()
        time.sleep(0.002)
    p.kill()
    p.wait()
    assert p.returncode == -signal.SIGKILL  # killed mid-run, not finished
    assert 1 <= checkpoint_position(ck)["epoch"] < 3
    r = subprocess.run(
        train_cmd("--resume", ck, "--save", tmp_path / "resumed.dat", "--quiet"), capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert file_sha256(tmp_path / "resumed.dat") == file_sha256(tmp_path / "whole.dat")


@pytest.mark.slow
def test_preset_killed_mid_run_then_resumed_on_other_threads_gives_the_same_bytes(tmp_path):
    """--preset best from the command line (momentum, decay, cosine after a
    warm-up, augmentation, shuffling, a validation hold-out), cut short to 3
    epochs of 6,000 images: SIGKILL in the second epoch, once the velocity and
    the schedule are under way, then --resume on 1 thread finishes with the
    bytes (and the scores) of an uninterrupted run on 2."""
    args = ("--preset", "best", "--train-limit", 6000, "--epochs", 3, "--val", 500, "--seed", 5, "--quiet")
    whole = subprocess.run(
        train_cmd(*args, "--threads", 2, "--save", tmp_path / "whole.npz", "--json", tmp_path / "whole.json"),
        capture_output=True,
        text=True,
    )
    assert whole.returncode == 0, whole.stderr
    ck = tmp_path / "ck.npz"
    p = subprocess.Popen(
        train_cmd(
            *args,
            "--threads",
            2,
            "--checkpoint",
            ck,
            "--checkpoint-every",
            7,
            "--save",
            tmp_path / "resumed.npz",
            "--json",
            tmp_path / "resumed.json",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    while not ck.exists() or checkpoint_position(ck)["epoch"] < 1 or checkpoint_position(ck)["batch"] < 7:
        assert p.poll() is None, p.communicate()
        time.sleep(0.002)
    p.kill()
    p.wait()
    assert p.returncode == -signal.SIGKILL and not (tmp_path / "resumed.npz").exists()
    with np.load(ck) as f:
        assert "velocity" in f.files and np.any(f["velocity"] != 0)
    r = subprocess.run(train_cmd("--resume", ck, "--threads", 1, "--quiet"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "resuming at epoch 2" in r.stderr
    assert file_sha256(tmp_path / "whole.npz") == file_sha256(tmp_path / "resumed.npz")
    scores = [json.loads((tmp_path / name).read_text()) for name in ("whole.json", "resumed.json")]
    for key in ("test_accuracy", "epoch_test_accuracy", "epoch_val_accuracy"):
        assert scores[0][key] == scores[1][key], key
    assert len(scores[0]["epoch_val_accuracy"]) == 3


def test_same_arguments_same_bytes_at_every_thread_count(tmp_path):
    digests = set()
    for threads in (1, 2, 3):
        out = tmp_path / f"t{threads}.dat"
        subprocess.run(
            train_cmd(
                "--loss",
                "xent",
                "--train-limit",
                3000,
                "--shuffle",
                "--seed",
                5,
                "--batch-size",
                150,
                "--threads",
                threads,
                "--save",
                out,
                "--quiet",
            ),
            check=True,
            capture_output=True,
        )
        digests.add(file_sha256(out))
    assert len(digests) == 1


@pytest.mark.parametrize(
    "args,status",
    [
        (("--loss", "xent", "--sign", "+1", "--train-limit", 3000, "--batch-size", 100), 3),
        (("--init", "/no/such/model.dat"), 1),
        (("--lr", "-1"), 2),
    ],
)
def test_failed_runs_leave_existing_files_alone(tmp_path, args, status):
    out, summary = tmp_path / "model.npz", tmp_path / "s.json"
    out.write_bytes(b"precious")
    summary.write_text("precious")
    r = subprocess.run(train_cmd(*args, "--save", out, "--json", summary, "--quiet"), capture_output=True, text=True)
    assert r.returncode == status, r.stderr
    assert out.read_bytes() == b"precious" and summary.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz", "s.json"]


def test_resume_refuses_conflicts_and_models(tmp_path):
    ck = tmp_path / "ck.npz"
    subprocess.run(
        train_cmd("--train-limit", 600, "--batch-size", 100, "--checkpoint", ck, "--quiet"),
        check=True,
        capture_output=True,
    )
    r = subprocess.run(train_cmd("--resume", ck, "--lr", "0.3", "--quiet"), capture_output=True, text=True)
    assert r.returncode == 2 and "differs from the checkpoint" in r.stderr
    model = tmp_path / "m.dat"
    model.write_bytes((GOLDEN / CASE["init"]).read_bytes())
    r = subprocess.run(train_cmd("--resume", model, "--quiet"), capture_output=True, text=True)
    assert r.returncode == 1 and "not a checkpoint" in r.stderr


def test_resume_of_a_finished_run_just_reports(tmp_path):
    ck = tmp_path / "ck.npz"
    args = ("--loss", "xent", "--train-limit", 600, "--batch-size", 100, "--quiet")
    subprocess.run(train_cmd(*args, "--checkpoint", ck, "--save", tmp_path / "a.dat"), check=True, capture_output=True)
    assert checkpoint_position(ck)["epoch"] == 1
    r = subprocess.run(
        train_cmd("--resume", ck, "--save", tmp_path / "b.dat", "--quiet"), capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout
    assert file_sha256(tmp_path / "a.dat") == file_sha256(tmp_path / "b.dat")


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c.update(epoch=-1), "field 'epoch' must be a whole number >= 0, not -1"),
        (lambda c: c.update(epoch=0.5), "field 'epoch' must be a whole number >= 0, not 0.5"),
        (lambda c: c.update(batch=7), "field 'batch' is 7, past the end of an epoch of 6 batches"),
        (lambda c: c["settings"].update(batch_size=0), "batch_size must be at least 1"),
        (lambda c: c["settings"].update(shuffle="no"), "shuffle must be True or False"),
        (lambda c: c["settings"].pop("lr"), "settings lack lr"),
        (lambda c: c.update(settings=[1, 2]), "settings must be a JSON object"),
    ],
)
def test_edited_checkpoints_are_refused_with_the_field_named(tmp_path, edit, message):
    from lenet5.params import read_params, write_params

    ck = tmp_path / "ck.npz"
    subprocess.run(
        train_cmd(
            "--train-limit",
            600,
            "--batch-size",
            100,
            "--checkpoint",
            ck,
            "--checkpoint-every",
            2,
            "--epochs",
            2,
            "--quiet",
        ),
        check=True,
        capture_output=True,
    )
    params, meta = read_params(ck)
    edit(meta["checkpoint"])
    write_params(ck, params, meta)
    r = subprocess.run(train_cmd("--resume", ck, "--quiet"), capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert message in r.stderr and "cannot resume" in r.stderr and "Traceback" not in r.stderr
