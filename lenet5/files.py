"""Small file utilities shared by the whole package: atomic writes, a check
that a path can be written before hours of work, and SHA-256 of bytes.

Standard library only, so that reading data or writing a figure never loads
the compiled core.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


class OutputPathError(ValueError):
    """An output path cannot be written: missing folder, a folder, read-only."""


def check_writable(path: PathLike) -> None:
    """Raise OutputPathError now if path cannot be written later (missing or
    read-only folder), so an hour of training is never lost at the end (docs/SPEC.md §10.4).
    It tries a real temporary file: permission bits do not tell root's story."""
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise OutputPathError(f"{path}: folder {folder} does not exist")
    if Path(path).is_dir():
        raise OutputPathError(f"{path}: is a folder, not a file")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise OutputPathError(f"{path}: folder {folder} is not writable ({e.strerror or e})") from None


def atomic_write(path: PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call write(file object) on a temporary file beside path, then rename it
    into place: readers see the old file or the whole new one, never a part
    (docs/SPEC.md §10.4)."""
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


def write_text_atomic(path: PathLike, text: str) -> None:
    """Write text (UTF-8) to path atomically."""
    atomic_write(path, lambda f: f.write(text.encode()))


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of bytes, as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()
