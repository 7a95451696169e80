"""Connection-level reliability on real servers: stalls, flushes, unix sockets, memory limits.

Faults are real: a stall is ``DEBUG SLEEP`` sent on another connection (the server blocks,
the client's socket timeout fires), a flush is ``FLUSHALL``, memory exhaustion is
``CONFIG SET maxmemory``. They run on a server of this module (``faults``), never on the
session's shared one. Kill/restart tests live in ``test_faults_restart.py``.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import redis.connection
from pynenc import Pynenc, PynencBuilder
from pynenc.call import Call
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.dist_invocation import DistributedInvocation, TaskInvocation
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.runner.runner_context import RunnerContext
from pynenc.state_backend.base_state_backend import InvocationHistory

from pynenc_redis_stack.broker.broker import purge_broker_keys
from pynenc_redis_stack.core import query
from pynenc_redis_stack.core.client import is_repeatable
from pynenc_redis_stack.core.conf import ConfigStateBackendRedisStack
from pynenc_redis_stack.core.connection import get_client
from pynenc_redis_stack.core.errors import (
    CursorReadError,
    IndexDefinitionMismatchError,
    ServerOutOfMemoryError,
)
from pynenc_redis_stack.core.keys import Namespace
from pynenc_redis_stack.core.reads import fetch_all, fetch_complete
from pynenc_redis_stack.core.schema import load_schemas
from pynenc_redis_stack.server import EmbeddedRedisStack
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
from pynenc_redis_stack.state_backend.scripts import HistoryBatch
from tests.conftest import unique_app_id

pytestmark = pytest.mark.faults

STALL_SECONDS = 1.0
BASE = datetime(2025, 7, 1, 9, 0, 0, tzinfo=UTC)
SOCKET_TIMEOUT = 0.5
"""A command sent to the stalled server times out (0.5 s) while the server sleeps (1 s); a
retry sent right then gets its answer before its own timeout (the server wakes first)."""

ROWS = 300
BATCH = 100


def add(x: int, y: int) -> int:
    """A task body; registered on each test's app."""
    return x + y


@dataclass
class FaultServer:
    server: EmbeddedRedisStack
    url: str
    unix_socket: Path

    def admin(self, timeout: float = 10.0) -> redis.Redis:
        return redis.Redis.from_url(self.url, protocol=2, decode_responses=True, socket_timeout=timeout)


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultServer]:
    """A server of this module: DEBUG allowed from localhost, also listening on a unix socket."""
    # Short path: a unix socket path is limited to ~107 bytes.
    with tempfile.TemporaryDirectory(prefix="prs-faults-") as data_dir:
        socket_path = Path(data_dir) / "redis.sock"
        server = EmbeddedRedisStack(
            Path(data_dir),
            persistent=False,
            server_args=(
                "--enable-debug-command", "local",
                "--unixsocket", str(socket_path),
                "--unixsocketperm", "700",
            ),
        )  # fmt: skip
        url = server.start()
        try:
            yield FaultServer(server, url, socket_path)
        finally:
            server.stop()


def _ping_times_out(faults: FaultServer, timeout: float) -> bool:
    probe = faults.admin(timeout=timeout)
    try:
        probe.ping()
    except redis.TimeoutError:
        return True
    finally:
        probe.close()
    return False


def stall(faults: FaultServer, seconds: float = STALL_SECONDS) -> threading.Thread:
    """Block the server for ``seconds`` (``DEBUG SLEEP`` on its own connection); return once it
    is blocked, i.e. once a PING on a third connection gets no answer within 50 ms, then none
    within 200 ms either (on a loaded machine one slow PING happens without any sleep)."""

    def sleep() -> None:
        with faults.admin() as client:
            client.execute_command("DEBUG", "SLEEP", str(seconds))

    sleeper = threading.Thread(target=sleep, daemon=True)
    sleeper.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _ping_times_out(faults, 0.05) and _ping_times_out(faults, 0.2):
            return sleeper
    raise AssertionError("the server never blocked on DEBUG SLEEP")


