"""Nothing lost, nothing unsafe (issue 17): writes that refuse devices, FIFOs
and sockets, keep the umask's or the replaced file's mode, use short temporary
names cleaned on failure; the same file named twice; a full disk after
training that still keeps the model; signals; hostile model files."""
import os
import signal
import socket
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from lenet5 import LeNet5
from lenet5.data import REPO_DATA
from lenet5.files import TEMP_PREFIX, OutputPathError, atomic_write, check_writable, write_text_atomic


def train_cmd(*args):
    return [sys.executable, "-m", "lenet5.train", *map(str, args)]


def temp_leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]


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
    if other_disk and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(store)],
                                     capture_output=True).returncode != 0:
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
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f"{TEMP_PREFIX}{dead}-abcdef.tmp"
    fresh = tmp_path / f"{TEMP_PREFIX}{dead}-fedcba.tmp"     # may be a live writer in a moment ago
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
    r = subprocess.run(train_cmd("--save", m, "--json", tmp_path / "." / "m.npz", "--quiet"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "the same file as --save" in r.stderr, r.stderr
    assert not m.exists()


# -- a full disk after training ---------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 KiB tmpfs (a real full disk); skipped where one cannot be mounted."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_disk_after_training_saves_the_model_elsewhere(tmp_path, small_tmpfs):
    run = tmp_path / "run"
    run.mkdir()
    r = subprocess.run(train_cmd("--train-limit", 600, "--save", small_tmpfs / "m.npz",
                                 "--json", tmp_path / "s.json", "--quiet"),
                       capture_output=True, text=True, cwd=run, timeout=120)
    assert r.returncode == 1, r.stderr
    rescued = run / "lenet5-rescued-m.npz"
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "No space left on device" in line and f"the trained model was saved to {rescued} instead" in line
    assert LeNet5.load(rescued).meta["images_seen"] == 600
    assert f"saved {rescued}" in r.stdout
    assert os.listdir(small_tmpfs) == []  # no temporary file left on the full disk


# -- signals -------------------------------------------------------------------

def checkpoint_state(path):
    from lenet5.params import read_params
    return read_params(path)[1]["checkpoint"]


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


RUN = ("--loss", "xent", "--train-limit", 3000, "--batch-size", 50, "--shuffle", "--seed", 3)


def test_sigterm_mid_epoch_then_the_printed_resume_command_gives_the_same_bytes(tmp_path):
    subprocess.run(train_cmd(*RUN, "--save", tmp_path / "whole.dat", "--quiet"), check=True, capture_output=True)
    ck, out, summary = tmp_path / "ck.npz", tmp_path / "out.dat", tmp_path / "s.json"
    status, _, err = start_and_signal(train_cmd(*RUN, "--checkpoint", ck, "--checkpoint-every", 2, "--save", out,
                                                "--json", summary, "--quiet"), ck, signal.SIGTERM, tmp_path)
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
    status, _, err = start_and_signal(train_cmd(*RUN, "--checkpoint", ck, "--checkpoint-every", 2, "--quiet"),
                                      ck, signal.SIGHUP, tmp_path)
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
    from lenet5.loop import InterruptRequest, SignalStop
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


# -- checkpoints: every field checked ------------------------------------------

@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    ck = tmp_path_factory.mktemp("ck") / "ck.npz"
    subprocess.run(train_cmd("--train-limit", 600, "--batch-size", 100, "--checkpoint", ck,
                             "--checkpoint-every", 2, "--epochs", 2, "--quiet"), check=True, capture_output=True)
    return ck.read_bytes()


@pytest.mark.parametrize("edit,message", [
    (lambda m: m["checkpoint"]["settings"].update(train_limit=0), "field 'train_limit' must be a whole number >= 1"),
    (lambda m: m["checkpoint"]["settings"].update(train_limit=-5), "field 'train_limit' must be a whole number >= 1"),
    (lambda m: m["checkpoint"]["settings"].update(batch_size=-5), "batch_size must be at least 1"),
    (lambda m: m["checkpoint"]["settings"].update(outputs=["m.npz"]), "field 'outputs' must be an object of paths"),
    (lambda m: m["checkpoint"]["settings"].update(init=3), "field 'init' must be a path or null"),
    (lambda m: m.update(format_version="1"), "format version '1' is not a whole number"),
    (lambda m: m.update(format_version=None), "format version None is not a whole number"),
    (lambda m: m.update(checkpoint=[1]), "field 'checkpoint' must be an object"),
    (lambda m: m.update(checkpoint=7), "field 'checkpoint' must be an object"),
])
def test_more_edited_checkpoint_fields_are_refused(tmp_path, small_checkpoint, edit, message):
    import json
    import zipfile
    ck = tmp_path / "ck.npz"
    ck.write_bytes(small_checkpoint)
    with np.load(ck) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["meta"]))
    edit(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(ck, **arrays)
    assert zipfile.is_zipfile(ck)
    r = subprocess.run(train_cmd("--resume", ck, "--quiet"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert "cannot resume" in r.stderr and message in r.stderr and "Traceback" not in r.stderr


def test_metadata_that_is_a_list_or_a_number_is_refused(tmp_path):
    from lenet5.params import ModelFileError
    for meta in ("[1, 2]", "3"):
        blocks = {name: np.zeros(shape) for name, (_, shape) in __import__("lenet5.core").core.BLOCKS.items()}
        np.savez(tmp_path / "m.npz", meta=np.array(meta), **blocks)
        with pytest.raises(ModelFileError, match="metadata is not a JSON object"):
            LeNet5.load(tmp_path / "m.npz")


# -- reading hostile files -------------------------------------------------------

def zip_with(path, members):
    """A zip of the given (name, data) members."""
    import zipfile
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members:
            z.writestr(name, data)


def test_an_npz_with_an_extra_member_is_refused_from_the_directory(tmp_path):
    from lenet5.params import ModelFileError
    good = tmp_path / "good.npz"
    LeNet5.init(0).save(good)
    import zipfile
    with zipfile.ZipFile(good) as z:
        members = [(n, z.read(n)) for n in z.namelist()]
    zip_with(tmp_path / "extra.npz", members + [("payload.npy", b"x" * 1000)])
    with pytest.raises(ModelFileError, match="unexpected member 'payload.npy'"):
        LeNet5.load(tmp_path / "extra.npz")


def error_under_memory_cap(limit: int, module: str, function: str, error: str, path, *args) -> str:
    """Call lenet5.<module>.<function>(path, *args) in a fresh Python whose
    address space is capped at limit bytes; return the message of the
    <error> it raised."""
    code = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}));"
            f"from lenet5.{module} import {function}, {error}\n"
            f"try:\n {function}(sys.argv[1], *{args!r})\nexcept {error} as e:\n print(e)")
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_an_npz_member_declaring_a_huge_size_is_refused_before_reading(tmp_path):
    """The zip directory says W1.npy is 3 GB (a bomb): refused from the directory,
    under a memory limit that reading it would break."""
    import struct
    import zipfile
    good = tmp_path / "good.npz"
    LeNet5.init(0).save(good)
    with zipfile.ZipFile(good) as z:
        members = [(n, z.read(n)) for n in z.namelist()]
    bomb = tmp_path / "bomb.npz"
    zip_with(bomb, members)
    blob = bytearray(bomb.read_bytes())
    # Rewrite W1.npy's declared uncompressed size in the central directory.
    at = blob.find(b"PK\x01\x02")
    while at >= 0:
        name_len = struct.unpack_from("<H", blob, at + 28)[0]
        if bytes(blob[at + 46:at + 46 + name_len]) == b"W1.npy":
            struct.pack_into("<I", blob, at + 24, 3_000_000_000)
        at = blob.find(b"PK\x01\x02", at + 4)
    bomb.write_bytes(bytes(blob))
    message = error_under_memory_cap(2 << 30, "params", "read_params", "ModelFileError", bomb)
    assert "member W1.npy declares 3,000,000,000 bytes" in message


