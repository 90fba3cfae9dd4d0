"""Stop signals: Ctrl-C, SIGTERM and SIGHUP ask a run to stop at the next
batch boundary and save what it has (docs/SPEC.md §8.4); a second signal
stops at once.  The training loop takes an ``InterruptRequest`` as its
``should_stop``; the commands (lenet5.cli) end with 128 + the signal's number.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Dict, Optional

#: The signals that ask a run to stop and save: Ctrl-C, kill/timeout/systemd, a closed terminal.
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class SignalStop(KeyboardInterrupt):
    """A stop signal that cannot wait for the batch boundary (the second one,
    or one outside training); ``signum`` gives the exit status 128 + signum."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message or f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class InterruptRequest:
    """Turns Ctrl-C, SIGTERM and SIGHUP into a request to stop at the next
    batch boundary: use it as ``should_stop`` (docs/SPEC.md §8.4).  The first
    signal's number is ``signum``; a second signal raises ``SignalStop`` at
    once (an atomic save under way then removes its temporary file).
    Outside the main thread (where signals cannot be caught) it never asks."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: Dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signum is not None

    def __enter__(self) -> InterruptRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise SignalStop(signum, f"{signal.Signals(signum).name} again while stopping: stopped at once")
        self.signum = signum

    def __call__(self) -> bool:
        """True once a stop signal arrived: stop at this batch boundary."""
        return self.requested

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
