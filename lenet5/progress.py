"""Progress of long work: a live bar on a terminal, one plain line per epoch
in a log that is not a terminal (CI, nohup, a redirected file), nothing when
quiet.  The bar is tqdm's; a log never gets its per-batch refreshes."""

from __future__ import annotations

import sys
from typing import Any, Optional, TextIO

from .loop import BatchReport


class Progress:
    """What a training run shows while it runs.

    enabled False: nothing at all.  Otherwise each epoch ends with one line
    (``end_epoch``), and on a terminal a bar shows the running loss and
    accuracy as the batches go by."""

    def __init__(self, enabled: bool = True, stream: Optional[TextIO] = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        isatty = getattr(self.stream, "isatty", None)
        self.live = enabled and bool(isatty and isatty())
        self._bar: Any = None

    def say(self, message: str) -> None:
        """One line, above any bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def start_epoch(self, epoch: int, epochs: int, total: int, initial: int = 0) -> None:
        """epoch counts from 1; initial is the batch a resumed epoch starts at."""
        if self.live:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=f"epoch {epoch}/{epochs}",
                unit="batch",
                file=self.stream,
                leave=False,
            )

    def batch(self, report: BatchReport) -> None:
        """Advance the bar by one batch, showing the epoch's running loss and accuracy."""
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{report.epoch_loss:.4f}", acc=f"{report.epoch_accuracy:.3f}", refresh=False)
            self._bar.update(1)

    def end_epoch(self, line: str) -> None:
        """Close the epoch's bar and print its summary line."""
        self.close()
        self.say(line)

    def close(self) -> None:
        """Remove the bar, if one is showing."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
