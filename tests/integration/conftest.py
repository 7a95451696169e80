"""Fixtures shared by the integration tests: command and round-trip counting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.connection

from pynenc_redis_stack.server import EmbeddedRedisStack


def commandstats(client: redis.Redis) -> dict[str, int]:
    """Return ``{command: calls}`` (lower-case names, ``info`` itself left out)."""
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_").lower(): int(values["calls"])
        for name, values in stats.items()
        if name != "cmdstat_info"
    }


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        name: calls - before.get(name, 0) for name, calls in after.items() if calls != before.get(name, 0)
    }


class RoundTrips:
    """Counts requests written by any redis-py connection while :meth:`counting` is active."""

    def __init__(self) -> None:
        self.count = 0
        self.active = False

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.count = 0
        self.active = True
        try:
            yield
        finally:
            self.active = False


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    counter = RoundTrips()
    original: Callable[..., None] = redis.connection.AbstractConnection.send_packed_command

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        if counter.active:
            counter.count += 1
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", send_packed_command)
    return counter


@pytest.fixture
def low_cap_url(tmp_path: Path) -> Iterator[str]:
    """A server of its own whose result caps are 25 (below every page size used)."""
    server = EmbeddedRedisStack(tmp_path / "server", persistent=False)
    url = server.start()
    client = redis.Redis.from_url(url, protocol=2, decode_responses=True)
    client.execute_command("FT.CONFIG", "SET", "MAXSEARCHRESULTS", "25")
    client.execute_command("FT.CONFIG", "SET", "MAXAGGREGATERESULTS", "25")
    client.close()
    try:
        yield url
    finally:
        server.stop()
