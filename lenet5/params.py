"""Parameters and model files: a fresh model, and reading and writing the
two file formats (docs/SPEC.md §3, §10).

  .dat  the reference program's model.dat: 51,902 raw little-endian doubles,
        415,216 bytes, no header (§10.1), so models move both ways between
        this package and the reference program;
  .npz  the same parameters by block (W1 ... b4) plus a JSON ``meta`` member
        (format version, loss, sign, lr, batch size, epochs, images seen,
        accuracy; a checkpoint's position) (§10.2, §10.3).
Saves are atomic (§10.4); loads check size, shape, dtype and finiteness and
say what is wrong.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import rules
from .files import PathLike, atomic_write

FORMAT_VERSION = 1
DAT_BYTES = rules.N_PARAMS * 8
MODEL_SUFFIXES = (".npz", ".dat")

Meta = Dict[str, Any]


class ModelFileError(ValueError):
    """A model file is missing, of the wrong format, size or shape, or not finite."""


def init_params(seed: int = 0) -> np.ndarray:
    """A fresh model (docs/SPEC.md §3.2): weights uniform on [-1, 1) times
    sqrt(6 / fan), biases 0, drawn block by block from numpy's default_rng(seed).

    fan = 25 * (maps in + maps out) for the convolutions, 120 + 10 for the
    fully connected layer, as in the reference program (which seeds from the
    clock; here the seed makes it repeatable).
    """
    seed = rules.check_count(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    params = np.zeros(rules.N_PARAMS, dtype=np.float64)
    for name in ("W1", "W2", "W3", "W4"):
        w = rules.block(params, name)  # [maps in][maps out][kernel...]: fan = kernel cells * (in + out)
        fan = int(np.prod(w.shape[2:])) * (w.shape[0] + w.shape[1])
        w[...] = rng.uniform(-1.0, 1.0, w.shape) * math.sqrt(6.0 / fan)
    return params


def check_finite(params: np.ndarray, what: str = "params", error: type = ValueError) -> None:
    """Refuse NaN or infinite parameters: they are a diverged model (docs/SPEC.md §12)."""
    bad = np.flatnonzero(~np.isfinite(params))
    if bad.size:
        raise error(f"{what}: {bad.size} parameters are NaN or infinite (first at index {bad[0]}): a diverged model")


def model_format(path: PathLike) -> str:
    """'.npz' or '.dat' from the file name; ModelFileError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise ModelFileError(f"{path}: unknown model format (use .npz or .dat)")
    return suffix


def read_params(path: PathLike) -> Tuple[np.ndarray, Meta]:
    """(params, metadata) from a .dat or .npz model file, fully checked (docs/SPEC.md §10.1, §10.2)."""
    path = Path(path)
    suffix = model_format(path)
    try:
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file")
        if suffix == ".dat":
            size = path.stat().st_size
            if size != DAT_BYTES:
                raise ModelFileError(
                    f"{path}: {size} bytes; a .dat model is exactly {DAT_BYTES} "
                    f"({rules.N_PARAMS} little-endian doubles)"
                )
            params = np.fromfile(path, dtype="<f8").astype(np.float64)
            meta: Meta = {}
    except OSError as e:  # permission denied, a name too long, ...
        raise ModelFileError(f"{path}: cannot read ({e.strerror or e})") from None
    if suffix != ".dat":
        params, meta = _read_npz(path)
    check_finite(params, str(path), ModelFileError)
    return params, meta


#: The most bytes a member's .npy header may take (numpy writes 128).
NPY_HEADER_MAX = 4096
#: The most bytes the metadata member may declare: a checkpoint's history of
#: many epochs of small batches, with room; more is not a file this package wrote.
META_MAX = 256 << 20


def _check_members(path: Path) -> None:
    """Check an .npz's member names and declared sizes from the zip directory,
    before any member is read or decompressed (docs/SPEC.md §10.2)."""
    allowed = {f"{name}.npy": 8 * int(np.prod(shape)) + NPY_HEADER_MAX for name, (_, shape) in rules.BLOCKS.items()}
    allowed["meta.npy"] = META_MAX
    allowed["velocity.npy"] = 8 * rules.N_PARAMS + NPY_HEADER_MAX  # a checkpoint's momentum (§10.3)
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            limit = allowed.get(info.filename)
            if limit is None:
                raise ModelFileError(
                    f"{path}: unexpected member {info.filename[:80]!r}; a model holds only "
                    f"{', '.join(rules.BLOCKS)}, meta and a checkpoint's velocity"
                )
            if info.file_size > limit:
                raise ModelFileError(
                    f"{path}: member {info.filename} declares {info.file_size:,} bytes, more than its {limit:,} at most"
                )


def _read_npz(path: Path) -> Tuple[np.ndarray, Meta]:
    try:
        _check_members(path)
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ModelFileError:
        raise
    except Exception as e:  # zipfile, numpy format and OS errors alike
        raise ModelFileError(f"{path}: not a readable .npz model ({e})") from None
    params = np.zeros(rules.N_PARAMS, dtype=np.float64)
    for name, (offset, shape) in rules.BLOCKS.items():
        if name not in arrays:
            raise ModelFileError(f"{path}: missing parameter block {name}")
        a = arrays[name]
        if a.shape != shape:
            raise ModelFileError(f"{path}: block {name} has shape {a.shape}, expected {shape}")
        if a.dtype != np.float64:
            raise ModelFileError(f"{path}: block {name} has dtype {a.dtype}, expected float64")
        params[offset : offset + a.size] = a.ravel()
    meta: Meta = {}
    if "meta" in arrays:
        try:
            meta = json.loads(str(arrays["meta"]))
        except ValueError:
            raise ModelFileError(f"{path}: metadata is not valid JSON") from None
        if not isinstance(meta, dict):
            raise ModelFileError(f"{path}: metadata is not a JSON object")
        version = meta.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ModelFileError(f"{path}: format version {version!r} is not a whole number")
        if version > FORMAT_VERSION:
            raise ModelFileError(f"{path}: format version {version} is newer than this lenet5 reads ({FORMAT_VERSION})")
    return params, meta


def read_extra_array(path: PathLike, name: str) -> Optional[np.ndarray]:
    """An extra member of an .npz model (a checkpoint's velocity, docs/SPEC.md
    §10.3), or None if it has none; read_params has checked the file."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return f[name] if name in f.files else None
    except Exception as e:  # zipfile, numpy format and OS errors alike
        raise ModelFileError(f"{path}: not a readable .npz model ({e})") from None


def write_params(
    path: PathLike, params: np.ndarray, meta: Optional[Meta] = None, extra: Optional[Dict[str, np.ndarray]] = None
) -> None:
    """Write params (and, for .npz, metadata and any extra arrays, such as a
    checkpoint's velocity) atomically to a .dat or .npz file
    (docs/SPEC.md §10.1, §10.2, §10.3, §10.4)."""
    rules.check_params(params)
    suffix = model_format(path)
    if suffix == ".dat":
        atomic_write(path, lambda f: f.write(params.astype("<f8").tobytes()))
    else:
        meta = dict(meta or {}, format_version=FORMAT_VERSION)
        blocks = {name: rules.block(params, name).copy() for name in rules.BLOCKS}
        blocks.update(extra or {})
        atomic_write(path, lambda f: np.savez(f, meta=np.array(json.dumps(meta)), **blocks))
