"""The inference API and model files.

    from lenet5 import LeNet5
    net = LeNet5.load("model.npz")      # or .dat; LeNet5.init(seed=0) for a new one
    net.predict(images)                 # uint8 (N, 28, 28) or (28, 28) -> labels
    net.predict_proba(images)           # softmax of the outputs, rows sum to 1
    net.evaluate(images, labels)        # accuracy and confusion matrix
    net.save("model.npz")

Two file formats:
  .dat  the reference program's model.dat: 51,902 raw little-endian doubles,
        415,216 bytes, no header (SPEC.md order), so models move both ways
        between this package and the reference program;
  .npz  the same parameters by block (W1 ... b4) plus metadata (format
        version, loss, sign, lr, batch size, epochs, images seen, accuracy).
Saves are atomic (temporary file, then rename); loads check size, shape,
dtype and finiteness and say what is wrong.
"""
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import core

FORMAT_VERSION = 1
DAT_BYTES = core.N_PARAMS * 8


class ModelFileError(ValueError):
    """A model file is missing, of the wrong format, size or shape, or not finite."""


def init_params(seed=0):
    """A fresh model: weights uniform on [-1, 1) times sqrt(6 / fan), biases 0.

    fan = 25 * (maps in + maps out) for the convolutions, 120 + 10 for the
    fully connected layer, as in the reference program (which seeds from the
    clock; here the seed makes it repeatable).
    """
    rng = np.random.default_rng(seed)
    params = np.zeros(core.N_PARAMS, dtype=np.float64)
    fans = {"W1": 25 * (1 + 6), "W2": 25 * (6 + 16), "W3": 25 * (16 + 120), "W4": 120 + 10}
    for name, fan in fans.items():
        w = core.block(params, name)
        w[...] = rng.uniform(-1.0, 1.0, w.shape) * math.sqrt(6.0 / fan)
    return params


def check_writable(path):
    """Raise ModelFileError now if path cannot be written later (missing or
    read-only folder), so an hour of training is never lost at the end.
    It tries a real temporary file: permission bits do not tell root's story."""
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise ModelFileError(f"{path}: folder {folder} does not exist")
    if Path(path).is_dir():
        raise ModelFileError(f"{path}: is a folder, not a file")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ModelFileError(f"{path}: folder {folder} is not writable ({e.strerror or e})") from None


def atomic_write(path, write):
    """Call write(file object) on a temporary file beside path, then rename it
    into place: readers see the old file or the whole new one, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.resolve().parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _check_finite(params, path):
    bad = np.flatnonzero(~np.isfinite(params))
    if bad.size:
        raise ModelFileError(f"{path}: {bad.size} parameters are NaN or infinite "
                             f"(first at index {bad[0]}): a diverged model")


def read_params(path):
    """(params, metadata) from a .dat or .npz model file, fully checked."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".dat", ".npz"):
        raise ModelFileError(f"{path}: unknown model format (use .npz or .dat)")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if suffix == ".dat":
        size = path.stat().st_size
        if size != DAT_BYTES:
            raise ModelFileError(f"{path}: {size} bytes; a .dat model is exactly {DAT_BYTES} "
                                 f"({core.N_PARAMS} little-endian doubles)")
        params = np.fromfile(path, dtype="<f8").astype(np.float64)
        meta = {}
    else:
        params, meta = _read_npz(path)
    _check_finite(params, path)
    return params, meta


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # zipfile, numpy format and OS errors alike
        raise ModelFileError(f"{path}: not a readable .npz model ({e})") from None
    params = np.zeros(core.N_PARAMS, dtype=np.float64)
    for name, (offset, shape) in core.BLOCKS.items():
        if name not in arrays:
            raise ModelFileError(f"{path}: missing parameter block {name}")
        a = arrays[name]
        if a.shape != shape:
            raise ModelFileError(f"{path}: block {name} has shape {a.shape}, expected {shape}")
        if a.dtype != np.float64:
            raise ModelFileError(f"{path}: block {name} has dtype {a.dtype}, expected float64")
        params[offset:offset + a.size] = a.ravel()
    meta = {}
    if "meta" in arrays:
        try:
            meta = json.loads(str(arrays["meta"]))
        except ValueError:
            raise ModelFileError(f"{path}: metadata is not valid JSON") from None
        if meta.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            raise ModelFileError(f"{path}: format version {meta['format_version']} is newer "
                                 f"than this lenet5 reads ({FORMAT_VERSION})")
    return params, meta


