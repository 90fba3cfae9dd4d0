"""Small file utilities shared by the whole package: atomic writes, a check
that a path can be written before hours of work, a save that never loses its
data, and SHA-256 of bytes.

Standard library only, so that reading data or writing a figure never loads
the compiled core.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Optional, Tuple, Union

PathLike = Union[str, "os.PathLike[str]"]

#: Temporary files are ``.lenet5-<pid>-<random>.tmp`` beside their target: short
#: (so a 255-character target name still works) and recognisable.
TEMP_PREFIX, TEMP_SUFFIX = ".lenet5-", ".tmp"
#: A temporary file of a dead process untouched this long is a killed run's leftover.
STALE_SECONDS = 600


class OutputPathError(ValueError):
    """An output path cannot be written: missing folder, a folder, a device, read-only."""


class WrittenElsewhere(OSError):
    """The target could not be written, so the data went to ``written`` instead."""

    def __init__(self, wanted: PathLike, written: Path, reason: OSError) -> None:
        why = reason.strerror or str(reason)
        super().__init__(f"{wanted}: {why}; written to {written} instead")
        self.wanted, self.written, self.reason = wanted, written, reason


def _check_target(path: PathLike) -> Optional[os.stat_result]:
    """The existing target's status, or None if there is none yet; an
    existing node that is not a regular file (folder, device, FIFO, socket)
    is refused: renaming over it would replace the node itself."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise OutputPathError(f"{path}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputPathError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "a device"
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "not a file"
        )
        raise OutputPathError(f"{path}: is {kind}, not a regular file; lenet5 writes only regular files")
    return st


def check_writable(path: PathLike) -> None:
    """Raise OutputPathError now if path cannot be written later (missing or
    read-only folder, a folder, device, FIFO or socket), so an hour of
    training is never lost at the end (docs/SPEC.md §10.4).  It tries a real
    temporary file: permission bits do not tell root's story."""
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise OutputPathError(f"{path}: folder {folder} does not exist")
    _check_target(path)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise OutputPathError(f"{path}: folder {folder} is not writable ({e.strerror or e})") from None


def _open_temp(folder: Path) -> Tuple[int, Path]:
    """A new temporary file in folder, created with mode 0666 so that the
    umask (and a default ACL) decide its mode, as for any new file."""
    while True:
        tmp = folder / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(3)}{TEMP_SUFFIX}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue


def _sweep_stale(folder: Path) -> None:
    """Remove temporary files that killed runs left in folder: those of a
    process that no longer exists, untouched for STALE_SECONDS."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX) and n.endswith(TEMP_SUFFIX)]
    except OSError:
        return
    for name in names:
        pid = name[len(TEMP_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # its writer may still be running
        except ProcessLookupError:
            pass
        except OSError:
            continue  # alive, another user's
        try:
            if time.time() - os.stat(folder / name).st_mtime > STALE_SECONDS:
                os.unlink(folder / name)
        except OSError:
            pass


def atomic_write(path: PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call write(file object) on a temporary file beside path, then rename it
    into place: readers see the old file or the whole new one, never a part
    (docs/SPEC.md §10.4).  A new file gets the umask's mode; a replaced file
    keeps its mode.  A target that is a folder, device, FIFO or socket raises
    OutputPathError and is left as it is.  A symbolic link is written
    through: its target gets the new contents, and the link stays a link."""
    path = Path(os.path.realpath(path))  # the temporary file must sit beside what is replaced
    old = _check_target(path)
    folder = path.parent
    fd, tmp = _open_temp(folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if old is not None:
                os.fchmod(f.fileno(), stat.S_IMODE(old.st_mode))
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # also a second Ctrl-C or a signal while saving
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _sweep_stale(folder)


def write_text_atomic(path: PathLike, text: str) -> None:
    """Write text (UTF-8) to path atomically."""
    atomic_write(path, lambda f: f.write(text.encode()))


def rescue_name(folder: Path, path: PathLike) -> Path:
    """A free, recognisable name in folder for what was meant for path:
    ``lenet5-rescued-<name>`` (shortened to fit), numbered if taken."""
    name = Path(path).name
    stem, suffix = Path(name).stem[:100], Path(name).suffix[:20]
    for n in range(1000):
        candidate = folder / f"lenet5-rescued-{stem}{'-' + str(n) if n else ''}{suffix}"
        if not os.path.lexists(candidate):
            return candidate
    raise FileExistsError(f"{folder}: too many lenet5-rescued-{stem} files")


def save_or_rescue(path: PathLike, save: Callable[[Path], None]) -> Path:
    """save(path); if that fails with an OSError (full disk, folder gone,
    permissions changed), save into the current folder, else the temporary
    folder, under ``rescue_name`` and raise WrittenElsewhere saying where
    (docs/SPEC.md §10.4).  Raises the first error if every place failed."""
    try:
        save(Path(path))
        return Path(path)
    except (OSError, OutputPathError) as e:
        reason = e if isinstance(e, OSError) else OSError(str(e))
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            target = rescue_name(folder, path)
            save(target)
        except (OSError, OutputPathError):
            continue
        raise WrittenElsewhere(path, target, reason)
    raise reason


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of bytes, as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()
