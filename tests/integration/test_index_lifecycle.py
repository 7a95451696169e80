"""``pynenc-redis-stack index status|migrate|drop`` against the session's Redis Stack.

Every test works in a namespace of its own (``redis_stack_namespace``), so its indexes,
documents and lock never meet another test's; the fixture drops its indexes without ``DD``
and unlinks its documents by prefix (never ``FLUSHDB``, which would delete every index).
Concurrent runs, writers and readers are separate processes (``spawn``), as they would be in
a deployment.
"""

from __future__ import annotations

import dataclasses
import io
import json
import multiprocessing
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import pytest
import redis
from pynenc import Pynenc
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO

from pynenc_redis_stack.admin import index_migrate, index_status, load_config
from pynenc_redis_stack.cli.index_commands import format_migration
from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.cli.progress import ProgressBar
from pynenc_redis_stack.core import codec
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.command_line import redis_cli_line
from pynenc_redis_stack.core.conf import ConfigStateBackendRedisStack
from pynenc_redis_stack.core.errors import LockLostError, LockTimeoutError
from pynenc_redis_stack.core.indexes import Action, IndexState, LifecycleLock, create_command
from pynenc_redis_stack.core.indexes.executor import index_info, is_indexing, open_cursors, pairs
from pynenc_redis_stack.core.keys import Namespace
from pynenc_redis_stack.core.schema import FieldSpec, IndexSpec, all_specs, load_schemas, schema_dir
from pynenc_redis_stack.state_backend import documents
from tests.conftest import RedisCli

