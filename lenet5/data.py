"""MNIST: find it, check it, read it, and download it if it is nowhere.

Files are IDX (gzip or raw).  Every read checks the magic number, the
dimensions against the file's size, and, for the four standard files, the
SHA-256 of the decompressed bytes.  Anything wrong raises ``DataError`` with
one line naming the file and what is wrong.

Where a split's two files are looked for, in order (the first folder holding
both wins; a folder the user named, 1 or 2, is the only one used):
  1. the ``data_dir`` argument (``--data-dir`` on the command line);
  2. the ``LENET5_DATA`` environment variable;
  3. the repository's ``data/`` (beside the package in a source checkout),
     then ``./data`` in the current folder;
  4. the per-user cache, ``$XDG_CACHE_HOME/lenet5`` or ``~/.cache/lenet5``.
If none holds them, they are downloaded into the folder the user named, else
into the cache, from several public mirrors tried in turn; only the split's
own two files are read or fetched.

The format, the checks and the search are docs/SPEC.md §11.1, §11.2 and §11.3.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, List, Optional, Sequence, Tuple

import numpy as np

from .files import PathLike, atomic_write

#: name -> (IDX magic number, SHA-256 of the decompressed file)
FILES = {
    "train-images-idx3-ubyte": (2051, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (2049, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (2051, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (2049, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: Public mirrors of the gzip files, tried in this order.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

REPO_DATA = Path(__file__).resolve().parent.parent / "data"


class DataError(Exception):
    """A data file is missing, corrupt or not what it claims; one line."""


#: The largest IDX file read: MNIST's training images (47,040,016 bytes) with room;
#: a header announcing more is refused before anything else is read.
MAX_IDX_BYTES = 64 << 20


def _idx_size(head: bytes, source: str, magic: Optional[int]) -> int:
    """The whole file's size that an IDX header announces, checked: magic
    number, complete header, a size within MAX_IDX_BYTES (docs/SPEC.md §11.1)."""
    if len(head) < 4:
        raise DataError(f"{source}: too short to be an IDX file ({len(head)} bytes)")
    found = int.from_bytes(head[:4], "big")
    if head[0] != 0 or head[1] != 0 or head[2] != 0x08 or not 1 <= head[3] <= 4:
        raise DataError(f"{source}: not an IDX file of bytes (magic number {found:#010x})")
    if magic is not None and found != magic:
        raise DataError(f"{source}: wrong magic number {found} (expected {magic})")
    header = 4 + 4 * head[3]
    if len(head) < header:
        raise DataError(f"{source}: truncated header ({len(head)} bytes)")
    dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(head[3])]
    expected = header + math.prod(dims)  # Python integers: no overflow
    if expected > MAX_IDX_BYTES:
        raise DataError(
            f"{source}: dimensions {dims} announce {expected:,} bytes, more than "
            f"any MNIST file ({MAX_IDX_BYTES:,} at most)"
        )
    return expected


def _read_bytes(path: PathLike, magic: Optional[int] = None) -> bytes:
    """The bytes of an IDX file, decompressed if they are gzip (docs/SPEC.md §11.1).
    The header is checked first, and no more than the size it announces (plus
    one byte, to see trailing bytes) is read or decompressed: a sparse or
    gzip-bombed file costs no more memory than a valid one."""
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            zipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if zipped else raw  # type: ignore[assignment]
            try:
                head = stream.read(4)
                if len(head) == 4 and 1 <= head[3] <= 4:
                    head += stream.read(4 * head[3])
                expected = _idx_size(head, str(path), magic)
                return head + stream.read(expected - len(head) + 1)
            except (EOFError, zlib.error, gzip.BadGzipFile) as e:
                raise DataError(f"{path}: corrupt gzip data ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def parse_idx(data: bytes, source: str = "<bytes>", magic: Optional[int] = None) -> np.ndarray:
    """An IDX file's bytes -> uint8 array of its dimensions, with every check
    (docs/SPEC.md §11.1, §11.2)."""
    expected = _idx_size(data[: 4 + 4 * data[3]] if len(data) >= 4 else data, source, magic)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(f"{source}: {what}: {len(data)} bytes, dimensions {dims_of(data)} need {expected}")
    header = 4 + 4 * data[3]
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims_of(data))


def dims_of(data: bytes) -> List[int]:
    """The dimensions an IDX header lists (the header already checked)."""
    return [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(data[3])]


def read_idx(path: PathLike, magic: Optional[int] = None, sha256: Optional[str] = None) -> np.ndarray:
    """Read an IDX file (gzip or raw); check its checksum when one is given
    (docs/SPEC.md §11.2)."""
    data = _read_bytes(path, magic)
    array = parse_idx(data, str(path), magic)  # structure first: it says more than a checksum
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise DataError(f"{path}: checksum mismatch (not the standard MNIST file, or damaged)")
    return array


def shown(path: PathLike, width: int = 120) -> str:
    """path for a message: whole, or its start and end around '...' if longer than width."""
    text = str(path)
    return text if len(text) <= width else f"{text[: width // 2]}...{text[-(width // 2 - 3) :]}"


def _file_in(folder: PathLike, name: str) -> Optional[Path]:
    """The path of name or name.gz in folder, or None; a folder name the
    system cannot even look up (too long, ...) is a DataError."""
    for candidate in (Path(folder) / name, Path(folder) / (name + ".gz")):
        try:
            if candidate.is_file():
                return candidate
        except OSError as e:
            raise DataError(f"{shown(folder)}: cannot look for {name} there ({e.strerror or e})") from None
    return None


def cache_dir() -> Path:
    """The per-user cache folder: $XDG_CACHE_HOME/lenet5 or ~/.cache/lenet5 (docs/SPEC.md §11.3)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lenet5"


