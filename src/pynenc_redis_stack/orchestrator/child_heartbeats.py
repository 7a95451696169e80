"""Heartbeats of a process that runs one invocation for a runner in another process (pynenc's
ProcessRunner child), sent by the child itself while its invocation is RUNNING.

pynenc's ProcessRunner reports its children's heartbeats from the parent only: once the
parent is SIGKILLed its children run on, but their heartbeats stop, so recovery reroutes what
they are still running and a second copy runs beside the first (docs/distributed.md). Beating
from the child keeps the invocation with the copy that is really running it; a child that dies
too stops beating, and its invocation is recovered as before.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from typing import TYPE_CHECKING, Protocol

import redis
from pynenc import context
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord

if TYPE_CHECKING:
    from pynenc.app import Pynenc
    from pynenc.identifiers.invocation_id import InvocationId

MAX_BEAT_INTERVAL_SEC = 30.0
"""Longest wait between two heartbeats of a child (a quarter of the dead-runner timeout if
that is shorter)."""


class HeartbeatSender(Protocol):
    """What a child's heartbeats need of its orchestrator (``RedisStackOrchestrator``)."""

    @property
    def app(self) -> Pynenc: ...

    def register_runner_heartbeats(self, runner_ids: list[str]) -> None: ...


class ChildHeartbeats:
    """One beating thread per invocation RUNNING in this process under a runner context that
    another process reserved for it (the child of a ProcessRunner); each stops once its
    invocation leaves RUNNING here."""

    def __init__(self, orchestrator: HeartbeatSender) -> None:
        self.orchestrator = orchestrator
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def follow(self, invocation_id: InvocationId, record: InvocationStatusRecord) -> None:
        """Start or stop beating for ``invocation_id`` after its status became ``record``."""
        if record.status is not InvocationStatus.RUNNING:
            with self._lock:
                stop = self._stops.pop(invocation_id, None)
            if stop is not None:
                stop.set()
            return
        runner_id = record.runner_id
        if runner_id is None or not self._is_reserved_child(runner_id):
            return
        with self._lock:
            if invocation_id in self._stops:
                return
            stop = self._stops[invocation_id] = threading.Event()
        thread = threading.Thread(
            target=self._beat, args=(runner_id, stop), name=f"heartbeat-{runner_id}", daemon=True
        )
        thread.start()

    def _is_reserved_child(self, runner_id: str) -> bool:
        """True in a multiprocessing child running under a context its parent created."""
        current = context.get_runner_context(self.orchestrator.app.app_id)
        return (
            multiprocessing.parent_process() is not None
            and current is not None
            and current.runner_id == runner_id
            and current.pid != os.getpid()
        )

    def _beat(self, runner_id: str, stop: threading.Event) -> None:
        dead_after = float(self.orchestrator.app.conf.runner_considered_dead_after_minutes) * 60
        interval = min(MAX_BEAT_INTERVAL_SEC, dead_after / 4)
        while not stop.wait(interval):
            try:
                self.orchestrator.register_runner_heartbeats([runner_id])
            except (redis.ConnectionError, redis.TimeoutError) as error:
                self.orchestrator.app.logger.warning(
                    f"heartbeat of runner:{runner_id} not sent ({error}); sent again in {interval:.0f} s"
                )
