"""Hostile files and folders get one line, never a traceback, and nothing is
read beyond what is announced: edited checkpoints, npz archives with extra or
huge members, gzip bombs, sparse and overflowing IDX files, data folders the
user named, unreadable models."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from helpers import train_cmd
from lenet5 import LeNet5
from lenet5.data import REPO_DATA

# -- checkpoints: every field checked ------------------------------------------


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    ck = tmp_path_factory.mktemp("ck") / "ck.npz"
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
    return ck.read_bytes()


@pytest.mark.parametrize(
    "edit,message",
    [
        (
            lambda m: m["checkpoint"]["settings"].update(train_limit=0),
            "field 'train_limit' must be a whole number >= 1",
        ),
        (
            lambda m: m["checkpoint"]["settings"].update(train_limit=-5),
            "field 'train_limit' must be a whole number >= 1",
        ),
        (lambda m: m["checkpoint"]["settings"].update(batch_size=-5), "batch_size must be at least 1"),
        (lambda m: m["checkpoint"]["settings"].update(outputs=["m.npz"]), "field 'outputs' must be an object of paths"),
        (lambda m: m["checkpoint"]["settings"].update(init=3), "field 'init' must be a path or null"),
        (lambda m: m.update(format_version="1"), "format version '1' is not a whole number"),
        (lambda m: m.update(format_version=None), "format version None is not a whole number"),
        (lambda m: m.update(checkpoint=[1]), "field 'checkpoint' must be an object"),
        (lambda m: m.update(checkpoint=7), "field 'checkpoint' must be an object"),
    ],
)
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
    code = (
        f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}));"
        f"from lenet5.{module} import {function}, {error}\n"
        f"try:\n {function}(sys.argv[1], *{args!r})\nexcept {error} as e:\n print(e)"
    )
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
        if bytes(blob[at + 46 : at + 46 + name_len]) == b"W1.npy":
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


@pytest.mark.parametrize("dims", [[0xFFFFFFFF] * 3, [60000, 28, 0xFFFFFFFF], [2**32 - 1, 2**32 - 1]])
def test_idx_dimensions_that_overflow_are_one_clear_error(tmp_path, dims):
    from lenet5.data import DataError, read_idx

    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + bytes(100))
    with pytest.raises(DataError, match="more than any MNIST file"):
        read_idx(path)


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
    cases = [
        (a_file, "is a file, not a folder"),
        (empty, "has no t10k-images-idx3-ubyte"),
        (tmp_path / "missing", "has no t10k-images-idx3-ubyte"),
        (incomplete, "has no t10k-labels-idx1-ubyte"),
    ]
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
    r = subprocess.run(
        train_cmd("--quiet"), capture_output=True, text=True, timeout=60, env=dict(os.environ, LENET5_DATA=str(a_file))
    )
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
    r = subprocess.run(
        train_cmd("--data-dir", "/tmp/" + "a" * 5000, "--quiet"), capture_output=True, text=True, timeout=60
    )
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
    r = subprocess.run(
        train_cmd("--lr", "1e308", "--train-limit", 3000, "--quiet"), capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 3, r.stderr
    assert "the parameters became NaN or infinite" in r.stderr
    assert "the learning rate 1e+308 is too large (--loss mse trains well with --lr 0.5)" in r.stderr
    assert "sign" not in r.stderr