def test_a_gzip_bomb_is_decompressed_no_further_than_its_header_announces(tmp_path):
    """A 1 GiB bomb behind a 10-image header, read under a 600 MiB memory
    limit: the reader stops at the announced size and says trailing bytes."""
    import zlib
    header = bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    chunks = [z.compress(header + bytes(10 * 784))]
    zeros = bytes(64 << 20)
    chunks += [z.compress(zeros) for _ in range(16)]
    chunks.append(z.flush())
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(b"".join(chunks))
    assert "has trailing bytes" in error_under_memory_cap(600 << 20, "data", "read_idx", "DataError", bomb, 2051)


def test_a_sparse_huge_raw_idx_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
        f.truncate(4 << 30)  # 4 GiB, sparse
    assert "has trailing bytes" in error_under_memory_cap(600 << 20, "data", "read_idx", "DataError", path, 2051)


@pytest.mark.parametrize("dims", [[0xFFFFFFFF] * 3, [60000, 28, 0xFFFFFFFF], [2 ** 32 - 1, 2 ** 32 - 1]])
def test_idx_dimensions_that_overflow_are_one_clear_error(tmp_path, dims):
    from lenet5.data import DataError, read_idx
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + bytes(100))
    with pytest.raises(DataError, match="more than any MNIST file"):
        read_idx(path)


