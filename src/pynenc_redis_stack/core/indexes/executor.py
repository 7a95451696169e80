"""The bottom layer of the index lifecycle: run a plan's steps, or print them (dry run).

A plan (:mod:`pynenc_redis_stack.core.indexes`) is a sequence of :data:`Step` s decided from
what the server holds *before* anything changes. An :class:`Executor` then either sends each
write to the server (:class:`LiveExecutor`) or prints it as a ``redis-cli`` line
(:class:`PrintingExecutor`), Alembic-style: the printed commands are exactly the commands a
real run sends, because both come from the same steps. Reads (``FT.INFO``, ``FT._LIST``) are
not steps: planning needs them in both modes and they change nothing.

Waits are steps too. A live run polls ``FT.INFO`` until the server is done (with a deadline);
a dry run prints them as ``#`` comment lines, because pasting the next command before the
wait is over would, for example, point the alias at a half-built index.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

import redis
from redis.backoff import ExponentialBackoff

from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.command_line import redis_cli_line
from pynenc_redis_stack.core.errors import BackfillError, DrainTimeoutError, is_missing_index_error

"""Server wordings of 'no such index' across RediSearch 2.8, 2.10 and Redis 8."""

DEFAULT_POLL_INTERVAL = 0.2
"""Longest wait in seconds between two ``FT.INFO`` polls while waiting for the server."""

FIRST_POLL_INTERVAL = 0.005
"""First wait between two polls, doubled up to the poll interval: an index created over a
few documents finishes in milliseconds, and a first use that waited a whole interval for it
took 0.2 s more."""


@dataclass(frozen=True)
class Send:
    """One write command.

    :param args: The command and its arguments, as sent.
    :param tolerate: Lower-case text of a server error meaning "already done by someone else"
        (e.g. ``already exists`` when another process created the same index first); such an
        error is not a failure.
    """

    args: tuple[str, ...]
    tolerate: str | None = None


@dataclass(frozen=True)
class AwaitBackfill:
    """Wait until ``index`` has indexed every document under its prefixes.

    :param index: Physical index name.
    :param max_failures: Largest acceptable ``hash_indexing_failures`` once done (the old
        index's count), or None not to check. More failures means documents the old index
        served would be missing from the new one, so the alias must not switch.
    """

    index: str
    max_failures: int | None = None


@dataclass(frozen=True)
class AwaitDrain:
    """Wait until no cursor is open on ``index`` (readers that started before the alias moved)."""

    index: str


type Step = Send | AwaitBackfill | AwaitDrain


def render(step: Step) -> str:
    """Return the line a dry run prints for ``step``.

    Commands are quoted for ``redis-cli`` (:func:`~pynenc_redis_stack.core.command_line.redis_cli_line`);
    :func:`~pynenc_redis_stack.core.command_line.split_redis_cli_line` gives back the exact arguments.
    Waits are ``#`` comments.
    """
    if isinstance(step, Send):
        return redis_cli_line(step.args)
    if isinstance(step, AwaitBackfill):
        return f"# wait until FT.INFO {step.index} shows indexing 0 and percent_indexed 1"
    return f"# wait until FT.INFO {step.index} shows cursor_stats index_total 0"


def pairs(raw: list[Any]) -> dict[str, Any]:
    """Turn a RESP2 ``[key, value, key, value, ...]`` reply into a dict."""
    return {str(key): value for key, value in zip(raw[::2], raw[1::2], strict=False)}


def index_info(client: redis.Redis, name: str) -> dict[str, Any] | None:
    """Return ``FT.INFO name`` as a dict (an alias is resolved), or None if there is no such index."""
    try:
        return pairs(run(client, "FT.INFO", name))
    except redis.ResponseError as exc:
        if is_missing_index_error(exc):
            return None
        raise


def is_indexing(info: Mapping[str, Any]) -> bool:
    """Tell whether ``FT.INFO`` shows a backfill in progress."""
    return str(info.get("indexing", "0")) not in ("0", "0.0")


def percent_indexed(info: Mapping[str, Any]) -> float:
    """Return ``FT.INFO``'s ``percent_indexed`` as a fraction in [0, 1]."""
    return float(info.get("percent_indexed", 1) or 0)


def open_cursors(info: dict[str, Any]) -> int:
    """Return the number of cursors open on the index (``cursor_stats`` ``index_total``)."""
    return int(pairs(list(info.get("cursor_stats") or [])).get("index_total", 0))


class Progress(Protocol):
    """Receives backfill progress while a live run waits."""

    def update(self, name: str, fraction: float, detail: str) -> None:
        """Report that ``name`` is ``fraction`` done; ``detail`` says how far (``1200 docs``)."""

    def done(self, name: str) -> None:
        """Report that the wait on ``name`` is over (finished or failed)."""


class Executor(ABC):
    """Runs plan steps; records every write command it sends or prints.

    :ivar dry_run: True when nothing is sent to the server.
    :ivar sent: Every write command, in order (sent, or printed in a dry run).
    """

    dry_run: bool

    def __init__(self) -> None:
        self.sent: list[tuple[str, ...]] = []

    @abstractmethod
    def run(self, step: Step) -> None:
        """Run one step.

        :raises BackfillError: If a backfill wait fails (live runs only).
        :raises DrainTimeoutError: If cursors stay open past the deadline (live runs only).
        """

    def run_all(self, steps: Iterable[Step]) -> None:
        """Run ``steps`` in order, stopping at the first error."""
        for step in steps:
            self.run(step)

    @property
    def created(self) -> list[str]:
        """Names of the indexes an ``FT.CREATE`` was sent (or printed) for."""
        return [args[1] for args in self.sent if args[0] == "FT.CREATE"]


class PrintingExecutor(Executor):
    """Dry run: print each step as one ``redis-cli`` line (waits as ``#`` comments); send nothing."""

    dry_run = True

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self.out = out

    def run(self, step: Step) -> None:
        if isinstance(step, Send):
            self.sent.append(step.args)
        print(render(step), file=self.out, flush=True)


class LiveExecutor(Executor):
    """Send each write to the server; wait on the server where the plan says so.

    :param client: The connection.
    :param timeout: Seconds each backfill wait may take before :class:`BackfillError`.
    :param drain_timeout: Seconds to wait for open cursors before :class:`DrainTimeoutError`.
    :param poll_interval: Longest wait in seconds between two ``FT.INFO`` polls (the waits
        start at :data:`FIRST_POLL_INTERVAL` and double).
    :param heartbeat: Called at every poll (e.g. to refresh a lock); may raise to abort.
    :param progress: Receives backfill progress.
    """

    dry_run = False

    def __init__(
        self,
        client: redis.Redis,
        *,
        timeout: float = 3600.0,
        drain_timeout: float = 60.0,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        heartbeat: Callable[[], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.timeout = timeout
        self.drain_timeout = drain_timeout
        self.poll_interval = poll_interval
        self.heartbeat = heartbeat
        self.progress = progress
        self.tolerated: list[tuple[str, ...]] = []
        """Commands whose error meant "already done" (another process got there first)."""

    def run(self, step: Step) -> None:
        if isinstance(step, Send):
            self._send(step)
        elif isinstance(step, AwaitBackfill):
            self._await_backfill(step)
        else:
            self._await_drain(step)

    def _send(self, step: Send) -> None:
        try:
            run(self.client, *step.args)
        except redis.ResponseError as exc:
            if step.tolerate is None or step.tolerate not in str(exc).lower():
                raise
            self.tolerated.append(step.args)
            return
        self.sent.append(step.args)

    def _beat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat()

    def _poll(
        self, index: str, timeout: float, finished: Callable[[dict[str, Any] | None], bool]
    ) -> tuple[bool, dict[str, Any] | None]:
        """Read ``FT.INFO index``, waiting longer each time up to ``poll_interval``, until
        ``finished`` says so or ``timeout`` seconds pass: ``(finished, the last answer)``."""
        deadline = time.monotonic() + timeout
        backoff = ExponentialBackoff(
            cap=self.poll_interval, base=min(FIRST_POLL_INTERVAL, self.poll_interval)
        )
        polls = 0
        while True:
            self._beat()
            info = index_info(self.client, index)
            if finished(info):
                return True, info
            if time.monotonic() >= deadline:
                return False, info
            time.sleep(backoff.compute(polls))
            polls += 1

    def _await_backfill(self, step: AwaitBackfill) -> None:
        def indexed(info: dict[str, Any] | None) -> bool:
            if info is None:
                raise BackfillError(f"{step.index} disappeared while it was being indexed")
            if self.progress is not None:
                self.progress.update(
                    step.index, percent_indexed(info), f"{int(info.get('num_docs', 0))} docs"
                )
            return not is_indexing(info)

        try:
            done, last = self._poll(step.index, self.timeout, indexed)
        finally:
            if self.progress is not None:
                self.progress.done(step.index)
        info = last or {}  # indexed() raised on a missing index
        if not done:
            raise BackfillError(
                f"{step.index} is still indexing ({percent_indexed(info):.0%}) after "
                f"{self.timeout:g} s; the alias was not switched. Run migrate again to resume "
                "(the index being built is reused)."
            )
        failures = int(info.get("hash_indexing_failures", 0))
        if step.max_failures is not None and failures > step.max_failures:
            errors = pairs(list(info.get("Index Errors") or []))
            raise BackfillError(
                f"{step.index} could not index {failures} documents (the index it replaces had "
                f"{step.max_failures}): last error {errors.get('last indexing error')!r} on key "
                f"{errors.get('last indexing error key')!r}. The alias was not switched; fix the "
                f"documents or the schema file, then FT.DROPINDEX {step.index} (without DD) and rerun."
            )

    def _await_drain(self, step: AwaitDrain) -> None:
        done, info = self._poll(
            step.index, self.drain_timeout, lambda info: info is None or open_cursors(info) == 0
        )
        if not done:
            raise DrainTimeoutError(
                f"{open_cursors(info or {})} cursor(s) still open on {step.index} after "
                f"{self.drain_timeout:g} s; it was kept so their readers do not fail. Run "
                "migrate again to drop it (idle cursors expire after 300 s)."
            )
