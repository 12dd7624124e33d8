"""Progress of long work over files (ingesting, generating): bytes of the current file, files done,
records per second.

On a terminal it is one bar, redrawn in place. Elsewhere (a log file, CI, the Dagster run log) it
is plain lines: one every `every_seconds` (the first after as long, so short work says nothing),
then one when each file is done, so that logs stay readable.
"""

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

REDRAW_SECONDS = 0.2
BAR_WIDTH = 24


def _size(n: float) -> str:
    if n < 1000:
        return f"{n:,.0f} B"
    for unit in ("KB", "MB", "GB"):
        n /= 1000
        if n < 1000:
            return f"{n:,.1f} {unit}"
    return f"{n / 1000:,.1f} TB"


class Progress:
    """Call `start_file`, then `update` as work is done, then `finish_file`; `close` at the end.
    Lines go to `emit`; with a `terminal`, a bar is redrawn there instead."""

    def __init__(
        self,
        verb: str,
        emit: Callable[[str], None] | None = None,
        terminal: TextIO | None = None,
        every_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.verb, self.emit, self.terminal = verb, emit, terminal
        self.every_seconds, self.clock = every_seconds, clock
        self.started = clock()
        self.records = 0  # over all files
        self.name, self.size, self.done, self.number, self.total = "", None, 0, 0, 0
        self.last_shown = self.started if terminal is None else float("-inf")
        self.last_line = ""
        self.shown = False  # something was shown

    @classmethod
    def for_stream(cls, verb: str, stream: TextIO | None = None) -> "Progress":
        """A bar on a terminal (default: stderr); else lines as `to_log` writes them."""
        stream = stream or sys.stderr
        if stream.isatty():
            return cls(verb, terminal=stream)
        return cls.to_log(verb, lambda line: print(line, file=stream, flush=True))

    @classmethod
    def to_log(cls, verb: str, emit: Callable[[str], None]) -> "Progress":
        """Lines every $ALERT_PIPELINE_PROGRESS_SECONDS (default 10)."""
        every = float(os.environ.get("ALERT_PIPELINE_PROGRESS_SECONDS", "10"))
        return cls(verb, emit=emit, every_seconds=every)

    def start_file(self, name: str, size: int | None, number: int, total: int) -> None:
        self.name, self.size, self.done, self.number, self.total = name, size, 0, number, total
        self._show(force=self.terminal is not None)

    def update(self, done_bytes: int, new_records: int) -> None:
        self.done = max(self.done, done_bytes)
        self.records += new_records
        self._show()

    def finish_file(self) -> None:
        self.done = self.size if self.size is not None else self.done
        self._show(force=self.shown)

    def close(self) -> None:
        if self.shown and self.terminal is not None:
            self.terminal.write("\n")
            self.terminal.flush()

    def line(self) -> str:
        share = f" {100 * self.done / self.size:.0f} %" if self.size else ""
        of = f" of {_size(self.size)}" if self.size else ""
        return (
            f"{self.verb} {self.name}:{share} ({_size(self.done)}{of}), file {self.number} of "
            f"{self.total}, {self.rate():,.0f} records/s"
        )

    def bar(self) -> str:
        """Filled by the bytes of the file, or by the files done when its size is unknown."""
        share = self.done / self.size if self.size else (self.number - 1) / max(self.total, 1)
        filled = round(BAR_WIDTH * share)
        return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.line()}"

    def rate(self) -> float:
        elapsed = self.clock() - self.started
        return self.records / elapsed if elapsed > 0 else 0.0

    def _show(self, force: bool = False) -> None:
        now = self.clock()
        if self.terminal is not None:
            if force or now - self.last_shown >= REDRAW_SECONDS:
                self.terminal.write("\r\033[K" + self.bar())
                self.terminal.flush()
                self.last_shown, self.shown = now, True
        elif self.emit is not None and (force or now - self.last_shown >= self.every_seconds):
            line = self.line()
            if line != self.last_line:
                self.emit(line)
            self.last_shown, self.last_line, self.shown = now, line, True