# -- fork safety and the thread count -------------------------------------------

FORK_AFTER_THREADS = """
import multiprocessing, os, sys
import numpy as np
from lenet5 import LeNet5
from lenet5.data import REPO_DATA
net = LeNet5.init(0)
x = (np.arange(64 * 784) % 251).astype(np.uint8).reshape(64, 28, 28)
want = net.forward(x, threads=2)  # the pool has run a team
def child_forward(_):
    return net.forward(x)
if sys.argv[1] == "os.fork":
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, b"same" if np.array_equal(child_forward(0), want) else b"diff")
        os._exit(0)
    os.waitpid(pid, 0)
    print(os.read(r, 4).decode())
else:
    with multiprocessing.get_context("fork").Pool(2) as pool:
        outs = pool.map(child_forward, range(4))
    print("same" if all(np.array_equal(o, want) for o in outs) else "diff")
print("parent", np.array_equal(net.forward(x, threads=2), want))
"""


def python_with_omp_threads(threads: str, code: str, *args: str) -> subprocess.CompletedProcess:
    """Run `python -c code args` with OMP_NUM_THREADS=threads; it must succeed."""
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, OMP_NUM_THREADS=threads))
    assert r.returncode == 0, r.stderr
    return r


@pytest.mark.parametrize("how", ["os.fork", "multiprocessing"])
def test_a_child_forked_after_the_core_ran_threads_can_use_it(how):
    r = python_with_omp_threads("2", FORK_AFTER_THREADS, how)
    assert r.stdout.split() == ["same", "parent", "True"]
    assert r.stderr.count("forked after the C core ran threads; it runs on one thread here") <= (
        1 if how == "os.fork" else 4)


def test_asking_the_thread_count_is_not_running_threads():
    """A fork after default_threads() alone (no team has run): the child keeps
    its threads, with no note."""
    code = ("import os, lenet5.core as c\n"
            "print(c.default_threads())\n"
            "pid = os.fork()\n"
            "if pid == 0:\n    print('child', c.default_threads(), flush=True)\n    os._exit(0)\n"
            "os.waitpid(pid, 0)\n")
    r = python_with_omp_threads("2", code)
    assert r.stdout.split() == ["2", "child", "2"] and "forked" not in r.stderr


def test_another_librarys_openmp_setting_does_not_move_the_default():
    """PyTorch's set_num_threads calls omp_set_num_threads; lenet5's default
    stays what OpenMP's default was when the library loaded (docs/SPEC.md §9.1)."""
    # The OpenMP runtime the core itself loaded, found in this process's maps.
    code = ("import ctypes, re, lenet5.core as c\n"
            "before = c.default_threads()\n"
            "maps = open('/proc/self/maps').read()\n"
            "found = re.findall(r'(/\\S*lib(?:g|i5|)omp\\S*\\.so\\S*)', maps)\n"
            "if not found:\n    print('no-runtime'); raise SystemExit\n"
            "ctypes.CDLL(found[0]).omp_set_num_threads(1)\n"
            "print(before, c.default_threads())\n")
    r = python_with_omp_threads("2", code)
    if r.stdout.split() == ["no-runtime"]:
        pytest.skip("the core runs without a shared OpenMP runtime")
    assert r.stdout.split() == ["2", "2"]


def test_omp_num_threads_beyond_the_cpus_is_capped_with_a_note():
    code = "import lenet5.core as c; print(c.default_threads()); print(c.default_threads())"
    r = python_with_omp_threads("10000", code)
    cpus = len(os.sched_getaffinity(0))
    assert r.stdout.split() == [str(cpus), str(cpus)]
    assert r.stderr.count("OMP_NUM_THREADS is more than the CPUs") == 1


# -- data folders the user named -------------------------------------------------

def dead_mirror():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def test_a_named_data_folder_is_used_or_refused_never_replaced(tmp_path):
    from lenet5 import data
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "t10k-images-idx3-ubyte.gz").write_bytes((data.REPO_DATA / "t10k-images-idx3-ubyte.gz").read_bytes())
    cases = [(a_file, "is a file, not a folder"), (empty, "has no t10k-images-idx3-ubyte"),
             (tmp_path / "missing", "has no t10k-images-idx3-ubyte"),
             (incomplete, "has no t10k-labels-idx1-ubyte")]
    for folder, message in cases:
        with pytest.raises(data.DataError, match=message) as e:
            data.load_split("test", folder, download=False)
        assert str(e.value).startswith(f"--data-dir {folder}: ")
        with pytest.raises(data.DataError, match=message if folder == a_file else "could not download") as e:
            data.find_data_dir(folder, split="test", mirrors=[dead_mirror()], progress=False)
        assert str(e.value).startswith(f"--data-dir {folder}: ") and "\n" not in str(e.value)


