"""Signals stop training at a batch boundary and lose nothing: SIGTERM and
SIGHUP write the checkpoint and print the resume command; a second signal
while saving leaves the old file whole; a signal while the results are
written waits for them."""

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import RUN, checkpoint_state, temp_leftovers, train_cmd
from lenet5 import LeNet5
from lenet5.files import atomic_write

# -- signals -------------------------------------------------------------------


def start_and_signal(cmd, ck, signum, cwd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    deadline = time.time() + 120
    while not ck.exists():
        assert p.poll() is None, p.communicate()
        assert time.time() < deadline
        time.sleep(0.002)
    p.send_signal(signum)
    out, err = p.communicate(timeout=120)
    return p.returncode, out, err


def test_sigterm_mid_epoch_then_the_printed_resume_command_gives_the_same_bytes(tmp_path):
    subprocess.run(train_cmd(*RUN, "--save", tmp_path / "whole.dat", "--quiet"), check=True, capture_output=True)
    ck, out, summary = tmp_path / "ck.npz", tmp_path / "out.dat", tmp_path / "s.json"
    status, _, err = start_and_signal(
        train_cmd(*RUN, "--checkpoint", ck, "--checkpoint-every", 2, "--save", out, "--json", summary, "--quiet"),
        ck,
        signal.SIGTERM,
        tmp_path,
    )
    assert status == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "interrupted by SIGTERM at epoch" in err and not out.exists() and not summary.exists()
    command = err.split("resume with: ")[1].strip()
    assert command == f"python -m lenet5.train --resume {ck} --checkpoint-every 2 --quiet"
    stopped = checkpoint_state(ck)
    assert stopped["epoch"] == 0 and 0 < stopped["batch"] < 60
    r = subprocess.run([sys.executable, *command.split()[1:]], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"writing --save {out}, --json {summary}, --checkpoint {ck}" in r.stderr
    assert out.read_bytes() == (tmp_path / "whole.dat").read_bytes()
    assert summary.exists()
    end = checkpoint_state(ck)
    assert (end["epoch"], end["batch"]) == (1, 0)  # the checkpoint is the run's end, not where it stopped


def test_sighup_stops_with_a_checkpoint_and_status_129(tmp_path):
    ck = tmp_path / "ck.npz"
    status, _, err = start_and_signal(
        train_cmd(*RUN, "--checkpoint", ck, "--checkpoint-every", 2, "--quiet"), ck, signal.SIGHUP, tmp_path
    )
    assert status == 128 + signal.SIGHUP, err
    assert "interrupted by SIGHUP at epoch" in err and "resume with:" in err and "Traceback" not in err
    assert checkpoint_state(ck)["batch"] > 0 or checkpoint_state(ck)["epoch"] > 0


def test_sigterm_outside_training_ends_a_command_with_143_and_one_line(capsys):
    from lenet5 import cli

    def body():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # never reached: the handler raises
        return 0

    assert cli.run("lenet5.train", body) == 143
    assert capsys.readouterr().err == "lenet5.train: interrupted by SIGTERM\n"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_second_signal_while_saving_leaves_the_old_file_whole(tmp_path):
    from lenet5.signals import InterruptRequest, SignalStop

    target = tmp_path / "ck.npz"
    target.write_bytes(b"the last complete checkpoint")

    def interrupted_write(f):
        f.write(b"half a checkpoint")
        os.kill(os.getpid(), signal.SIGTERM)  # the second signal, mid-write
        f.write(b" and the rest")

    with InterruptRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop() and stop.signum == signal.SIGINT
        with pytest.raises(SignalStop) as e:
            atomic_write(target, interrupted_write)
    assert e.value.signum == signal.SIGTERM
    assert target.read_bytes() == b"the last complete checkpoint" and temp_leftovers(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored


def test_a_signal_while_the_results_are_written_waits_for_them(tmp_path):
    """SIGTERM arrives while --save writes (sent from inside the real save, to
    hit that moment every time): the model is still written whole."""
    code = f"""
import os, signal, sys
import lenet5.params as params
write = params.write_params
def slow_write(path, p, meta=None):
    os.kill(os.getpid(), signal.SIGTERM)
    write(path, p, meta)
params.write_params = write_params = slow_write
import lenet5.model
lenet5.model.write_params = slow_write
from lenet5.train import main
sys.exit(main(["--train-limit", "300", "--quiet", "--save", {str(tmp_path / "m.npz")!r}]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 143, r.stderr
    assert r.stderr == "lenet5.train: SIGTERM while writing the results; all were written\n"
    assert LeNet5.load(tmp_path / "m.npz").meta["images_seen"] == 300
