"""What one component asks of another, as protocols: the broker and the orchestrator work
together on stranded invocations without importing each other (either may be pynenc's own)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class StrandedSweeper(Protocol):
    """An orchestrator that routes again what waited too long for a route (this package's)."""

    def reroute_stranded_invocations(self, grace_seconds: float) -> list[str]: ...


@runtime_checkable
class QueueInspector(Protocol):
    """A broker that tells which invocations have a queue or taken entry (this package's)."""

    def queued_and_taken_ids(self) -> set[str]: ...