def candidate_dirs(data_dir: Optional[PathLike] = None) -> List[Tuple[Path, str]]:
    """The folders searched, in order, each with how it was chosen (docs/SPEC.md §11.3)."""
    dirs: List[Tuple[Path, str]] = []
    if data_dir:
        dirs.append((Path(data_dir), "--data-dir"))
    if os.environ.get("LENET5_DATA"):
        dirs.append((Path(os.environ["LENET5_DATA"]), "LENET5_DATA"))
    dirs.append((REPO_DATA, "repository"))
    dirs.append((Path.cwd() / "data", "current folder"))
    dirs.append((cache_dir(), "cache"))
    return dirs


def find_data_dir(
    data_dir: Optional[PathLike] = None,
    download: bool = True,
    progress: bool = True,
    mirrors: Sequence[str] = MIRRORS,
    split: Optional[str] = None,
) -> Path:
    """The folder holding the split's two MNIST files (all four if split is
    None), downloading them if need be (docs/SPEC.md §11.3).  A folder the
    user named (data_dir, else LENET5_DATA) is the one used, or the error
    says what is wrong with it: never silently replaced by another."""
    names = SPLITS[split] if split else tuple(FILES)
    dirs = candidate_dirs(data_dir)
    folder, how = dirs[0]
    if how in ("--data-dir", "LENET5_DATA"):
        try:
            not_folder = folder.exists() and not folder.is_dir()
        except OSError as e:
            raise DataError(f"{how} {shown(folder)}: {e.strerror or e}") from None
        if not_folder:
            raise DataError(f"{how} {shown(folder)}: is a file, not a folder of MNIST files")
        missing = [n for n in names if not _file_in(folder, n)]
        if missing and not download:
            raise DataError(f"{how} {shown(folder)}: has no {missing[0]} (nor {missing[0]}.gz)")
        for name in missing:
            try:
                download_file(name, folder, mirrors=mirrors, progress=progress)
            except DataError as e:
                raise DataError(f"{how} {shown(folder)}: has no {name}, and {e}") from None
        return folder
    for folder, _ in dirs:
        if all(_file_in(folder, n) for n in names):
            return folder
    searched = ", ".join(shown(d) for d, _ in dirs)
    hint = "give the folder holding them with --data-dir DIR or LENET5_DATA=DIR"
    if not download:
        raise DataError(f"MNIST not found (searched {searched}); {hint}")
    try:
        for name in names:
            if not _file_in(cache_dir(), name):
                download_file(name, cache_dir(), mirrors=mirrors, progress=progress)
    except DataError as e:
        raise DataError(f"MNIST not found (searched {searched}) and {e}; {hint}") from None
    return cache_dir()