def _backend(url: str, app_id: str, **config: Any) -> RedisStackStateBackend:
    settings: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "max_connection_attempts": 4,
        "redis_stack_batch_size": BATCH,
        **config,
    }
    app = PynencBuilder().app_id(app_id).memory().redis_stack(url=url).custom_config(**settings).build()
    backend: RedisStackStateBackend = app.state_backend
    return backend


def _invocations(
    app: Pynenc, count: int, parent: str = "the-parent"
) -> list[DistributedInvocation[Any, Any]]:
    task = app.task(add)
    return [
        TaskInvocation(
            call=Call(task),
            invocation_id=InvocationId(f"inv-{n:04d}"),
            parent_invocation_id=InvocationId(parent),
            workflow=None,
            stored_in_backend=True,
        )
        for n in range(count)
    ]


def _store(backend: RedisStackStateBackend, count: int) -> set[str]:
    invocations = _invocations(backend.app, count)
    backend._upsert_invocations([(i.to_dto(), i.call.to_dto()) for i in invocations])
    return {str(i.invocation_id) for i in invocations}


def _context() -> RunnerContext:
    return RunnerContext(
        runner_cls="TestRunner", runner_id="r-1", parent_ctx=None, pid=1, hostname="h", thread_id=1
    )


def _calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


@pytest.fixture
def loaded(request: pytest.FixtureRequest, faults: FaultServer) -> tuple[RedisStackStateBackend, set[str]]:
    """300 children of ``the-parent`` on the fault server, read 100 per cursor batch."""
    backend = _backend(faults.url, unique_app_id(request))
    return backend, _store(backend, ROWS)


# -- 1. what may be sent twice ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "repeatable"),
    [
        (("JSON.GET", "k"), True),
        (("JSON.MGET", "a", "b", "$"), True),
        (("JSON.SET", "k", "$", "{}"), True),
        (("JSON.MERGE", "k", "$", "{}"), True),
        (("FT.SEARCH", "idx", "*"), True),
        (("FT.AGGREGATE", "idx", "*", "TIMEOUT", "0"), True),
        (("FT.AGGREGATE", "idx", "*", "WITHCURSOR", "COUNT", "100"), False),
        (("FT.CURSOR", "READ", "idx", "123"), False),
        (("INCR", "k"), False),
        (("SET", "lock", "me", "NX", "PX", "100"), False),
        (("EVALSHA", HistoryBatch.script.sha, "1", "k"), True),
        (("EVALSHA", "0" * 40, "1", "k"), False),
        (("FT.CREATE", "idx"), False),
    ],
)
def test_only_commands_safe_to_repeat_are_sent_again(command: tuple[str, ...], repeatable: bool) -> None:
    assert is_repeatable(command) is repeatable


def _children_request(backend: RedisStackStateBackend) -> query.Aggregate:
    """The children of ``the-parent`` as a cursor-streamed aggregate (lookups whose answer
    exceeds one FT.SEARCH reply stream this way)."""
    spec = backend.schemas.invocations
    return query.Aggregate(
        backend.namespace.alias(spec),
        query.where(spec, backend.app.app_id, parent_invocation_id="the-parent"),
        query.load_fields("invocation_id"),
    )


def test_a_stalled_cursor_read_fails_loudly_instead_of_skipping_a_batch(
    loaded: tuple[RedisStackStateBackend, set[str]], faults: FaultServer
) -> None:
    backend, ids = loaded
    stream = (row["invocation_id"] for row in fetch_all(backend.client, _children_request(backend), BATCH))
    first = set(islice(stream, BATCH))  # the first batch; the cursor holds the rest
    sleeper = stall(faults)

    with pytest.raises(CursorReadError, match="not the whole answer") as caught:
        first.update(stream)

    sleeper.join()
    assert isinstance(caught.value.__cause__, redis.TimeoutError)
    assert len(first) == BATCH and first <= ids


def test_a_stalled_first_cursor_query_restarts_and_returns_every_row_once(
    loaded: tuple[RedisStackStateBackend, set[str]], faults: FaultServer
) -> None:
    backend, ids = loaded
    admin = faults.admin()
    aggregates = _calls(admin, "FT.AGGREGATE")
    sleeper = stall(faults)

    children = [row["invocation_id"] for row in fetch_all(backend.client, _children_request(backend), BATCH)]

    sleeper.join()
    assert sorted(children) == sorted(ids)  # every row, none twice
    assert _calls(admin, "FT.AGGREGATE") - aggregates >= 2  # the stalled one, then the restart


