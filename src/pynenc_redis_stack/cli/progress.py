"""The progress bar of every long command (``index migrate`` backfills, ``import-redis``,
``prune``), on stderr."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TextIO


class ProgressBar:
    """Progress on a stream: a bar redrawn in place on a terminal, otherwise one line each time
    another tenth is done, so logs stay short.

    Implements :class:`pynenc_redis_stack.core.indexes.executor.Progress`; adapts it with :meth:`counting` to the
    ``(done, total)`` callbacks of import and prune.

    :param stream: Where to draw (stderr in the CLI).
    :param width: Characters of the bar.
    :param quiet_seconds: Off a terminal, print nothing for a bar finished within this many
        seconds (waits on empty indexes would otherwise add lines to every log).
    """

    def __init__(self, stream: TextIO, width: int = 30, quiet_seconds: float = 0.0) -> None:
        self.stream = stream
        self.width = width
        self.quiet_seconds = quiet_seconds
        self.tty = stream.isatty()
        self._last_step: dict[str, int] = {}
        self._started: dict[str, float] = {}

    def update(self, name: str, fraction: float, detail: str) -> None:
        """Draw ``name`` at ``fraction`` done, followed by ``detail``."""
        fraction = min(max(fraction, 0.0), 1.0)
        filled = int(fraction * self.width)
        line = f"{name} [{'#' * filled}{'.' * (self.width - filled)}] {int(fraction * 100):3d}% {detail}"
        if self.tty:
            self.stream.write("\r" + line)
            self.stream.flush()
            self._last_step[name] = 0
            return
        started = self._started.setdefault(name, time.monotonic())
        step = int(fraction * 10)
        if self._last_step.get(name) != step and (
            name in self._last_step or time.monotonic() - started >= self.quiet_seconds
        ):
            self._last_step[name] = step
            print(line, file=self.stream, flush=True)

    def done(self, name: str) -> None:
        """End the bar of ``name`` (a newline on a terminal)."""
        if self.tty and name in self._last_step:
            self.stream.write("\n")
            self.stream.flush()
        self._last_step.pop(name, None)
        self._started.pop(name, None)

    @contextlib.contextmanager
    def counting(self, name: str) -> Iterator[Callable[[int, int], None]]:
        """Yield a ``(done, total)`` callback drawing the bar ``name`` (``done/total`` after it);
        the bar ends when the block does."""

        def draw(done: int, total: int) -> None:
            self.update(name, min(done / total, 1.0) if total else 1.0, f"{done}/{total}")

        try:
            yield draw
        finally:
            self.done(name)
