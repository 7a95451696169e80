"""Fault tests: real runner processes on a server of this package's own (never the session's
shared one), faults injected for real (SIGKILL, a socket shut down, a short TTL).

:class:`Processes` starts ``python -c`` processes importing :mod:`tests.faults.faults_app`
with only ``PYNENC__`` settings in their environment; every wait polls a condition with a
deadline (:func:`wait_for`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.invocation.status import InvocationStatus

from pynenc_redis_stack import RedisStackStateBackend
from pynenc_redis_stack.server import EmbeddedRedisStack
from tests.conftest import SESSION_MARKER
from tests.processes import Processes as Processes  # the fault tests import it from here

REPO = Path(__file__).resolve().parents[2]
APP_MODULE = "tests.faults.faults_app"
DEADLINE_SECONDS = 45.0
"""Upper bound of any one wait; reached only when something is broken."""

RUNS = "faults:runs"
"""The list (suffixed with ``:<app id>``) each task run of ``faults_app`` appends to."""

FAST_RECOVERY = {
    "RUNNER_LOOP_SLEEP_TIME_SEC": "0.02",
    "INVOCATION_WAIT_RESULTS_SLEEP_TIME_SEC": "0.02",
    # a take not recorded within 2 s goes back; a routable invocation 2 s without a queue
    # entry is routed again; both checked every 0.3 s
    "REDIS_STACK_BROKER_LEASE_SEC": "2",
    "REDIS_STACK_BROKER_RECOVERY_INTERVAL_SEC": "0.3",
}


ATOMIC_SERVICE_NOW = {
    # the runner's first loop iteration claims the atomic-service run (recovery, triggers);
    # a runner is dead after 6 s without a heartbeat
    "RUNNER_CONSIDERED_DEAD_AFTER_MINUTES": "0.1",
    "ATOMIC_SERVICE_CHECK_INTERVAL_MINUTES": "0.005",
    "ATOMIC_SERVICE_INTERVAL_MINUTES": "0.1",
    "ATOMIC_SERVICE_SPREAD_MARGIN_MINUTES": "0.005",
    "ATOMIC_SERVICE_MAX_START_SLOT_FRACTION": "1.0",
}


def wait_for[T](what: str, probe: Callable[[], T | None], deadline: float = DEADLINE_SECONDS) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` at the deadline."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        if value := probe():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {deadline:.0f} s: {what}")


@pytest.fixture(scope="session")
def fault_server() -> Iterator[str]:
    """A server of the fault tests (they kill clients and plant states on it)."""
    with tempfile.TemporaryDirectory(prefix="prs-faults-") as data_dir:
        server = EmbeddedRedisStack(Path(data_dir), persistent=False)
        url = server.start()
        try:
            yield url
        finally:
            server.stop()


@pytest.fixture
def admin(fault_server: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(fault_server, protocol=2, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


def fault_processes(log_dir: Path, app_id: str, url: str, **settings: str) -> Processes:
    """Processes importing :mod:`tests.faults.faults_app`, with only ``PYNENC__`` settings (the
    app, the server, :data:`FAST_RECOVERY` and ``settings``) in their environment."""
    shared = {"APP_ID": app_id, "REDIS_STACK_URL": url, **FAST_RECOVERY, **settings}
    environment = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO),
        SESSION_MARKER: os.environ[SESSION_MARKER],
        **{f"PYNENC__{key}": value for key, value in shared.items()},
    }
    return Processes(log_dir, environment, APP_MODULE)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., Processes]]:
    made: list[Processes] = []

    def make(app_id: str, url: str, **settings: str) -> Processes:
        made.append(fault_processes(tmp_path, app_id, url, **settings))
        return made[-1]

    try:
        yield make
    finally:
        for group in made:
            group.kill_all()


def observer(app_id: str, url: str, **settings: Any) -> Pynenc:
    """The test's view of the app (no tasks imported): its state backend, orchestrator, broker."""
    return PynencBuilder().app_id(app_id).redis_stack(url=url).custom_config(**settings).build()


def running_entries(app: Pynenc, invocation_id: str) -> tuple[list[InvocationStatus], int]:
    """The statuses of an invocation's history and how many of them are RUNNING."""
    backend = app.state_backend
    assert isinstance(backend, RedisStackStateBackend)
    statuses = [entry.status_record.status for entry in backend.get_history(invocation_id)]
    return statuses, statuses.count(InvocationStatus.RUNNING)


def keys_without_ttl(admin: redis.Redis, app_id: str) -> dict[str, int]:
    """Count the app's keys that never expire, by kind (the key's second segment)."""
    kinds: dict[str, int] = {}
    for key in admin.scan_iter(match="*", count=1000):
        if app_id not in key or admin.pttl(key) != -1:
            continue
        kind = key.split(":")[1]
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds
