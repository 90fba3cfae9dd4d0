"""What the command-line modules share: argument types built on the core's
checks (so each rule has one home, ``lenet5.rules``), the options several
commands take, and the way a command ends with one line and an exit status.

Exit status everywhere: 0 done; 1 a bad data or model file; 2 a bad
argument; 3 training diverged; 128 + the signal's number when stopped by one (130 Ctrl-C,
143 SIGTERM, 129 SIGHUP).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence

from . import core, engines, rules
from ._version import __version__
from .files import OutputPathError, check_writable
from .signals import STOP_SIGNALS, SignalStop

if TYPE_CHECKING:
    from .model import LeNet5


#: How the running command was started, for its usage and error lines: ``lenet5 SUB``
#: sets it (lenet5/__main__.py); otherwise each command names itself as a module.
invoked_as: Optional[str] = None


def prog(module: str) -> str:
    """The name a command's parser shows: ``lenet5 train`` when started so,
    else ``python -m lenet5.train`` (module is ``lenet5.train``)."""
    return invoked_as or f"python -m {module}"


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


positive_int = _arg_type(int, lambda v, name: rules.check_count(v, name), "a whole number")
seed_int = _arg_type(int, lambda v, name: rules.check_count(v, name, minimum=0), "a whole number")
learning_rate = _arg_type(float, rules.check_lr, "a number")
sign_value = _arg_type(_sign_text, rules.check_sign, "+1 or -1")
thread_count = _arg_type(int, rules.check_threads, "a whole number")
momentum_value = _arg_type(float, rules.check_momentum, "a number")
decay_value = _arg_type(float, rules.check_weight_decay, "a number")
count_or_zero = _arg_type(int, lambda v, name: rules.check_count(v, name, minimum=0), "a whole number")


def _check_port(value: int, name: Optional[str]) -> int:
    if not 0 <= value <= 65535:
        raise ValueError(f"{name + ' ' if name else ''}must be between 0 and 65535, not {value}")
    return value


port_number = _arg_type(int, _check_port, "a whole number")


def add_version_option(p: argparse.ArgumentParser) -> None:
    """--version: every command says which lenet5 it is (``lenet5-train --version``)."""
    p.add_argument("--version", action="version", version=f"lenet5 {__version__}", help="print the version and exit")


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """--engine, --kernel, --threads: which engine runs the work."""
    p.add_argument(
        "--engine",
        choices=engines.NAMES,
        default="c",
        help="c: the exact C core (default); numpy: the NumPy twin (BLAS-order sums)",
    )
    p.add_argument(
        "--kernel",
        choices=sorted(rules.KERNELS),
        default=None,
        help="C kernels: fast (default) or reference (the plain, readable ones; same bits)",
    )
    add_threads_option(p)


def add_threads_option(p: argparse.ArgumentParser) -> None:
    """--threads: the C core's team size (docs/SPEC.md §9.1)."""
    p.add_argument(
        "--threads",
        type=thread_count,
        default=None,
        metavar="N",
        help="threads of the C core (default: OMP_NUM_THREADS, else all cores)",
    )


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
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder holding the MNIST files (default: LENET5_DATA, the repository's "
        "data/, ./data, then the user cache; see docs/usage.md)",
    )


def check_output(parser: argparse.ArgumentParser, flag: str, path: Optional[str], suffixes: Sequence[str] = ()) -> None:
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


def check_distinct(parser: argparse.ArgumentParser, outputs: Dict[str, Optional[str]]) -> None:
    """Refuse, before any work, two output options naming the same file
    (``--save m.npz --json m.npz`` would write the JSON over the model)."""
    seen: Dict[str, str] = {}
    for flag, path in outputs.items():
        if not path:
            continue
        key = os.path.realpath(path)
        if key in seen:
            parser.error(f"{flag} {path}: the same file as {seen[key]}; give each output its own name")
        seen[key] = f"{flag} {path}"


def _stop_now(signum: int, frame: Any) -> None:
    raise SignalStop(signum, f"interrupted by {signal.Signals(signum).name}")


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's last flush
    does not fail again on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def run(prog: str, body: Callable[[], int]) -> int:
    """Run a command's body; a Stop, Ctrl-C, SIGTERM or SIGHUP ends it with one
    line and its status (128 + the signal's number: 130, 143, 129).  Training
    turns these signals into a stop at a batch boundary (signals.InterruptRequest)."""
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _stop_now) for s in STOP_SIGNALS if s != signal.SIGINT} if main else {}
    try:
        return body()
    except Stop as e:
        say(f"{prog}: {e}")
        return e.status
    except core.IsaEnvironmentError as e:  # LENET5_ISA names a variant that cannot run here
        say(f"{prog}: {e}")
        return 2
    except KeyboardInterrupt as e:
        say(f"{prog}: {e or 'interrupted'}")
        return 128 + getattr(e, "signum", signal.SIGINT)
    except BrokenPipeError:  # the reader left (`lenet5 evaluate | head -2`): end quietly, as other tools do
        _silence_stdout()
        return 128 + signal.SIGPIPE
    except OutputPathError as e:  # an output replaced by a device or folder since it was checked
        say(f"{prog}: {e}")
        return 1
    except OSError as e:  # a write failed after the work (full disk, ...): one line, no traceback
        say(f"{prog}: cannot write{' ' + str(e.filename) if e.filename else ''}: {e.strerror or e}")
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def load_model(path: Optional[str]) -> LeNet5:
    """The LeNet5 at path, else the shipped pretrained one; Stop says what is
    wrong (exit 1) or missing (exit 2)."""
    from .model import LeNet5  # loads the compiled core: only when a command needs a model
    from .params import ModelFileError

    if path is not None:
        try:
            return LeNet5.load(path)
        except ModelFileError as e:
            raise Stop(str(e), 1) from None
    try:
        return LeNet5.pretrained()
    except ModelFileError as e:  # an installation without its package data, or a damaged one
        raise Stop(
            f"no model to use: the shipped model cannot be read ({e}); give one with --model PATH "
            "(a .npz or .dat file from lenet5 train --save PATH)",
            2,
        ) from None