def test_lenet5_data_that_is_a_file_is_refused_on_the_command_line(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    r = subprocess.run(train_cmd("--quiet"), capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, LENET5_DATA=str(a_file)))
    assert r.returncode == 1, r.stderr
    assert r.stderr == f"lenet5.train: data error: LENET5_DATA {a_file}: is a file, not a folder of MNIST files\n"


def test_a_split_reads_only_its_own_two_files(tmp_path, monkeypatch):
    from lenet5 import data
    monkeypatch.setattr(data, "REPO_DATA", tmp_path / "no-repo")
    monkeypatch.delenv("LENET5_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "cache" / "lenet5"
    cache.mkdir(parents=True)
    for name in data.SPLITS["test"]:
        (cache / (name + ".gz")).write_bytes((REPO_DATA / (name + ".gz")).read_bytes())
    images, labels = data.load_split("test", download=False)
    assert images.shape == (10000, 28, 28)
    with pytest.raises(data.DataError) as e:
        data.find_data_dir(split="train", mirrors=[dead_mirror()], progress=False)
    message = str(e.value)
    assert "MNIST not found (searched " in message and str(cache) in message and "could not download" in message
    assert "--data-dir DIR or LENET5_DATA=DIR" in message and "\n" not in message
    assert sorted(os.listdir(cache)) == sorted(n + ".gz" for n in data.SPLITS["test"])


def test_a_5000_character_data_path_is_one_line():
    r = subprocess.run(train_cmd("--data-dir", "/tmp/" + "a" * 5000, "--quiet"), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "File name too long" in r.stderr and "Traceback" not in r.stderr, r.stderr[-300:]
    assert len(r.stderr) < 400


def test_an_unreadable_dat_model_is_one_line(tmp_path):
    """Permission denied (as nobody when run by root, whom no mode stops)."""
    from lenet5.params import ModelFileError, read_params
    model = tmp_path / "m.dat"
    LeNet5.init(0).save(model)
    os.chmod(model, 0)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            if os.geteuid() == 0:
                os.setuid(65534)
            read_params(model)
            os.write(w, b"read it")
        except ModelFileError as e:
            os.write(w, str(e).encode())
        except BaseException as e:
            os.write(w, repr(e).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    assert os.read(r, 1000).decode() == f"{model}: cannot read (Permission denied)"


def test_lr_1e308_says_the_learning_rate_is_too_large():
    r = subprocess.run(train_cmd("--lr", "1e308", "--train-limit", 3000, "--quiet"), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert "the parameters became NaN or infinite" in r.stderr
    assert "the learning rate 1e+308 is too large (--loss mse trains well with --lr 0.5)" in r.stderr
    assert "sign" not in r.stderr


def test_a_full_disk_for_the_checkpoint_stops_the_run_with_it_saved_elsewhere(tmp_path, small_tmpfs):
    run = tmp_path / "run"
    run.mkdir()
    ck = small_tmpfs / "ck.npz"
    r = subprocess.run(train_cmd(*RUN, "--checkpoint", ck, "--checkpoint-every", 4, "--save", tmp_path / "m.dat",
                                 "--quiet"), capture_output=True, text=True, cwd=run, timeout=120)
    assert r.returncode == 1, r.stderr
    rescued = run / "lenet5-rescued-ck.npz"
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"--checkpoint {ck}: No space left on device; the run stopped and its checkpoint was saved to " \
           f"{rescued} instead; resume with: python -m lenet5.train --resume {rescued}" in r.stderr
    assert checkpoint_state(rescued)["batch"] == 4
    resumed = subprocess.run(train_cmd("--resume", rescued, "--quiet"), capture_output=True, text=True,
                             cwd=run, timeout=120)
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
    r = subprocess.run([sys.executable, "-m", "lenet5.evaluate", model, "--json", small_tmpfs / "e.json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert r.stderr == "lenet5.evaluate: cannot write: No space left on device\n"
    assert sorted(os.listdir(small_tmpfs)) == ["filler"]


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
        r = subprocess.run([sys.executable, "-m", "lenet5.evaluate", model, "--json", target],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and message in r.stderr and "accuracy" not in r.stdout, r.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_plot_without_matplotlib_is_said_before_training(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None  # as if not installed\n"
            "from lenet5.train import main\n"
            f"sys.exit(main(['--plot', {str(tmp_path / 'c.png')!r}, '--train-limit', '300', '--batch-size', '500']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and "matplotlib is not installed" in lines[0], r.stderr
    assert "larger than the 300 training images" in lines[1]  # the data check after it, before training
