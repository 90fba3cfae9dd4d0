"""Writes lose nothing and touch nothing else (issue 17): outputs that refuse
devices, FIFOs and sockets, keep the umask's or the replaced file's mode, use
short temporary names cleaned on failure; the same file named twice; a full
disk after training (or at a checkpoint) that still keeps the model."""

import os
import socket
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import RUN, checkpoint_state, temp_leftovers, train_cmd
from lenet5 import LeNet5
from lenet5.files import TEMP_PREFIX, OutputPathError, atomic_write, check_writable, write_text_atomic

# -- writes: only regular files ----------------------------------------------


def test_json_to_a_fifo_is_refused_before_training_and_the_fifo_stays(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    r = subprocess.run(train_cmd("--json", fifo, "--quiet"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert f"--json {fifo}: is a FIFO, not a regular file" in r.stderr and "Traceback" not in r.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert temp_leftovers(tmp_path) == []


def test_json_to_dev_null_is_refused_and_the_device_stays():
    before = os.stat("/dev/null")
    r = subprocess.run(train_cmd("--json", "/dev/null", "--quiet"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "/dev/null: is a device, not a regular file" in r.stderr, r.stderr
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_atomic_write_refuses_a_socket_a_fifo_and_a_folder(tmp_path):
    fifo, sock_path, folder = tmp_path / "f", tmp_path / "s", tmp_path / "d"
    os.mkfifo(fifo)
    folder.mkdir()
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        for target, kind in ((fifo, "a FIFO"), (sock_path, "a socket"), (folder, "a folder")):
            with pytest.raises(OutputPathError, match=kind):
                write_text_atomic(target, "x")
            with pytest.raises(OutputPathError, match=kind):
                check_writable(target)
        assert stat.S_ISSOCK(os.stat(sock_path).st_mode) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert temp_leftovers(tmp_path) == []


# -- writes: modes, names, leftovers -----------------------------------------


def test_new_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "a.json", "{}")
        os.umask(0o022)
        LeNet5.init(0).save(tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / "m.npz").st_mode) == 0o644


def test_a_replaced_file_keeps_its_mode(tmp_path):
    for mode in (0o644, 0o600, 0o664):
        target = tmp_path / f"m{mode:o}.dat"
        target.write_bytes(b"old")
        os.chmod(target, mode)
        LeNet5.init(0).save(target)
        assert stat.S_IMODE(os.stat(target).st_mode) == mode
        assert target.stat().st_size == 415216


@pytest.mark.parametrize("other_disk", [False, True])
def test_a_symlinked_output_is_written_through(tmp_path, other_disk):
    """--save LINK: the link's target gets the model and the link stays a
    link, also when the target is on another file system (the temporary file
    goes beside the target, so the rename never crosses disks)."""
    store = tmp_path / "store"
    store.mkdir()
    if (
        other_disk
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(store)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        (store / "model.npz").write_bytes(b"old")
        link = tmp_path / "current.npz"
        link.symlink_to(store / "model.npz")
        LeNet5.init(4).save(link)
        assert link.is_symlink() and os.readlink(link) == str(store / "model.npz")
        assert np.array_equal(LeNet5.load(store / "model.npz").params, LeNet5.init(4).params)
        assert sorted(p.name for p in store.iterdir()) == ["model.npz"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["current.npz", "store"]
    finally:
        if other_disk:
            subprocess.run(["umount", str(store)], check=True)


def test_a_255_character_name_saves(tmp_path):
    for length in (243, 250, 255):
        target = tmp_path / ("m" * (length - 4) + ".npz")
        LeNet5.init(0).save(target)
        assert np.array_equal(LeNet5.load(target).params, LeNet5.init(0).params)
    assert temp_leftovers(tmp_path) == []


def test_a_failed_write_leaves_no_temporary_file_and_the_old_file(tmp_path):
    target = tmp_path / "s.json"
    target.write_text("old")

    def fail(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, fail)
    assert target.read_text() == "old" and temp_leftovers(tmp_path) == []


def test_temporary_files_of_a_killed_run_are_swept(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = tmp_path / f"{TEMP_PREFIX}{dead}-abcdef.tmp"
    fresh = tmp_path / f"{TEMP_PREFIX}{dead}-fedcba.tmp"  # may be a live writer in a moment ago
    alive = tmp_path / f"{TEMP_PREFIX}{os.getppid()}-aaaaaa.tmp"
    for p in (stale, fresh, alive):
        p.write_bytes(b"x")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    os.utime(alive, (hour_ago, hour_ago))
    write_text_atomic(tmp_path / "s.json", "{}")
    assert not stale.exists() and fresh.exists() and alive.exists()


def test_two_outputs_naming_the_same_file_are_refused_before_training(tmp_path):
    m = tmp_path / "m.npz"
    r = subprocess.run(
        train_cmd("--save", m, "--json", tmp_path / "." / "m.npz", "--quiet"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "the same file as --save" in r.stderr, r.stderr
    assert not m.exists()


# -- a full disk after training ---------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 KiB tmpfs (a real full disk); skipped where one cannot be mounted."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_disk_after_training_saves_the_model_elsewhere(tmp_path, small_tmpfs):
    run = tmp_path / "run"
    run.mkdir()
    r = subprocess.run(
        train_cmd("--train-limit", 600, "--save", small_tmpfs / "m.npz", "--json", tmp_path / "s.json", "--quiet"),
        capture_output=True,
        text=True,
        cwd=run,
        timeout=120,
    )
    assert r.returncode == 1, r.stderr
    rescued = run / "lenet5-rescued-m.npz"
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "No space left on device" in line and f"the trained model was saved to {rescued} instead" in line
    assert LeNet5.load(rescued).meta["images_seen"] == 600
    assert f"saved {rescued}" in r.stdout
    assert os.listdir(small_tmpfs) == []  # no temporary file left on the full disk


def test_a_full_disk_for_the_checkpoint_stops_the_run_with_it_saved_elsewhere(tmp_path, small_tmpfs):
    run = tmp_path / "run"
    run.mkdir()
    ck = small_tmpfs / "ck.npz"
    r = subprocess.run(
        train_cmd(*RUN, "--checkpoint", ck, "--checkpoint-every", 4, "--save", tmp_path / "m.dat", "--quiet"),
        capture_output=True,
        text=True,
        cwd=run,
        timeout=120,
    )
    assert r.returncode == 1, r.stderr
    rescued = run / "lenet5-rescued-ck.npz"
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert (
        f"--checkpoint {ck}: No space left on device; the run stopped and its checkpoint was saved to "
        f"{rescued} instead; resume with: python -m lenet5.train --resume {rescued}" in r.stderr
    )
    assert checkpoint_state(rescued)["batch"] == 4
    resumed = subprocess.run(
        train_cmd("--resume", rescued, "--quiet"), capture_output=True, text=True, cwd=run, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    assert LeNet5.load(tmp_path / "m.dat").params.shape == (51902,)  # the recorded --save, written at the end


def test_evaluate_json_on_a_full_disk_is_one_line(tmp_path, small_tmpfs):
    model = tmp_path / "m.npz"
    LeNet5.init(0).save(model)
    filler = small_tmpfs / "filler"
    with open(filler, "wb", buffering=0) as f:  # fill the disk
        with pytest.raises(OSError):
            while True:
                f.write(bytes(4096))
    r = subprocess.run(
        [sys.executable, "-m", "lenet5.evaluate", model, "--json", small_tmpfs / "e.json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1, r.stderr
    assert r.stderr == "lenet5.evaluate: cannot write: No space left on device\n"
    assert sorted(os.listdir(small_tmpfs)) == ["filler"]


# -- what main already had: kept honest here -------------------------------------


def test_non_finite_parameters_are_refused_at_construction():
    for bad in (np.full(51902, np.nan), np.r_[np.zeros(51901), np.inf]):
        with pytest.raises(ValueError, match="NaN or infinite"):
            LeNet5(bad)


def test_evaluate_json_is_checked_before_any_work(tmp_path):
    model = tmp_path / "m.npz"
    LeNet5.init(0).save(model)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for target, message in ((fifo, "is a FIFO"), (tmp_path / "no" / "e.json", "does not exist")):
        r = subprocess.run(
            [sys.executable, "-m", "lenet5.evaluate", model, "--json", target],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2 and message in r.stderr and "accuracy" not in r.stdout, r.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_plot_without_matplotlib_is_said_before_training(tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None  # as if not installed\n"
        "from lenet5.train import main\n"
        f"sys.exit(main(['--plot', {str(tmp_path / 'c.png')!r}, '--train-limit', '300', '--batch-size', '500']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and "matplotlib is not installed" in lines[0], r.stderr
    assert "larger than the 300 training images" in lines[1]  # the data check after it, before training
