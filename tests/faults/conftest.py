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


class Processes:
    """The processes a test starts: each one's output in its own log file, all killed at the end."""

    def __init__(self, log_dir: Path, app_id: str, url: str, **settings: str) -> None:
        self.log_dir = log_dir
        shared = {"APP_ID": app_id, "REDIS_STACK_URL": url, **FAST_RECOVERY, **settings}
        self.environment = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(REPO),
            SESSION_MARKER: os.environ[SESSION_MARKER],
            **{f"PYNENC__{key}": value for key, value in shared.items()},
        }
        self.started: dict[str, subprocess.Popen[str]] = {}
        self._logs: list[IO[str]] = []

    def start(
        self, name: str, call: str, stdout: int | None = None, **settings: str
    ) -> subprocess.Popen[str]:
        """Start ``python -c 'from faults_app import *; <call>'`` with the shared environment
        plus ``settings`` (``PYNENC__`` names without the prefix)."""
        log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 - closed in kill_all
        self._logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-c", f"from {APP_MODULE} import *; {call}"],
            cwd=REPO,
            env={**self.environment, **{f"PYNENC__{key}": value for key, value in settings.items()}},
            stdout=log if stdout is None else stdout,
            stderr=log,
            text=True,
        )
        self.started[name] = process
        return process

    def logs(self) -> str:
        """Every process's output, for failure messages."""
        for log in self._logs:
            log.flush()
        return "\n".join(
            f"--- {name} (pid {p.pid}, exit {p.poll()})\n{(self.log_dir / f'{name}.log').read_text()[-4000:]}"
            for name, p in self.started.items()
        )

    def kill_all(self) -> None:
        for process in self.started.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
            if process.stdout is not None:
                process.stdout.close()
        for log in self._logs:
            log.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., Processes]]:
    made: list[Processes] = []

    def make(app_id: str, url: str, **settings: str) -> Processes:
        made.append(Processes(tmp_path, app_id, url, **settings))
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
    statuses = [entry.status_record.status for entry in backend.get_history(invocation_id)]  # type: ignore[arg-type]
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