def test_a_stalled_children_lookup_is_sent_again_and_answers_whole(
    loaded: tuple[RedisStackStateBackend, set[str]], faults: FaultServer
) -> None:
    """Children come from one ``FT.SEARCH`` when they fit one reply, a read: sent again."""
    backend, ids = loaded
    list(backend.get_child_invocations(InvocationId("the-parent")))
    admin = faults.admin()
    reads = _calls(admin, "FT.SEARCH")
    sleeper = stall(faults)

    children = [str(i) for i in backend.get_child_invocations(InvocationId("the-parent"))]

    sleeper.join()
    assert sorted(children) == sorted(ids)
    assert _calls(admin, "FT.SEARCH") - reads >= 2  # the stalled one, then the re-send


def test_a_stalled_invocation_read_is_sent_again(
    loaded: tuple[RedisStackStateBackend, set[str]], faults: FaultServer
) -> None:
    """``get_invocation`` is one ``JSON.GET``; a timed-out first attempt goes through the
    retry policy."""
    backend, ids = loaded
    invocation_id = InvocationId(min(ids))
    expected = backend._get_invocation(invocation_id)
    admin = faults.admin()
    reads = _calls(admin, "json.get")
    sleeper = stall(faults)

    found = backend.get_invocation(invocation_id)

    sleeper.join()
    assert expected is not None
    assert (found.to_dto(), found.call.to_dto()) == expected
    assert _calls(admin, "json.get") - reads >= 2  # the stalled one, then the re-send


def test_a_stalled_invocation_read_without_retries_fails(
    request: pytest.FixtureRequest, faults: FaultServer
) -> None:
    backend = _backend(faults.url, unique_app_id(request), max_connection_attempts=1)
    invocation_id = InvocationId(min(_store(backend, 1)))
    sleeper = stall(faults)

    with pytest.raises(redis.TimeoutError):
        backend._get_invocation(invocation_id)

    sleeper.join()
    assert backend._get_invocation(invocation_id) is not None  # the pool replaced the dropped connection


def test_a_refused_invocation_read_raises_the_server_error_and_frees_its_connection(
    request: pytest.FixtureRequest, faults: FaultServer
) -> None:
    """A server error on the read (a string where the invocation document belongs) is raised
    as is, and its connection goes back to the pool: with a pool of one connection, the next
    commands still get it."""
    backend = _backend(faults.url, unique_app_id(request), redis_pool_max_connections=1)
    stored = InvocationId(min(_store(backend, 1)))
    backend.client.set(backend.keys.invocation("not-a-document"), "a string")

    for _ in range(3):
        with pytest.raises(redis.ResponseError):
            backend._get_invocation(InvocationId("not-a-document"))

    assert backend._get_invocation(stored) is not None
    assert backend.client.ping()


def test_a_whole_answer_restarts_after_a_stalled_cursor_read(
    loaded: tuple[RedisStackStateBackend, set[str]], faults: FaultServer
) -> None:
    """What prune and discover_app_infos use: the lookup starts again instead of failing."""
    backend, ids = loaded
    client = backend.client
    spec = backend.schemas.invocations
    request = query.Aggregate(
        backend.namespace.alias(spec),
        query.where(spec, backend.app.app_id, parent_invocation_id="the-parent"),
        query.load_fields("invocation_id"),
    )
    # Times the real stall: just before the first cursor read is sent.
    original = client.execute_command
    stalled: list[threading.Thread] = []

    def stall_first_read(*args: Any, **options: Any) -> Any:
        if args[0] == "FT.CURSOR" and args[1] == "READ" and not stalled:
            stalled.append(stall(faults))
        return original(*args, **options)

    client.execute_command = stall_first_read  # type: ignore[method-assign]

    rows = fetch_complete(client, request, BATCH)

    stalled[0].join()
    assert sorted(row["invocation_id"] for row in rows) == sorted(ids)