def write_params(path, params, meta=None):
    """Write params (and, for .npz, metadata) atomically to a .dat or .npz file."""
    path = Path(path)
    core.check_params(params)
    suffix = path.suffix.lower()
    if suffix == ".dat":
        atomic_write(path, lambda f: f.write(params.astype("<f8").tobytes()))
    elif suffix == ".npz":
        meta = dict(meta or {}, format_version=FORMAT_VERSION)
        blocks = {name: core.block(params, name).copy() for name in core.BLOCKS}
        atomic_write(path, lambda f: np.savez(f, meta=np.array(json.dumps(meta)), **blocks))
    else:
        raise ModelFileError(f"{path}: unknown model format (use .npz or .dat)")


@dataclass
class Evaluation:
    """What evaluate() found: accuracy, counts and the confusion matrix
    (rows: true digit, columns: predicted digit)."""
    accuracy: float
    correct: int
    total: int
    confusion: np.ndarray

    def __str__(self):
        lines = [f"accuracy {100 * self.accuracy:.2f}% ({self.correct}/{self.total})",
                 "true\\pred " + " ".join(f"{j:>5d}" for j in range(10))]
        for i, row in enumerate(self.confusion):
            lines.append(f"{i:>9d} " + " ".join(f"{v:>5d}" for v in row))
        return "\n".join(lines)


def _as_images(images):
    """Accept (28, 28), (N, 28, 28) or (N, 784) uint8; copy if not contiguous."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a numpy array, not {type(images).__name__}")
    if images.ndim == 2 and images.shape == (28, 28):
        images = images[None]
    images = np.ascontiguousarray(images)  # a copy only if it was not contiguous
    core.check_images(images)
    return images


class LeNet5:
    """A LeNet-5 model: one flat array of 51,902 doubles and its metadata."""

    def __init__(self, params, meta=None):
        params = np.array(params, dtype=np.float64, copy=True)
        core.check_params(params)
        self.params = params
        self.meta = dict(meta or {})

    @classmethod
    def init(cls, seed=0):
        return cls(init_params(seed), {"seed": seed})

    @classmethod
    def load(cls, path):
        params, meta = read_params(path)
        return cls(params, meta)

    def save(self, path):
        write_params(path, self.params, self.meta)

    def forward(self, images, threads=None):
        """The 10 ReLU-ed outputs per image, shape (N, 10)."""
        return core.forward(self.params, _as_images(images), threads=threads)

    def predict(self, images, threads=None):
        """Predicted digits: an int array of N labels (one label for one image)."""
        single = isinstance(images, np.ndarray) and images.shape == (28, 28)
        pred = core.predict(self.params, _as_images(images), threads=threads)
        return int(pred[0]) if single else pred

    def predict_proba(self, images, threads=None):
        """Softmax of the outputs, shape (N, 10); each row sums to 1."""
        z = self.forward(images, threads)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def evaluate(self, images, labels, threads=None):
        images = _as_images(images)
        labels = core.check_labels(np.asarray(labels), len(images))
        pred = core.predict(self.params, images, threads=threads)
        confusion = np.zeros((10, 10), dtype=np.int64)
        np.add.at(confusion, (labels, pred), 1)
        correct = int(np.trace(confusion))
        return Evaluation(correct / len(labels), correct, len(labels), confusion)

    def __repr__(self):
        return f"LeNet5({core.N_PARAMS} parameters, meta={self.meta})"