def download_file(
    name: str, folder: PathLike, mirrors: Sequence[str] = MIRRORS, progress: bool = True, timeout: float = 30
) -> Path:
    """Fetch name.gz from the first mirror that serves it whole and correct.

    The body (at most 10 MB) is checked in memory, gzip and SHA-256 of the
    decompressed bytes, and only then written, atomically (docs/SPEC.md §11.3,
    §10.4): a failed download never leaves a file that looks whole.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{folder}: cannot create the data folder ({e.strerror or e})") from None
    target = folder / (name + ".gz")
    expected = FILES[name][1]
    failures: List[str] = []
    for mirror in mirrors:
        url = mirror + name + ".gz"
        try:
            body = _fetch(url, progress, timeout)
            try:
                data = gzip.decompress(body)
            except (OSError, EOFError, zlib.error):
                raise DataError("not a whole gzip file") from None
            if hashlib.sha256(data).hexdigest() != expected:
                raise DataError("checksum mismatch")
            atomic_write(target, _writer(body))
            return target
        except (OSError, urllib.error.URLError, DataError, ValueError) as e:
            failures.append(f"{url}: {getattr(e, 'reason', None) or e}")
    raise DataError(f"could not download {name}.gz: " + "; ".join(failures))


def _writer(data: bytes) -> Callable[[BinaryIO], object]:
    """An atomic_write callback that writes data (bound now, not a loop variable read later)."""
    return lambda f: f.write(data)


def _fetch(url: str, progress: bool, timeout: float) -> bytes:
    """The body at url, with a progress bar; a body shorter than announced is an error."""
    from tqdm import tqdm

    chunks: List[bytes] = []
    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], disable=not progress, leave=False
        ) as bar:
            while True:
                chunk = response.read(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                bar.update(len(chunk))
    body = b"".join(chunks)
    if total is not None and len(body) != total:
        raise DataError(f"truncated body ({len(body)} of {total} bytes)")
    return body


def read_pair(
    images_path: PathLike, labels_path: PathLike, image_sha256: Optional[str] = None, label_sha256: Optional[str] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28), labels (N,)) from an IDX image file and label file,
    checked against each other: same count, 28 x 28 images, labels in 0..9
    (docs/SPEC.md §11.2)."""
    images = read_idx(images_path, 2051, image_sha256)
    labels = read_idx(labels_path, 2049, label_sha256)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: images are {images.shape[1:]}, not 28 x 28")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: labels have {labels.ndim} dimensions, not 1")
    if len(labels) != len(images):
        raise DataError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}")
    if labels.max(initial=0) > 9:
        raise DataError(f"{labels_path}: label {labels.max()} outside 0..9")
    return images, labels


def load_split(
    split: str = "train", data_dir: Optional[PathLike] = None, download: bool = True, progress: bool = True
) -> Tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels uint8 (N,)) of 'train' or 'test'."""
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    folder = find_data_dir(data_dir, download=download, progress=progress, split=split)
    image_name, label_name = SPLITS[split]
    images_path, labels_path = _file_in(folder, image_name), _file_in(folder, label_name)
    if images_path is None or labels_path is None:  # removed since find_data_dir saw it
        raise DataError(f"{folder}: {image_name if images_path is None else label_name} has disappeared")
    return read_pair(images_path, labels_path, FILES[image_name][1], FILES[label_name][1])