SPAWN = multiprocessing.get_context("spawn")
TASK = TaskId("tests.lifecycle", "work")
WAIT = 60.0
"""Deadline (seconds) of every poll in this module; a healthy run needs a fraction of it."""


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def redis_stack_namespace(redis_client: redis.Redis) -> Iterator[str]:
    """A namespace no other test uses; its indexes and documents are removed afterwards."""
    namespace = f"t-idx-{uuid.uuid4().hex[:10]}"
    yield namespace
    for name in run(redis_client, "FT._LIST"):
        if str(name).startswith(f"{namespace}:"):
            run(redis_client, "FT.DROPINDEX", name)  # without DD: documents go below, by prefix
    batch = []
    for key in redis_client.scan_iter(match=f"{namespace}:*", count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            redis_client.unlink(*batch)
            batch = []
    if batch:
        redis_client.unlink(*batch)


@pytest.fixture
def conf(redis_url: str, redis_stack_namespace: str) -> ConfigStateBackendRedisStack:
    return load_config(url=redis_url, namespace=redis_stack_namespace)


def v2_specs() -> list[IndexSpec]:
    """Every real schema file, with ``invocations`` at version 2 and one more tag field."""
    current = load_schemas().invocations
    v2 = dataclasses.replace(
        current, version=2, fields=(*current.fields, FieldSpec(name="region", type="tag", path="$.region"))
    )
    return [v2 if spec is current else spec for spec in all_specs()]


def ours(client: redis.Redis, namespace: str) -> list[str]:
    """Physical indexes of ``namespace`` (FT._LIST), sorted."""
    return sorted(str(name) for name in run(client, "FT._LIST") if str(name).startswith(f"{namespace}:"))


def expected_indexes(namespace: str, specs: Sequence[IndexSpec]) -> list[str]:
    return sorted(Namespace(namespace).physical_index(spec) for spec in specs)


def command_calls(client: redis.Redis, *commands: str) -> dict[str, int]:
    """Calls per command since the server started (INFO commandstats)."""
    stats = client.info("commandstats")
    return {command: int(stats.get(f"cmdstat_{command}", {}).get("calls", 0)) for command in commands}


def invocation_json(app_id: str, invocation_id: str, parent: str, region: str) -> str:
    """A valid invocation document, as the backend writes it, plus the v2 ``region`` field."""
    call_id = CallId(task_id=TASK, args_id=f"args-{invocation_id}")
    invocation = InvocationDTO(InvocationId(invocation_id), call_id, None, InvocationId(parent))
    document = documents.invocation_document(app_id, invocation, CallDTO(call_id, {"n": "1"}))
    document["serialized_arguments"] = {"n": "1"}
    document["region"] = region
    return codec.dumps(codec.validated(load_schemas().invocations, document))


def write_invocations(client: redis.Redis, namespace: str, app_id: str, count: int, parents: int) -> None:
    """Write ``count`` invocations ``inv-<i>`` whose parent is ``p<i % parents>``, pipelined."""
    keys = Namespace(namespace).for_app(app_id)
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        body = invocation_json(app_id, f"inv-{i}", f"p{i % parents}", f"r{i % 4}")
        run(pipe, "JSON.SET", keys.invocation(f"inv-{i}"), "$", body)
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()


def count_keys(client: redis.Redis, pattern: str) -> int:
    return sum(1 for _ in client.scan_iter(match=pattern, count=10_000))


def poll(condition: Callable[[], bool], what: str, deadline: float = WAIT, interval: float = 0.02) -> None:
    """Wait until ``condition()`` holds; fail the test naming ``what`` after ``deadline`` s."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out after {deadline} s waiting for {what}")
        time.sleep(interval)


def snapshot(client: redis.Redis, namespace: str, specs: Sequence[IndexSpec]) -> dict[str, Any]:
    """Everything a migration decides: physical indexes, where each alias points, definitions."""
    state: dict[str, Any] = {"indexes": ours(client, namespace)}
    for spec in specs:
        info = index_info(client, Namespace(namespace).alias(spec))
        assert info is not None, f"alias of {spec.name} is missing"
        state[spec.name] = (
            info["index_name"],
            sorted(map(str, info["attributes"])),
            pairs(info["index_definition"])["prefixes"],
            info["num_docs"],
        )
    return state


def replay(client: redis.Redis, lines: list[str]) -> None:
    """Execute ``--dry-run`` output as an operator pastes it: each command line through the
    real redis-cli binary, each ``# wait until`` line honoured by polling FT.INFO."""
    cli = RedisCli(_url_of(client))
    for line in lines:
        if not line.startswith("#"):
            cli(line)
            continue
        index = line.split()[4]
        if "cursor_stats" in line:
            poll(
                lambda index=index: open_cursors(index_info(client, index) or {}) == 0,  # type: ignore[misc]
                f"cursors of {index}",
            )
        else:
            poll(lambda index=index: not is_indexing(index_info(client, index) or {}), f"backfill of {index}")  # type: ignore[misc]


def _url_of(client: redis.Redis) -> str:
    kwargs = client.get_connection_kwargs()
    auth = f"{kwargs.get('username') or 'default'}:{kwargs['password']}@" if kwargs.get("password") else ""
    return f"redis://{auth}{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


# -- status, migrate, idempotence ----------------------------------------------------------


def test_status_of_empty_namespace_then_migrate_then_nothing_to_do(
    redis_client: redis.Redis,
    redis_stack_namespace: str,
    conf: ConfigStateBackendRedisStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ns = redis_stack_namespace
    specs = all_specs()  # every component's indexes
    args = ["--namespace", ns]

    assert main(["index", "status", *args]) == 1
    out = capsys.readouterr().out.splitlines()
    width = max(len(f"{ns}:{s.name}") for s in specs)
    assert out[0] == f"{'ALIAS'.ljust(width)}  INDEX  FILE  STATE    DOCS  FAILURES  DETAIL"
    assert out[1:] == [
        f"{f'{ns}:{s.name}'.ljust(width)}  -      v{s.version}    missing     -         -" for s in specs
    ]
    assert [s.state for s in index_status(conf)] == [IndexState.MISSING] * len(specs)
    assert ours(redis_client, ns) == []  # status only reads

    assert main(["index", "migrate", *args]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{ns}:{s.name}: created {ns}:idx:{s.name}:v{s.version}" for s in specs
    ]

    write_invocations(redis_client, ns, "app", 3, parents=1)
    assert main(["index", "status", *args]) == 0
    out = capsys.readouterr().out.splitlines()
    index_width = max(len(f"{ns}:idx:{s.name}:v{s.version}") for s in specs)
    assert (
        out[0] == f"{'ALIAS'.ljust(width)}  {'INDEX'.ljust(index_width)}  FILE  STATE  DOCS  FAILURES  DETAIL"
    )
    assert out[1:] == [
        f"{f'{ns}:{s.name}'.ljust(width)}  {f'{ns}:idx:{s.name}:v{s.version}'.ljust(index_width)}  v{s.version}    ok     "
        f"{3 if s.name == 'invocations' else 0:>4}         0"
        for s in specs
    ]
    assert main(["index", "status", "--json", *args]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["alias"], r["index"], r["state"], r["num_docs"]) for r in rows] == [
        (f"{ns}:{s.name}", f"{ns}:idx:{s.name}:v{s.version}", "ok", 3 if s.name == "invocations" else 0)
        for s in specs
    ]

    watched = ("FT.CREATE", "FT.ALIASADD", "FT.ALIASUPDATE", "FT.DROPINDEX")
    before = command_calls(redis_client, *watched)
    # the documents written raw are all there is: nothing to migrate, nothing to clean up
    assert main(["index", "migrate", *args]) == 0
    assert capsys.readouterr().out.splitlines() == ["nothing to do: every index is at its schema version"]
    assert main(["index", "migrate", *args]) == 0
    assert capsys.readouterr().out.splitlines() == ["nothing to do: every index is at its schema version"]
    assert command_calls(redis_client, *watched) == before
    assert ours(redis_client, ns) == expected_indexes(ns, specs)
    assert redis_client.exists(Namespace(ns).lifecycle_lock()) == 0  # released


# -- a schema change under load ------------------------------------------------------------

BASE_DOCS = 100_000
PARENTS = 100
WRITER_PARENT = "writer-parent"


def _writer(url: str, namespace: str, app_id: str, stop: Event) -> None:
    """Keep writing invocations of ``app_id`` (parent ``writer-parent``) until ``stop``; the
    counter key moves in the same transaction, after the documents."""
    client = redis.Redis.from_url(url, protocol=2, decode_responses=True)
    keys = Namespace(namespace).for_app(app_id)
    written = 0
    while not stop.is_set():
        pipe = client.pipeline(transaction=True)
        for i in range(written, written + 20):
            run(
                pipe,
                "JSON.SET",
                keys.invocation(f"w-{i}"),
                "$",
                invocation_json(app_id, f"w-{i}", WRITER_PARENT, "w"),
            )
        written += 20
        run(pipe, "SET", f"{namespace}:test:written", str(written))
        pipe.execute()
        stop.wait(0.01)  # a steady stream, not a flood that starves the backfill


def _querier(
    url: str, namespace: str, app_id: str, writer_app_id: str, stop: Event, done: Any, errors: Any
) -> None:
    """Query through the alias (the backend, cursors of 100 rows) until ``stop``; every answer
    must be complete: each parent's 1 000 children exactly, and at least every writer document
    acknowledged before the query started."""
    try:
        config = {
            "state_backend_cls": "RedisStackStateBackend",
            "redis_url": url,
            "redis_stack_namespace": namespace,
            "redis_stack_batch_size": 100,
        }
        backend = Pynenc(config_values={**config, "app_id": app_id}).state_backend
        writer_backend = Pynenc(config_values={**config, "app_id": writer_app_id}).state_backend
        client = redis.Redis.from_url(url, protocol=2, decode_responses=True)
        rounds = 0
        while not stop.is_set():
            parent = rounds % PARENTS
            children = {str(c) for c in backend.get_child_invocations(InvocationId(f"p{parent}"))}
            expected = {f"inv-{i}" for i in range(parent, BASE_DOCS, PARENTS)}
            if children != expected:
                raise AssertionError(f"p{parent}: {len(children)} children instead of {len(expected)}")
            acknowledged = int(client.get(f"{namespace}:test:written") or 0)
            seen = len(list(writer_backend.get_child_invocations(InvocationId(WRITER_PARENT))))
            if seen < acknowledged:
                raise AssertionError(f"writer documents: {seen} found, {acknowledged} acknowledged")
            rounds += 1
            with done.get_lock():
                done.value += 1
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def test_schema_change_migrates_100k_documents_while_writers_and_readers_run(
    request: pytest.FixtureRequest,
    redis_url: str,
    redis_client: redis.Redis,
    redis_stack_namespace: str,
    conf: ConfigStateBackendRedisStack,
) -> None:
    ns = redis_stack_namespace
    assert index_migrate(conf).ok
    write_invocations(redis_client, ns, "app", BASE_DOCS, PARENTS)
    stop, done, errors = SPAWN.Event(), SPAWN.Value("i", 0), SPAWN.Queue()
    writer = SPAWN.Process(target=_writer, args=(redis_url, ns, "writer", stop))
    querier = SPAWN.Process(target=_querier, args=(redis_url, ns, "app", "writer", stop, done, errors))
    writer.start()
    querier.start()
    try:
        # Both have used the v1 index (the querier's backend checked it) before anything changes.
        poll(lambda: done.value >= 2 and int(redis_client.get(f"{ns}:test:written") or 0) > 0, "workers")
        queries_before = done.value
        progress = io.StringIO()
        report = index_migrate(conf, specs=v2_specs(), progress=ProgressBar(progress, quiet_seconds=1.0))
        queries_during = done.value - queries_before
        poll(lambda: done.value >= queries_before + queries_during + 3, "queries after the swap")
    finally:
        stop.set()
        writer.join(WAIT)
        querier.join(WAIT)
    assert errors.empty(), errors.get()
    assert (writer.exitcode, querier.exitcode) == (0, 0)
    assert queries_during >= 5  # the readers really ran across the backfill and the swap

    [result] = [r for r in report.results if r.plan.action is not Action.NONE]
    assert (result.plan.action, result.error, result.warnings) == (Action.MIGRATE, None, [])
    assert report.created == [f"{ns}:idx:invocations:v2"]
    assert f"{ns}:idx:invocations:v2 [" in progress.getvalue() and "100%" in progress.getvalue()

    written = int(redis_client.get(f"{ns}:test:written") or 0)
    total = BASE_DOCS + written
    info = index_info(redis_client, f"{ns}:invocations")
    assert info is not None
    assert (info["index_name"], int(info["num_docs"]), int(info["hash_indexing_failures"])) == (
        f"{ns}:idx:invocations:v2",
        total,
        0,
    )
    assert ours(redis_client, ns) == expected_indexes(ns, v2_specs())  # v1 is gone
    assert count_keys(redis_client, f"{ns}:invocation:*") == total  # documents intact
    assert run(redis_client, "JSON.GET", Namespace(ns).for_app("app").invocation("inv-7")) == invocation_json(
        "app", "inv-7", "p7", "r3"
    )
    # The new field answers through the alias.
    reply = run(
        redis_client, "FT.SEARCH", f"{ns}:invocations", "@region:{r1}", "LIMIT", "0", "0", "DIALECT", "2"
    )
    assert reply[0] == BASE_DOCS // 4
    assert [s.state for s in index_status(conf, specs=v2_specs())] == [IndexState.OK] * len(all_specs())


# -- interrupted and concurrent runs -------------------------------------------------------


def _migrate_process(url: str, namespace: str, lock_ttl: float, start: Barrier | None, results: Any) -> None:
    """Run ``index migrate`` to the v2 specs in a process of its own; report what it did."""
    conf = load_config(url=url, namespace=namespace)
    if start is not None:
        start.wait()
    report = index_migrate(conf, specs=v2_specs(), lock_ttl=lock_ttl, poll_interval=0.05)
    results.put(
        {
            "created": report.created,
            "nothing_to_do": report.nothing_to_do,
            "ok": report.ok,
            "waited": report.lock_wait,
        }
    )


def test_killed_migration_resumes_and_leaves_nothing_behind(
    redis_url: str,
    redis_client: redis.Redis,
    redis_stack_namespace: str,
    conf: ConfigStateBackendRedisStack,
) -> None:
    ns = redis_stack_namespace
    new = f"{ns}:idx:invocations:v2"
    assert index_migrate(conf).ok
    write_invocations(redis_client, ns, "app", 60_000, PARENTS)
    results = SPAWN.Queue()
    victim = SPAWN.Process(target=_migrate_process, args=(redis_url, ns, 1.0, None, results))
    victim.start()
    try:
        poll(lambda: is_indexing(index_info(redis_client, new) or {}), f"{new} backfilling", interval=0.005)
    finally:
        victim.kill()  # SIGKILL: no cleanup runs, the lock is left to expire
        victim.join(WAIT)
    assert results.empty()
    status = {s.spec.name: s for s in index_status(conf, specs=v2_specs())}["invocations"]
    assert status.live_index == f"{ns}:idx:invocations:v1"  # readers still on the complete v1
    assert new in status.versions  # the killed run's index is there, not aliased

    calls = command_calls(redis_client, "FT.CREATE")
    report = index_migrate(conf, specs=v2_specs(), lock_ttl=10.0, poll_interval=0.05)
    [result] = [r for r in report.results if r.plan.action is not Action.NONE]
    assert (result.plan.action, result.plan.reused, result.error) == (Action.MIGRATE, True, None)
    assert report.created == [] and command_calls(redis_client, "FT.CREATE") == calls  # reused, not recreated
    assert ours(redis_client, ns) == expected_indexes(ns, v2_specs())
    info = index_info(redis_client, f"{ns}:invocations")
    assert info is not None and (info["index_name"], int(info["num_docs"])) == (new, 60_000)
    assert index_migrate(conf, specs=v2_specs()).nothing_to_do


def test_two_concurrent_migrations_create_the_new_index_once(
    redis_url: str,
    redis_client: redis.Redis,
    redis_stack_namespace: str,
    conf: ConfigStateBackendRedisStack,
) -> None:
    ns = redis_stack_namespace
    assert index_migrate(conf).ok
    write_invocations(redis_client, ns, "app", 40_000, PARENTS)
    start, results = SPAWN.Barrier(2), SPAWN.Queue()
    runs = [
        SPAWN.Process(target=_migrate_process, args=(redis_url, ns, 30.0, start, results)) for _ in range(2)
    ]
    calls = command_calls(redis_client, "FT.CREATE", "FT.ALIASUPDATE")
    for process in runs:
        process.start()
    for process in runs:
        process.join(WAIT)
    assert [process.exitcode for process in runs] == [0, 0]
    reports = sorted((results.get(timeout=WAIT) for _ in runs), key=lambda r: len(r["created"]))
    loser, winner = reports
    assert winner["created"] == [f"{ns}:idx:invocations:v2"] and winner["ok"]
    assert loser["created"] == [] and loser["nothing_to_do"] and loser["ok"]
    assert loser["waited"] > 0  # it found the lock taken, waited, then had nothing left to do
    after = command_calls(redis_client, "FT.CREATE", "FT.ALIASUPDATE")
    assert {command: after[command] - calls[command] for command in calls} == {
        "FT.CREATE": 1,
        "FT.ALIASUPDATE": 1,
    }
    assert ours(redis_client, ns) == expected_indexes(ns, v2_specs())


def test_a_held_lock_is_waited_for_then_reported_with_its_holder(
    redis_client: redis.Redis,
    redis_stack_namespace: str,
    conf: ConfigStateBackendRedisStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Another run holds the lock: the notice and the timeout name it; nothing is created."""
    ns = redis_stack_namespace
    key = Namespace(ns).lifecycle_lock()
    redis_client.set(key, "other-host:4242:abc", px=60_000)
    notices: list[str] = []
    with pytest.raises(LockTimeoutError) as raised:
        index_migrate(conf, lock_timeout=0.3, notify=notices.append)
    assert notices == [f"waiting for {key}, held by other-host:4242:abc (another migrate or drop is running)"]
    assert str(raised.value) == (
        f"{key} is still held by other-host:4242:abc after 0.3 s (another `index migrate` or "
        "`index drop` is running); nothing was changed. Run it again once that one is done."
    )
    assert ours(redis_client, ns) == []
    assert redis_client.get(key) == "other-host:4242:abc"  # theirs, untouched

    assert main(["index", "drop", "--yes", "--namespace", ns]) == 0  # nothing to drop: no lock needed
    assert main(["--traceback", "index", "migrate", "--namespace", ns, "--timeout", "0.3"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "LockTimeoutError" in err
    redis_client.delete(key)


def test_a_lock_taken_over_mid_run_stops_the_run(
    redis_client: redis.Redis, redis_stack_namespace: str
) -> None:
    """The lease expired and another run took it: the next refresh raises, and release leaves
    the other run's lock alone."""
    namespace = Namespace(redis_stack_namespace)
    lock = LifecycleLock(redis_client, namespace, ttl=0.03)
    assert lock.acquire(timeout=1.0) == pytest.approx(0.0, abs=1.0)
    assert redis_client.get(namespace.lifecycle_lock()) == lock.token
    redis_client.set(namespace.lifecycle_lock(), "the-next-run", px=60_000)
    end = time.monotonic() + WAIT
    with pytest.raises(LockLostError, match="Run migrate again: it resumes where this run stopped"):
        while time.monotonic() < end:  # refresh writes once a third of the ttl has passed
            lock.refresh()
    assert lock.release() is False
    assert redis_client.get(namespace.lifecycle_lock()) == "the-next-run"


# -- readers' cursors on the old index ------------------------------------------------------


def _open_cursor(client: redis.Redis, alias: str) -> int:
    """Start reading ``alias`` 10 rows at a time, as the backend's streamed lookups do."""
    reply = run(
        client, "FT.AGGREGATE", alias, "*", "LOAD", "1", "@invocation_id", "WITHCURSOR", "COUNT", "10"
    )
    return int(reply[1])


def test_old_index_is_kept_while_a_reader_has_a_cursor_on_it(
    redis_client: redis.Redis,
    redis_stack_namespace: str,
    conf: ConfigStateBackendRedisStack,
) -> None:
    ns = redis_stack_namespace
    old, new = f"{ns}:idx:invocations:v1", f"{ns}:idx:invocations:v2"
    assert index_migrate(conf).ok
    write_invocations(redis_client, ns, "app", 500, PARENTS)
    cursor = _open_cursor(redis_client, f"{ns}:invocations")

    report = index_migrate(conf, specs=v2_specs(), drain_timeout=0.5, poll_interval=0.05)
    [result] = [r for r in report.results if r.plan.action is not Action.NONE]
    assert result.ok and result.warnings == [
        f"1 cursor(s) still open on {old} after 0.5 s; it was kept so their readers do not fail. "
        "Run migrate again to drop it (idle cursors expire after 300 s)."
    ]
    assert format_migration(report)[:2] == [
        f"{ns}:invocations: migrated {old} -> {new}",
        f"{ns}:invocations: warning: {result.warnings[0]}",
    ]
    # The reader started on v1 finishes on v1, although the alias now serves v2.
    assert index_info(redis_client, f"{ns}:invocations")["index_name"] == new  # type: ignore[index]
    rows = 10
    while cursor:
        reply, cursor = run(redis_client, "FT.CURSOR", "READ", f"{ns}:invocations", str(cursor))
        rows += len(reply) - 1
    assert rows == 500
    status = {s.spec.name: s for s in index_status(conf, specs=v2_specs())}["invocations"]
    assert (status.state, status.detail) == (IndexState.OK, f"leftover {old} (migrate drops it)")

    again = index_migrate(conf, specs=v2_specs())
    assert [(r.plan.action, r.plan.drops) for r in again.results if r.plan.action is not Action.NONE] == [
        (Action.CLEANUP, (old,))
    ]
    assert ours(redis_client, ns) == expected_indexes(ns, v2_specs())


def test_sigterm_releases_the_lock_and_a_rerun_finishes(
    tmp_path: Path,
    redis_url: str,
    redis_client: redis.Redis,
    redis_stack_namespace: str,
    conf: ConfigStateBackendRedisStack,
) -> None:
    ns = redis_stack_namespace
    old, new = f"{ns}:idx:invocations:v1", f"{ns}:idx:invocations:v2"
    for source in schema_dir().glob("*.yaml"):
        text = source.read_text()
        if source.name == "invocations.yaml":
            text = text.replace("version: 1", "version: 2") + "  - {name: region, type: tag}\n"
        (tmp_path / source.name).write_text(text)
    assert index_migrate(conf).ok
    write_invocations(redis_client, ns, "app", 500, PARENTS)
    cursor = _open_cursor(redis_client, f"{ns}:invocations")  # holds the run in its drain wait
    command = [sys.executable, "-m", "pynenc_redis_stack.cli.main", "index", "migrate"]
    command += ["--url", redis_url, "--namespace", ns, "--schema-dir", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        poll(
            lambda: (index_info(redis_client, f"{ns}:invocations") or {}).get("index_name") == new,
            "the alias switch",
        )
        assert redis_client.get(Namespace(ns).lifecycle_lock()) is not None
        process.send_signal(signal.SIGTERM)
        process.wait(WAIT)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM
    assert redis_client.exists(Namespace(ns).lifecycle_lock()) == 0  # released on the way out
    assert ours(redis_client, ns) == sorted([*expected_indexes(ns, v2_specs()), old])  # v1 not dropped yet

    run(redis_client, "FT.CURSOR", "DEL", f"{ns}:invocations", str(cursor))
    assert main(["index", "migrate", "--namespace", ns, "--schema-dir", str(tmp_path)]) == 0
    assert ours(redis_client, ns) == expected_indexes(ns, v2_specs())


# -- drifted indexes -----------------------------------------------------------------------


def test_drifted_index_is_left_alone_unless_rebuild_is_asked(
    redis_client: redis.Redis,
    redis_stack_namespace: str,
    conf: ConfigStateBackendRedisStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ns = redis_stack_namespace
    namespace = Namespace(ns)
    spec = load_schemas().runner_contexts
    drifted = dataclasses.replace(spec, fields=tuple(f for f in spec.fields if f.name != "hostname"))
    run(redis_client, *create_command(namespace, drifted))
    run(redis_client, "FT.ALIASADD", namespace.alias(spec), namespace.physical_index(spec))
    old, rebuilt = f"{ns}:idx:runner-contexts:v1", f"{ns}:idx:runner-contexts:v1:r1"

    assert main(["index", "migrate", "--namespace", ns]) == 1  # the others are created, it is not
    out = capsys.readouterr().out
    assert (
        f"{ns}:runner-contexts: drifted (missing fields hostname); not touched: rerun with "
        "--rebuild-drifted to rebuild it as a fresh index and swap it in"
    ) in out.splitlines()
    assert index_info(redis_client, namespace.alias(spec))["index_name"] == old  # type: ignore[index]

    assert main(["index", "migrate", "--rebuild-drifted", "--namespace", ns]) == 0
    assert capsys.readouterr().out.splitlines()[2] == (
        f"{ns}:runner-contexts: rebuilt drifted {old} as {rebuilt}; dropped {old}"
    )
    statuses = index_status(conf)
    assert [s.state for s in statuses] == [IndexState.OK] * len(all_specs())
    assert {s.spec.name: s.live_index for s in statuses}["runner-contexts"] == rebuilt
    assert index_migrate(conf).nothing_to_do


# -- dry run --------------------------------------------------------------------------------


def test_dry_run_prints_exactly_what_migrate_sends(
    redis_client: redis.Redis,
    redis_stack_namespace: str,
    conf: ConfigStateBackendRedisStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ns = redis_stack_namespace
    namespace = Namespace(ns)
    v1 = list(all_specs())

    # From nothing: create + alias every index.
    assert main(["index", "migrate", "--dry-run", "--namespace", ns]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    expected: list[str] = []
    for spec in v1:
        expected += [
            redis_cli_line(create_command(namespace, spec)),
            f"# wait until FT.INFO {ns}:idx:{spec.name}:v{spec.version} shows indexing 0 and percent_indexed 1",
            f"FT.ALIASADD {ns}:{spec.name} {ns}:idx:{spec.name}:v{spec.version}",
        ]
    assert lines == expected
    assert lines[0].startswith(
        f"FT.CREATE {ns}:idx:invocations:v1 ON JSON PREFIX 1 {ns}:invocation: SCHEMA $.app_id AS app_id TAG CASESENSITIVE"
    )
    assert f"dry run: {2 * len(v1)} commands printed, nothing changed" in captured.err
    assert ours(redis_client, ns) == []
    replay(redis_client, lines)
    replayed = snapshot(redis_client, ns, v1)
    for name in ours(redis_client, ns):
        run(redis_client, "FT.DROPINDEX", name)
    report = index_migrate(conf)
    assert snapshot(redis_client, ns, v1) == replayed
    assert [redis_cli_line(args) for args in report.sent] == [
        line for line in lines if not line.startswith("#")
    ]

    # v1 -> v2 over documents: build beside, swap, drop the old one.
    write_invocations(redis_client, ns, "app", 2000, PARENTS)
    out = io.StringIO()
    plan = index_migrate(conf, specs=v2_specs(), dry_run=True, out=out)
    lines = out.getvalue().splitlines()
    v2 = v2_specs()[0]
    assert lines == [
        redis_cli_line(create_command(namespace, v2)),
        f"# wait until FT.INFO {ns}:idx:invocations:v2 shows indexing 0 and percent_indexed 1",
        f"FT.ALIASUPDATE {ns}:invocations {ns}:idx:invocations:v2",
        f"# wait until FT.INFO {ns}:idx:invocations:v1 shows cursor_stats index_total 0",
        f"FT.DROPINDEX {ns}:idx:invocations:v1",
    ]
    assert lines[0].endswith("$.status_ts AS status_ts NUMERIC SORTABLE $.region AS region TAG CASESENSITIVE")
    assert plan.dry_run and plan.created == [f"{ns}:idx:invocations:v2"]
    assert index_info(redis_client, f"{ns}:invocations")["index_name"] == f"{ns}:idx:invocations:v1"  # type: ignore[index]
    replay(redis_client, lines)
    replayed = snapshot(redis_client, ns, v2_specs())
    # Back to v1 (a downgrade is a migration too), then the real v1 -> v2.
    back = index_migrate(conf)
    assert [r.plan.action for r in back.results if r.plan.action is not Action.NONE] == [Action.MIGRATE]
    report = index_migrate(conf, specs=v2_specs())
    assert snapshot(redis_client, ns, v2_specs()) == replayed
    assert [redis_cli_line(args) for args in report.sent] == [
        line for line in lines if not line.startswith("#")
    ]


# -- drop -------------------------------------------------------------------------------------


def test_drop_asks_first_keeps_documents_unless_told(
    monkeypatch: pytest.MonkeyPatch,
    redis_client: redis.Redis,
    redis_stack_namespace: str,
    conf: ConfigStateBackendRedisStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ns = redis_stack_namespace
    namespace = Namespace(ns)
    invocations = load_schemas().invocations
    assert index_migrate(conf).ok
    # Another version of the same name, left over: drop removes it too.
    run(redis_client, *create_command(namespace, invocations, f"{ns}:idx:invocations:v0"))
    write_invocations(redis_client, ns, "app", 50, parents=5)
    everything = ours(redis_client, ns)
    assert len(everything) == len(all_specs()) + 1

    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["index", "drop", "--namespace", ns]) == 1
    err = capsys.readouterr().err
    assert f"About to drop, in namespace {ns!r} (documents are kept):" in err
    assert f"  {ns}:invocations: {ns}:idx:invocations:v0, {ns}:idx:invocations:v1" in err
    assert "cancelled; nothing was dropped" in err
    assert ours(redis_client, ns) == everything

    assert main(["index", "drop", "--yes", "--namespace", ns, "invocations"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{ns}:invocations: dropped {ns}:idx:invocations:v0, {ns}:idx:invocations:v1 (documents kept)"
    ]
    assert ours(redis_client, ns) == sorted(
        set(everything) - {f"{ns}:idx:invocations:v0", f"{ns}:idx:invocations:v1"}
    )
    assert index_info(redis_client, f"{ns}:invocations") is None  # the alias went with its index
    assert count_keys(redis_client, f"{ns}:invocation:*") == 50

    assert main(["index", "drop", "--yes", "--namespace", ns]) == 0
    assert ours(redis_client, ns) == []
    assert count_keys(redis_client, f"{ns}:invocation:*") == 50
    assert main(["index", "drop", "--yes", "--namespace", ns]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "nothing to drop"

    assert index_migrate(conf).ok  # rebuilt over the documents that were kept
    assert index_info(redis_client, f"{ns}:invocations")["num_docs"] == 50  # type: ignore[index]
    assert main(["index", "drop", "--yes", "--delete-documents", "--namespace", ns]) == 0
    captured = capsys.readouterr()
    assert "--delete-documents sends DD" in captured.err
    assert f"{ns}:invocations: dropped {ns}:idx:invocations:v1 (documents deleted)" in captured.out
    assert ours(redis_client, ns) == []
    assert count_keys(redis_client, f"{ns}:invocation:*") == 0


def test_drop_refuses_an_index_the_alias_points_to_that_is_not_ours(
    redis_client: redis.Redis,
    redis_stack_namespace: str,
    conf: ConfigStateBackendRedisStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Someone pointed our alias at an index of their own: drop changes nothing and says why;
    once the alias is detached, drop removes only our indexes and leaves theirs."""
    ns = redis_stack_namespace
    assert index_migrate(conf).ok
    foreign = f"{ns}:their-invocations"
    run(
        redis_client,
        "FT.CREATE",
        foreign,
        "ON",
        "JSON",
        "PREFIX",
        "1",
        f"{ns}:theirs:",
        "SCHEMA",
        "$.a",
        "AS",
        "a",
        "TAG",
    )
    run(redis_client, "FT.ALIASUPDATE", f"{ns}:invocations", foreign)
    before = ours(redis_client, ns)

    for extra in (["--dry-run"], ["--yes"]):
        assert main(["index", "drop", "--namespace", ns, *extra]) == 1
        err = capsys.readouterr().err
        assert (
            f"alias {ns}:invocations points to index {foreign!r}, which pynenc-redis-stack did not create"
            in err
        )
        assert f"named like {ns}:idx:invocations:v1" in err and "Nothing was dropped" in err
        assert ours(redis_client, ns) == before
        assert index_info(redis_client, f"{ns}:invocations")["index_name"] == foreign  # type: ignore[index]

    run(redis_client, "FT.ALIASDEL", f"{ns}:invocations")
    assert main(["index", "drop", "--yes", "--namespace", ns]) == 0
    out = capsys.readouterr().out
    assert f"{ns}:invocations: dropped {ns}:idx:invocations:v1 (documents kept)" in out
    assert ours(redis_client, ns) == [foreign]  # theirs is still there
