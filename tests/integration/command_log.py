"""Every Redis command this process sends, with the component of this package that sent it.

Wraps ``send_packed_command`` of redis-py's connection class (one call is one round trip: a
command, or a whole pipeline), decodes the command names from the request, and attributes
them by the call stack: the innermost frame in a component's module (the state backend,
orchestrator, broker, trigger or client data store) names the component. Shared helpers
(``client``, ``search``, ``scripts``, the document store the orchestrator and the trigger
both use) are looked through. Connection upkeep (``PING`` health checks, ``CLIENT SETINFO``
and ``HELLO`` on connect) is left out: it depends on timing, not on the work.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis.connection

COMPONENTS = {
    "pynenc_redis_stack.state_backend.backend": "state backend",
    "pynenc_redis_stack.orchestrator": "orchestrator",
    "pynenc_redis_stack.broker": "broker",
    "pynenc_redis_stack.trigger": "trigger",
    "pynenc_redis_stack.client_data_store": "client data store",
}
SHARED_MODULES = ("pynenc_redis_stack.orchestrator.store",)
"""Modules of a component that others use too: the frame further out decides."""

UPKEEP = frozenset({"PING", "CLIENT", "HELLO"})


def component_of(frame: Any) -> str:
    """The component whose module is innermost on the stack from ``frame`` outwards."""
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if not module.startswith(SHARED_MODULES):
            for prefix, name in COMPONENTS.items():
                if module == prefix or module.startswith(f"{prefix}."):
                    return name
        frame = frame.f_back
    return "other"


def command_names(packed: Any) -> list[str]:
    """The command names in a packed request (RESP arrays of bulk strings)."""
    parts = [packed] if isinstance(packed, bytes | bytearray | memoryview) else packed
    data = b"".join(bytes(part) for part in parts)
    names: list[str] = []
    position = 0
    while position < len(data):
        end = data.index(b"\r\n", position)
        count, position = int(data[position + 1 : end]), end + 2
        for index in range(count):
            end = data.index(b"\r\n", position)
            length, position = int(data[position + 1 : end]), end + 2
            if index == 0:
                names.append(data[position : position + length].decode().upper())
            position += length + 2
    return names


class CommandLog:
    """Commands and round trips per component while :meth:`recording` is active."""

    def __init__(self) -> None:
        self.commands: dict[str, Counter[str]] = {}
        self.round_trips: Counter[str] = Counter()
        self.active = False
        self._lock = threading.Lock()

    @contextmanager
    def recording(self) -> Iterator[CommandLog]:
        self.commands, self.round_trips = {}, Counter()
        self.active = True
        try:
            yield self
        finally:
            self.active = False

    def record(self, packed: Any) -> None:
        names = [name for name in command_names(packed) if name not in UPKEEP]
        if not names:
            return
        component = component_of(sys._getframe(2))
        with self._lock:
            self.round_trips[component] += 1
            self.commands.setdefault(component, Counter()).update(names)

    def by_component(self) -> dict[str, dict[str, int]]:
        return {
            component: dict(sorted(counts.items())) for component, counts in sorted(self.commands.items())
        }


@contextmanager
def installed(log: CommandLog) -> Iterator[CommandLog]:
    """Route every redis-py request of this process through ``log`` while inside."""
    original = redis.connection.AbstractConnection.send_packed_command

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        if log.active:
            log.record(command)
        original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    try:
        yield log
    finally:
        redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
