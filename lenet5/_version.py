"""The package's version and distribution name: the one place for both.

pyproject.toml reads ``__version__`` from here; install hints printed by the
commands use ``DISTRIBUTION`` (the import name stays ``lenet5``: the name
``lenet5`` on the public package index belongs to an unrelated project).
"""
__version__ = "0.2.0"
DISTRIBUTION = "lenet5-exact"


def install_hint(extra: str) -> str:
    """The pip command that installs an optional extra, e.g. ``plot``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"