def test_a_stalled_time_range_page_is_sent_again_and_the_range_stays_whole(
    request: pytest.FixtureRequest, faults: FaultServer
) -> None:
    """Each page of a time range is one ``FT.AGGREGATE`` without a cursor, a read: a page that
    stalls mid-scan is sent again, and every entry comes once, in order."""
    backend = _backend(faults.url, unique_app_id(request))
    moments = [BASE + timedelta(microseconds=n // 3) for n in range(3 * BATCH + 7)]  # ties in threes
    for n, moment in enumerate(moments):
        history = InvocationHistory(
            InvocationId(f"inv-{n % 5}"),
            InvocationStatusRecord(InvocationStatus.RUNNING, "r", moment),
            f"rc-{n}",
        )
        history._timestamp = moment
        backend._add_histories([InvocationId(f"inv-{n % 5}")], history)
    admin = faults.admin()
    pages = backend.iter_history_in_timerange(BASE, BASE + timedelta(days=1), batch_size=BATCH)
    next(pages)
    reads = _calls(admin, "FT.AGGREGATE")
    unstalled = [entry for page in pages for entry in page]
    needed = _calls(admin, "FT.AGGREGATE") - reads  # the pages after the first, undisturbed
    pages = backend.iter_history_in_timerange(BASE, BASE + timedelta(days=1), batch_size=BATCH)
    first = next(pages)
    reads = _calls(admin, "FT.AGGREGATE")
    sleeper = stall(faults)

    rest = [entry for page in pages for entry in page]

    sleeper.join()
    assert [h.runner_context_id for h in [*first, *rest]] == [f"rc-{n}" for n in range(len(moments))]
    assert len(rest) == len(unstalled)
    assert _calls(admin, "FT.AGGREGATE") - reads == needed + 1  # one page sent twice


def test_a_stalled_history_write_is_stored_once(request: pytest.FixtureRequest, faults: FaultServer) -> None:
    """The history script is re-sent after the timeout; the re-send finds its entries and does
    nothing, so no entry is stored twice and each keeps the seq (arrival stamp) it was sent with."""
    backend = _backend(faults.url, unique_app_id(request))
    invocations = _invocations(backend.app, 50)
    backend._upsert_invocations([(i.to_dto(), i.call.to_dto()) for i in invocations])
    context = _context()
    backend.add_histories(invocations[:1], InvocationStatusRecord(InvocationStatus.REGISTERED), context)
    sleeper = stall(faults)

    backend.add_histories(invocations, InvocationStatusRecord(InvocationStatus.PENDING), context)

    sleeper.join()
    for invocation in invocations:
        statuses = [h.status_record.status for h in backend.get_history(invocation.invocation_id)]
        assert statuses.count(InvocationStatus.PENDING) == 1
        assert statuses[-1] == InvocationStatus.PENDING


def test_a_resent_history_batch_changes_nothing(request: pytest.FixtureRequest, faults: FaultServer) -> None:
    backend = _backend(faults.url, unique_app_id(request))
    invocation = _invocations(backend.app, 1)[0]
    batch = backend._history_batch(
        [
            _history(invocation.invocation_id, InvocationStatus.REGISTERED),
            _history(invocation.invocation_id, InvocationStatus.PENDING),
        ]
    )
    client = backend.client
    batch.run_in(client.pipeline(transaction=False))
    entry_keys = [key for keys, _args in batch.calls.values() for key in keys[1::2]]  # (invocation, entry)
    entries = {key: client.execute_command("JSON.GET", key) for key in entry_keys}
    document = client.execute_command("JSON.GET", backend.keys.invocation(invocation.invocation_id))

    batch.run_in(client.pipeline(transaction=False))  # what a re-send after a lost reply does

    assert {key: client.execute_command("JSON.GET", key) for key in entry_keys} == entries
    assert client.execute_command("JSON.GET", backend.keys.invocation(invocation.invocation_id)) == document
    assert len(backend.get_history(invocation.invocation_id)) == 2


def _history(invocation_id: InvocationId, status: InvocationStatus) -> InvocationHistory:
    return InvocationHistory(
        invocation_id=invocation_id,
        status_record=InvocationStatusRecord(status),
        runner_context_id="r-1",
    )


def test_a_stalled_upsert_transaction_is_sent_again_whole(
    request: pytest.FixtureRequest, faults: FaultServer
) -> None:
    backend = _backend(faults.url, unique_app_id(request))
    backend.get_history(InvocationId("warm-up"))
    sleeper = stall(faults)

    ids = _store(backend, 50)

    sleeper.join()
    assert {str(i) for i in backend.get_child_invocations(InvocationId("the-parent"))} == ids


def test_a_stalled_watched_transaction_is_not_sent_again_without_its_watch(
    request: pytest.FixtureRequest, faults: FaultServer
) -> None:
    """The failed EXEC ended the WATCH, so its commands must not be re-sent unwatched: redis-py
    turns the timeout into a WatchError, which the retry policy does not handle."""
    client = _backend(faults.url, unique_app_id(request)).client
    watched = f"{unique_app_id(request)}:watched"
    client.set(watched, "1")
    pipe = client.pipeline(transaction=True)
    pipe.watch(watched)
    pipe.multi()
    pipe.unlink(watched)
    unlinks = _calls(faults.admin(), "unlink")
    sleeper = stall(faults)

    with pytest.raises(redis.WatchError):
        pipe.execute()

    sleeper.join()
    assert _calls(faults.admin(), "unlink") - unlinks <= 1


def test_a_stalled_broker_purge_starts_over_from_its_watch(
    request: pytest.FixtureRequest, faults: FaultServer
) -> None:
    """A timeout on the watching connection (its WATCH or the SMEMBERS of the queue names)
    starts the whole transaction over, so nothing runs unwatched and nothing is left."""
    backend = _backend(faults.url, unique_app_id(request))
    keys = backend.keys
    for queue in ("q1", "q2"):
        backend.client.sadd(keys.broker_queues(), queue)
        backend.client.zadd(keys.broker_queue(queue), {f"1:{queue}-invocation": 0})
    sleeper = stall(faults)

    purge_broker_keys(backend.client, keys)

    sleeper.join()
    assert backend.client.exists(keys.broker_queues(), keys.broker_queue("q1"), keys.broker_queue("q2")) == 0


# -- 2. self-healing indexes -----------------------------------------------------------------


def test_after_a_flush_the_indexes_are_recreated_and_the_loss_reported(
    request: pytest.FixtureRequest, faults: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    backend = _backend(faults.url, unique_app_id(request))
    _store(backend, 3)
    admin = faults.admin()
    admin.flushall()
    written_after_flush = _store(backend, 2)  # documents without an index: backfilled on creation

    with caplog.at_level(logging.WARNING, logger="pynenc_redis_stack.state_backend.backend"):
        # an index query
        from_index = {str(i) for i in backend.get_child_invocations(InvocationId("the-parent"))}

    assert from_index == written_after_flush
    assert {str(i) for i in backend.get_child_invocations(InvocationId("the-parent"))} == written_after_flush
    assert len(admin.execute_command("FT._LIST")) == len(load_schemas().all())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "were missing" in warnings[0] and "may be lost" in warnings[0]
    assert f"{backend.namespace.namespace}:idx:invocations:v" in warnings[0]


def test_after_a_flush_without_index_creation_the_error_names_migrate(
    request: pytest.FixtureRequest, faults: FaultServer
) -> None:
    backend = _backend(faults.url, unique_app_id(request))
    backend.get_history(InvocationId("warm-up"))
    faults.admin().flushall()
    backend.conf.redis_stack_create_indexes = False

    with pytest.raises(IndexDefinitionMismatchError, match="pynenc-redis-stack index migrate"):
        list(backend.get_child_invocations(InvocationId("the-parent")))

    assert faults.admin().execute_command("FT._LIST") == []


def test_the_hot_path_does_not_check_indexes(request: pytest.FixtureRequest, faults: FaultServer) -> None:
    backend = _backend(faults.url, unique_app_id(request))
    _store(backend, 3)
    list(backend.get_child_invocations(InvocationId("the-parent")))
    admin = faults.admin()
    before = admin.info("commandstats")

    list(backend.get_child_invocations(InvocationId("the-parent")))  # an index query

    after = admin.info("commandstats")
    changed = {
        name.removeprefix("cmdstat_").lower()
        for name, values in after.items()
        if name != "cmdstat_info" and values["calls"] != before.get(name, {}).get("calls")
    }
    assert changed == {"ft.search"}  # no FT.INFO or FT._LIST


# -- 3. connection options -------------------------------------------------------------------


def test_a_unix_socket_url_works(request: pytest.FixtureRequest, faults: FaultServer) -> None:
    password = urlsplit(faults.url).password
    backend = _backend(f"unix://default:{password}@{faults.unix_socket}?db=0", unique_app_id(request))

    ids = _store(backend, 5)

    assert {str(i) for i in backend.get_child_invocations(InvocationId("the-parent"))} == ids
    assert backend.client.connection_pool.connection_class is redis.UnixDomainSocketConnection


def test_max_connection_attempts_bounds_the_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens on the port: exactly ``max_connection_attempts`` connections are tried."""
    import socket

    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    attempts: list[int] = []
    original: Callable[..., Any] = redis.connection.Connection._connect

    def counting_connect(self: Any) -> Any:
        attempts.append(1)
        return original(self)

    monkeypatch.setattr(redis.connection.Connection, "_connect", counting_connect)
    conf = ConfigStateBackendRedisStack(
        config_values={
            "redis_stack_url": f"redis://127.0.0.1:{port}/0",
            "max_connection_attempts": 5,
            "socket_connect_timeout": 0.5,
        }
    )

    with pytest.raises(redis.ConnectionError):
        get_client(conf)

    assert len(attempts) == 5


def test_health_check_interval_is_the_connections(faults: FaultServer) -> None:
    conf = ConfigStateBackendRedisStack(
        config_values={"redis_stack_url": faults.url, "health_check_interval": 7}
    )

    client = get_client(conf)

    assert client.connection_pool.connection_kwargs["health_check_interval"] == 7
    assert client.ping()


# -- 5. maxmemory reached --------------------------------------------------------------------


def test_maxmemory_reached_is_a_clear_error_and_nothing_is_half_written(
    request: pytest.FixtureRequest, faults: FaultServer
) -> None:
    backend = _backend(faults.url, unique_app_id(request))
    backend.get_history(InvocationId("warm-up"))
    invocations = _invocations(backend.app, 20)
    admin = faults.admin()
    context = _context()
    backend.add_histories(invocations[:1], InvocationStatusRecord(InvocationStatus.REGISTERED), context)
    admin.unlink(backend.keys.invocation(invocations[0].invocation_id))
    entries = [(i.to_dto(), i.call.to_dto()) for i in invocations]

    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", "1")
    try:
        with pytest.raises(ServerOutOfMemoryError, match=r"maxmemory.*Nothing of this write was stored"):
            backend._upsert_invocations(entries)
        with pytest.raises(ServerOutOfMemoryError, match="prune"):
            backend.add_histories(invocations, InvocationStatusRecord(InvocationStatus.PENDING), context)
    finally:
        admin.config_set("maxmemory", "0")

    assert admin.exists(*(backend.keys.invocation(i.invocation_id) for i in invocations)) == 0
    assert [h.status_record.status for h in backend.get_history(invocations[0].invocation_id)] == [
        InvocationStatus.REGISTERED
    ]


def test_a_pipeline_that_could_not_take_a_connection_is_sent_again_once(
    request: pytest.FixtureRequest, faults: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py raises a failed connection checkout (a Sentinel between masters) before it
    resets the pipeline: the re-send must not queue every command a second time."""
    client = _backend(faults.url, unique_app_id(request)).client
    key = f"{unique_app_id(request)}:counted"
    pool = client.connection_pool
    take = pool.get_connection
    failures = [redis.ConnectionError("no master to connect to yet")]

    def get_connection(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return take(*args, **kwargs)

    monkeypatch.setattr(pool, "get_connection", get_connection)
    pipe = client.pipeline(transaction=False)
    pipe.hset(key, "field", "1")  # repeatable commands only: what the client sends again
    pipe.hget(key, "field")
    assert pipe.execute() == [1, "1"]
    assert not failures
