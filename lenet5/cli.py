"""What the command-line modules share: argument types built on the core's
checks (so each rule has one home, ``lenet5.core``), the options several
commands take, and the way a command ends with one line and an exit status.

Exit status everywhere: 0 done; 1 a bad data or model file; 2 a bad
argument; 3 training diverged; 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from . import core, engines
from .files import OutputPathError, check_writable


class Stop(Exception):
    """Ends a command with a one-line message and an exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def say(message: str) -> None:
    """A line on standard error (standard output carries the results)."""
    print(message, file=sys.stderr, flush=True)


def _arg_type(convert: Callable[[str], Any], check: Callable[..., Any], what: str) -> Callable[[str], Any]:
    """An argparse type: convert the text, then apply the core's check with no
    name (argparse names the flag: 'argument --lr: must be finite and > 0')."""
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}") from None
        try:
            return check(value, None)
        except (TypeError, ValueError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = what  # argparse shows it in "invalid <name> value"
    return parse


def _sign_text(text: str) -> int:
    if text not in ("+1", "1", "-1"):
        raise ValueError(text)
    return int(text)


positive_int = _arg_type(int, lambda v, name: core.check_count(v, name), "a whole number")
seed_int = _arg_type(int, lambda v, name: core.check_count(v, name, minimum=0), "a whole number")
learning_rate = _arg_type(float, core.check_lr, "a number")
sign_value = _arg_type(_sign_text, core.check_sign, "+1 or -1")
thread_count = _arg_type(int, core.check_threads, "a whole number")
momentum_value = _arg_type(float, core.check_momentum, "a number")
decay_value = _arg_type(float, core.check_weight_decay, "a number")
count_or_zero = _arg_type(int, lambda v, name: core.check_count(v, name, minimum=0), "a whole number")


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """--engine, --kernel, --threads: which engine runs the work."""
    p.add_argument("--engine", choices=engines.NAMES, default="c",
                   help="c: the exact C core (default); numpy: the NumPy twin (BLAS-order sums)")
    p.add_argument("--kernel", choices=sorted(core.KERNELS), default=None,
                   help="C kernels: fast (default) or reference (the plain, readable ones; same bits)")
    p.add_argument("--threads", type=thread_count, default=None, metavar="N",
                   help="threads of the C core (default: OMP_NUM_THREADS, else all cores)")


def engine_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> engines.Engine:
    """The engine the options name; an option it cannot honour is an argument error."""
    try:
        return engines.get(args.engine, kernel=args.kernel, threads=args.threads)
    except ValueError as e:
        option, _, why = str(e).partition(": ")
        parser.error(f"argument --{option}: {why}")
        raise  # parser.error exits; this line is never reached


def add_data_option(p: argparse.ArgumentParser) -> None:
    """--data-dir: where the MNIST files are (docs/SPEC.md §11.3)."""
    p.add_argument("--data-dir", metavar="DIR",
                   help="folder holding the MNIST files (default: LENET5_DATA, the repository's "
                        "data/, ./data, then the user cache; see the README)")


def check_output(parser: argparse.ArgumentParser, flag: str, path: Optional[str],
                 suffixes: Sequence[str] = ()) -> None:
    """Refuse, before any work, an output path of the wrong kind or in a
    missing or read-only folder (exit 2)."""
    if not path:
        return
    if suffixes and Path(path).suffix.lower() not in suffixes:
        parser.error(f"{flag} {path}: use a {' or '.join(suffixes)} file name")
    try:
        check_writable(path)
    except OutputPathError as e:
        parser.error(f"{flag} {e}")


def run(prog: str, body: Callable[[], int]) -> int:
    """Run a command's body; a Stop or Ctrl-C ends it with one line."""
    try:
        return body()
    except Stop as e:
        say(f"{prog}: {e}")
        return e.status
    except KeyboardInterrupt as e:
        say(f"{prog}: {e or 'interrupted'}")
        return 130
