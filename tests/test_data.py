"""The MNIST reader, its checks, the look-up order and the downloader.

The downloader is tested against a real HTTP server on 127.0.0.1 serving a
good file, a wrong file, a truncated body, and against a port nobody serves.
"""

import gzip
import hashlib
import http.server
import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from lenet5 import data
from lenet5.data import DataError

REPO_DATA = Path(__file__).resolve().parent.parent / "data"


def idx_bytes(array, magic):
    array = np.asarray(array, dtype=np.uint8)
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def test_standard_files_are_committed_and_verified():
    sums = dict(line.split()[::-1] for line in (REPO_DATA / "SHA256SUMS").read_text().splitlines())
    for name, (_, sha) in data.FILES.items():
        assert sums[name] == sha
        assert hashlib.sha256(gzip.decompress((REPO_DATA / (name + ".gz")).read_bytes())).hexdigest() == sha


def test_load_split_shapes(mnist_train, mnist_test):
    for (images, labels), n in ((mnist_train, 60000), (mnist_test, 10000)):
        assert images.shape == (n, 28, 28) and labels.shape == (n,)
        assert images.dtype == labels.dtype == np.uint8
        assert set(np.unique(labels)) == set(range(10))


def test_reads_raw_and_gzip_alike(tmp_path):
    a = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    raw = idx_bytes(a, 2051)
    (tmp_path / "x").write_bytes(raw)
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw))
    assert np.array_equal(data.read_idx(tmp_path / "x", 2051), a)
    assert np.array_equal(data.read_idx(tmp_path / "x.gz", 2051), a)


BAD_FILES = [
    ("empty", b"", "too short"),
    ("truncated", idx_bytes(np.zeros((3, 28, 28)), 2051)[:-5], "truncated"),
    ("trailing", idx_bytes(np.zeros((3, 28, 28)), 2051) + b"xx", "trailing"),
    ("wrong magic", idx_bytes(np.zeros(3), 2049), "wrong magic"),
    ("not idx", b"hello, world", "not an IDX"),
    ("corrupt gzip", gzip.compress(idx_bytes(np.zeros((3, 28, 28)), 2051))[:40], "corrupt gzip"),
    ("short header", b"\x00\x00\x08\x03\x00\x00", "truncated header"),
]


@pytest.mark.parametrize("what,content,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_idx_file_gives_one_clear_line(tmp_path, what, content, message):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        data.read_idx(path, 2051)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_checksum_mismatch_names_the_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(10000), 2049))
    with pytest.raises(DataError, match="checksum mismatch"):
        data.read_idx(path, *data.FILES["t10k-labels-idx1-ubyte"])


def test_pair_checks(tmp_path):
    (tmp_path / "i").write_bytes(idx_bytes(np.zeros((3, 28, 28)), 2051))
    (tmp_path / "l").write_bytes(idx_bytes([1, 2], 2049))
    with pytest.raises(DataError, match="2 labels for the 3 images"):
        data.read_pair(tmp_path / "i", tmp_path / "l")
    (tmp_path / "l").write_bytes(idx_bytes([1, 2, 12], 2049))
    with pytest.raises(DataError, match="outside 0..9"):
        data.read_pair(tmp_path / "i", tmp_path / "l")
    (tmp_path / "i").write_bytes(idx_bytes(np.zeros((3, 27, 28)), 2051))
    with pytest.raises(DataError, match="not 28 x 28"):
        data.read_pair(tmp_path / "i", tmp_path / "l")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No repository data, no LENET5_DATA, an empty cache and current folder."""
    monkeypatch.setattr(data, "REPO_DATA", tmp_path / "no-repo")
    monkeypatch.delenv("LENET5_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def copy_standard(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name in data.FILES:
        (folder / (name + ".gz")).write_bytes((REPO_DATA / (name + ".gz")).read_bytes())
    return folder


def test_lookup_order(isolated, monkeypatch):
    cache = copy_standard(isolated / "cache" / "lenet5")
    assert data.find_data_dir(download=False) == cache
    cwd_data = copy_standard(isolated / "data")
    assert data.find_data_dir(download=False) == cwd_data
    repo = copy_standard(isolated / "no-repo")
    assert data.find_data_dir(download=False) == repo
    env = copy_standard(isolated / "env")
    monkeypatch.setenv("LENET5_DATA", str(env))
    assert data.find_data_dir(download=False) == env
    explicit = copy_standard(isolated / "explicit")
    assert data.find_data_dir(explicit, download=False) == explicit


def test_not_found_without_download(isolated):
    with pytest.raises(DataError, match="MNIST not found"):
        data.find_data_dir(download=False)


class Mirror(http.server.BaseHTTPRequestHandler):
    """/good/ serves the real files, /wrong/ a different file, /short/ a cut body."""

    def do_GET(self):
        kind, name = self.path.strip("/").split("/")
        body = (REPO_DATA / name).read_bytes()
        if kind == "wrong":
            body = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if kind == "short" else body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def mirror():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NAME = "t10k-labels-idx1-ubyte"


def test_download_good_file(tmp_path, mirror):
    path = data.download_file(NAME, tmp_path, mirrors=[mirror + "/good/"], progress=False)
    assert path == tmp_path / (NAME + ".gz")
    assert data.read_idx(path, *data.FILES[NAME]).shape == (10000,)
    assert sorted(os.listdir(tmp_path)) == [NAME + ".gz"]


@pytest.mark.parametrize("kind,message", [("wrong", "checksum mismatch"), ("short", "truncated|gzip")])
def test_bad_download_leaves_nothing(tmp_path, mirror, kind, message):
    with pytest.raises(DataError, match=message):
        data.download_file(NAME, tmp_path, mirrors=[f"{mirror}/{kind}/"], progress=False)
    assert os.listdir(tmp_path) == []


def test_server_down(tmp_path):
    with pytest.raises(DataError, match="could not download"):
        data.download_file(NAME, tmp_path, mirrors=[f"http://127.0.0.1:{free_port()}/"], progress=False, timeout=5)
    assert os.listdir(tmp_path) == []


def test_mirrors_tried_in_turn(tmp_path, mirror):
    mirrors = [f"http://127.0.0.1:{free_port()}/", mirror + "/wrong/", mirror + "/good/"]
    assert data.download_file(NAME, tmp_path, mirrors=mirrors, progress=False).exists()


def test_find_downloads_into_the_cache_when_missing(isolated, mirror):
    folder = data.find_data_dir(mirrors=[mirror + "/good/"], progress=False)
    assert folder == isolated / "cache" / "lenet5"
    assert sorted(os.listdir(folder)) == sorted(n + ".gz" for n in data.FILES)
