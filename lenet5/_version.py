"""The package's version and distribution name: the one place for both.

pyproject.toml reads ``__version__`` from here.  The distribution is
``lenet5-exact`` (the name ``lenet5`` on the public package index belongs to
an unrelated project) and the import name is ``lenet5``.  Install hints name
what pip can fetch: the packages an extra brings (read from the installed
metadata, so pyproject.toml stays their one source), and the extra itself for
a checkout.  They never name ``lenet5-exact[...]``, which the index lacks.
"""

from __future__ import annotations

import importlib.metadata
import re
from typing import List

__version__ = "0.3.1"
DISTRIBUTION = "lenet5-exact"


def extra_packages(extra: str) -> List[str]:
    """The packages the optional extra ``extra`` installs (``["pillow"]`` for
    ``images``), from the installed metadata; [] if it cannot be read."""
    try:
        requirements = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    marker = re.compile(r"""extra\s*==\s*['"]""" + re.escape(extra) + r"""['"]""")
    names = []
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        if name and marker.search(requirement) and name.group(0) not in names:
            names.append(name.group(0))
    return names


def install_hint(extra: str) -> str:
    """How to install an optional extra, e.g. ``plot``: ``pip install matplotlib
    (in a checkout of lenet5: pip install -e ".[plot]")``."""
    checkout = f'pip install -e ".[{extra}]"'
    packages = extra_packages(extra)
    if not packages:
        return f"{checkout} in a checkout of lenet5"
    return f"pip install {' '.join(packages)} (in a checkout of lenet5: {checkout})"
