"""A server killed with ``kill -9`` mid-workload and restarted on the same port and directory.

Each test starts a server of its own (never the session's). A writer thread keeps writing
invocations with one history entry each and records the ones the backend acknowledged; the
backend is never told about the restart: it must reconnect by itself.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from pynenc import PynencBuilder
from pynenc.call import Call
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.dist_invocation import TaskInvocation
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.runner.runner_context import RunnerContext

from pynenc_redis_stack.core.errors import RedisStackError
from pynenc_redis_stack.server import EmbeddedRedisStack
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
from tests.conftest import unique_app_id

pytestmark = pytest.mark.faults

PARENT = InvocationId("the-parent")


def add(x: int, y: int) -> int:
    """A task body; registered on each test's app."""
    return x + y


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Writer(threading.Thread):
    """Writes invocation ``w-<n>`` (upsert, then a REGISTERED entry) until stopped.

    :ivar acknowledged: Ids whose two writes both returned without error.
    :ivar failures: Errors of writes that were not acknowledged (the server was down longer
        than the retries last).
    """

    def __init__(self, backend: RedisStackStateBackend) -> None:
        super().__init__(daemon=True)
        self.backend = backend
        self.task = backend.app.task(add)
        self.context = RunnerContext(
            runner_cls="TestRunner", runner_id="writer", parent_ctx=None, pid=1, hostname="h", thread_id=1
        )
        self.acknowledged: list[str] = []
        self.failures: list[BaseException] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            invocation = TaskInvocation(
                call=Call(self.task),
                invocation_id=InvocationId(f"w-{n:05d}"),
                parent_invocation_id=PARENT,
                workflow=None,
                stored_in_backend=True,
            )
            n += 1
            try:
                self.backend._upsert_invocations([(invocation.to_dto(), invocation.call.to_dto())])
                self.backend.add_histories(
                    [invocation], InvocationStatusRecord(InvocationStatus.REGISTERED), self.context
                )
            except (RedisStackError, redis.RedisError) as error:
                self.failures.append(error)
                continue
            self.acknowledged.append(str(invocation.invocation_id))

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="prs-restart-") as path:
        yield Path(path)


def _start(server: EmbeddedRedisStack, request: pytest.FixtureRequest) -> str:
    url = server.start()
    request.addfinalizer(server.stop)
    return url


def _backend(url: str, request: pytest.FixtureRequest) -> RedisStackStateBackend:
    app = (
        PynencBuilder()
        .app_id(unique_app_id(request))
        .memory()
        .redis_stack(url=url)
        .custom_config(socket_timeout=2.0, socket_connect_timeout=1.0, max_connection_attempts=12)
        .build()
    )
    backend: RedisStackStateBackend = app.state_backend
    backend.get_history(InvocationId("warm-up"))
    return backend


def _kill_and_restart(server: EmbeddedRedisStack, url: str) -> None:
    pid = server.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert server.start(port=_port(url)) == url


def _write(writer: Writer, count: int = 5) -> Writer:
    """Run ``writer`` until it has ``count`` acknowledged writes."""
    writer.start()
    try:
        wait_for(lambda: len(writer.acknowledged) >= count, f"{count} acknowledged writes")
    finally:
        writer.stop()
    return writer


def _children(backend: RedisStackStateBackend) -> set[str]:
    """The children, from the invocations index."""
    return {str(i) for i in backend.get_child_invocations(PARENT)}


def test_kill_9_with_appendfsync_always_keeps_every_acknowledged_write(
    request: pytest.FixtureRequest, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = EmbeddedRedisStack(data_dir, persistent=True, server_args=("--appendfsync", "always"))
    url = _start(server, request)
    backend = _backend(url, request)
    writer = Writer(backend)
    caplog.set_level(logging.WARNING, logger="pynenc_redis_stack")
    writer.start()
    try:
        wait_for(lambda: len(writer.acknowledged) >= 20, "writes before the kill")
        _kill_and_restart(server, url)
        acknowledged_at_restart = len(writer.acknowledged)
        wait_for(lambda: len(writer.acknowledged) >= acknowledged_at_restart + 20, "writes after the restart")
    finally:
        writer.stop()

    assert writer.failures == []  # the backend reconnected by itself within its retries
    client = backend.client
    for invocation_id in writer.acknowledged:
        assert client.exists(backend.keys.invocation(InvocationId(invocation_id)))
        statuses = [h.status_record.status for h in backend.get_history(InvocationId(invocation_id))]
        assert statuses == [InvocationStatus.REGISTERED]
    assert set(writer.acknowledged) <= _children(backend)  # the server indexed them while loading
    assert not [r for r in caplog.records if "were missing" in r.getMessage()]  # the indexes survived


def test_restart_without_persistence_recreates_the_indexes_and_reports_the_loss(
    request: pytest.FixtureRequest, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = EmbeddedRedisStack(data_dir, persistent=False)
    url = _start(server, request)
    backend = _backend(url, request)
    _write(Writer(backend))
    _kill_and_restart(server, url)

    with caplog.at_level(logging.WARNING, logger="pynenc_redis_stack"):
        children = _children(backend)

    assert children == set()  # everything was lost with the server's memory ...
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "were missing" in warnings[0] and "may be lost" in warnings[0]
    writer = _write(Writer(backend))  # ... and the backend works again, with its indexes
    assert _children(backend) >= set(writer.acknowledged)
