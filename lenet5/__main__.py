"""lenet5 (or python -m lenet5): one command for every part of the package.

    lenet5 train --loss xent --save model.npz
    lenet5 predict photo.jpg
    lenet5 --version

Each subcommand is a module of the package (``lenet5 train`` runs
``lenet5.train``'s ``main``), imported only when named, so ``lenet5 --help``
and ``lenet5 SUB --help`` start quickly and a subcommand whose optional
dependency is missing says what to install instead of failing the others.

Exit status: the subcommand's; 0 for --help and --version; 2 for an unknown
or missing subcommand; 1 when a subcommand's optional dependency is missing.
"""

from __future__ import annotations

import importlib
import sys
from typing import Dict, List, Optional, Tuple

from ._version import __version__, install_hint

#: subcommand -> (its module, what it does); in the order help lists them.
SUBCOMMANDS: Dict[str, Tuple[str, str]] = {
    "train": ("lenet5.train", "train LeNet-5 on MNIST (defaults: the reference program's run)"),
    "evaluate": ("lenet5.evaluate", "test accuracy and confusion matrix of a model (default: the shipped one)"),
    "predict": ("lenet5.predict", "the digit (or number) in picture files: photos, scans, .npy arrays"),
    "serve": ("lenet5.serve", "a local page: draw a digit and watch the network read it"),
    "export": ("lenet5.export", "write a model for other runtimes (ONNX)"),
    "experiment": ("lenet5.experiment", "the loss-and-sign experiment: four runs, a figure, a table"),
}

#: An optional dependency's import name -> the extra that installs it.
EXTRAS: Dict[str, str] = {
    "PIL": "images",
    "matplotlib": "plot",
    "uvicorn": "serve",
    "starlette": "serve",
    "onnx": "onnx",
    "onnxruntime": "onnx",
}


def usage() -> str:
    """The text of ``lenet5 --help``."""
    width = max(map(len, SUBCOMMANDS))
    lines = [
        "usage: lenet5 [--version] COMMAND [OPTIONS]  (lenet5 COMMAND --help: its options)",
        "",
        f"lenet5 {__version__}: an exact, fast LeNet-5 for MNIST.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in SUBCOMMANDS.items()]
    lines += ["", "Each is also a module (python -m lenet5.train) and a script (lenet5-train).", ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the subcommand named first in argv; returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        sys.stderr.write(usage())
        sys.stderr.write("lenet5: name a command\n")
        return 2
    first, rest = args[0], args[1:]
    if first in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return 0
    if first in ("-V", "--version"):
        print(f"lenet5 {__version__}")
        return 0
    if first not in SUBCOMMANDS:
        sys.stderr.write(
            f"lenet5: unknown command {first!r} (choose from {', '.join(SUBCOMMANDS)}; lenet5 --help lists them)\n"
        )
        return 2
    module_name = SUBCOMMANDS[first][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        missing = (e.name or "").split(".")[0]
        if e.name == module_name:
            sys.stderr.write(f"lenet5: this version ({__version__}) has no {first} command\n")
            return 2
        if missing in EXTRAS:
            sys.stderr.write(
                f"lenet5 {first}: needs {missing}, which is not installed; "
                f"get it with: {install_hint(EXTRAS[missing])}\n"
            )
            return 1
        raise
    if "lenet5.cli" in sys.modules:  # usage and error lines then say "lenet5 train", as it was typed
        from . import cli

        cli.invoked_as = f"lenet5 {first}"
    status: int = module.main(rest)
    return status


if __name__ == "__main__":
    sys.exit(main())
