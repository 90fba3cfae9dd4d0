"""Which C sources the compiled core was built from, and the check on import.

csrc/build_ffi.py loads this file by its path at build time (importing the
package would need numpy) and embeds ``source_hash(csrc)`` in ``lenet5._core``.
On import, ``lenet5.core`` hands that hash to ``check_fresh``: in a source
checkout or editable install, where csrc/ sits beside this package, the core
must have been built from the csrc/ that is there now, or the C that runs is
not the C that is read (the way ``cryptography`` checks its compiled backend).
An installed wheel has no csrc/ beside it and is not checked.

Standard library only.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import List, Union

#: What the core is built from, inside csrc/: the C sources and headers, and
#: the build script (its flags decide the roundings too).
SOURCE_PATTERNS = ("*.c", "*.h", "build_ffi.py")

#: The csrc/ of a source checkout: beside the package folder.
CSRC = Path(__file__).resolve().parent.parent / "csrc"


def source_files(csrc_dir: Union[str, os.PathLike[str]]) -> List[Path]:
    """The files of csrc_dir that the hash covers, sorted by name."""
    csrc_dir = Path(csrc_dir)
    files = {path for pattern in SOURCE_PATTERNS for path in csrc_dir.glob(pattern) if path.is_file()}
    return sorted(files, key=lambda path: path.name)


def source_hash(csrc_dir: Union[str, os.PathLike[str]]) -> str:
    """SHA-256 (hex) over the names and bytes of source_files(csrc_dir), in order.
    Each file adds its name, a NUL, its length and its bytes, so no two
    different sets of files hash alike by moving bytes from one to the next."""
    digest = hashlib.sha256()
    for path in source_files(csrc_dir):
        data = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def check_fresh(built_hash: str) -> None:
    """Raise ImportError if the csrc/ beside the package is not what the
    compiled core was built from (built_hash); do nothing without a csrc/."""
    if not (CSRC / "lenet5.h").is_file():  # an installed wheel: no sources to compare
        return
    if source_hash(CSRC) != built_hash:
        raise ImportError(
            f"lenet5: the compiled core was built from other sources than {CSRC} holds now "
            f"(edited since the last build); rebuild it with `pip install -e .` in {CSRC.parent}"
        )
