"""Hostile input: query injection, 10 MB payloads, invalid UTF-8, deep nesting.

Every answer is either correct or a clear error, and never holds another app's data. The
injection ids are used at once as invocation, parent, event, workflow, task, runner and
sub-invocation ids, and as app ids: a victim app ``other`` (the app the injections name)
holds the same ids, and each app must get back exactly its own documents.
(test_traps_*.py cover single special characters and look-alike app ids;
test_property_vs_mem.py random identifiers; this module the attacks themselves.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

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

from pynenc_redis_stack.core.errors import InvalidDocumentError, QueryError
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
from tests.conftest import unique_app_id

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

INJECTIONS = [
    "x} | @status:{*",
    "x} | @app_id:{*",
    "*",
    "\\",
    "\\\\",
    '"',
    "'",
    "$p0",
    "$",
    "@app_id:{other}",
    "@app_id:{other",
    "x) | (@app_id:{other})",
    "-@app_id:{other}",
    "other | *",
    "{other}",
    "other*",
    "%other%",
    "@__key",
    '") > 0 || contains(@s, "',
    '\\") > 0 || 1 || ("',
    "x\\} | @app_id:{other",
    "x}|@app_id:{other}|{y",
    "~^`",
    "*~^`*",
]
"""Ids that would inject clauses into a tag query, a FILTER expression or a glob if spliced."""

APP_IDS = ["other", "x} | @app_id:{other", "*", "other*", "other\\", "@app_id:{other}"]
"""The victim (``other``, what the injections name) and apps whose ids are injections."""

TASK_MODULE = "hostile.tasks"
FLOW_MODULE = "hostile.flows"


def _backend(app_id: str, redis_url: str) -> RedisStackStateBackend:
    app: Pynenc = PynencBuilder().app_id(app_id).memory().redis_stack(url=redis_url).build()
    return cast("RedisStackStateBackend", app.state_backend)


def _call(n: int, task: TaskId, arguments: dict[str, str] | None = None) -> tuple[CallId, CallDTO]:
    call_id = CallId(task, f"args-{n}")
    return call_id, CallDTO(call_id, arguments or {})


def _upsert(
    backend: RedisStackStateBackend,
    invocation_id: str,
    n: int,
    task: TaskId,
    parent: str | None = None,
    event: str | None = None,
    workflow: WorkflowIdentity | None = None,
    arguments: dict[str, str] | None = None,
) -> None:
    call_id, call = _call(n, task, arguments)
    parent_id = InvocationId(parent) if parent is not None else None
    backend._upsert_invocations(
        [(InvocationDTO(InvocationId(invocation_id), call_id, workflow, parent_id, event), call)]
    )


def _history(invocation_id: str, runner_context_id: str, status: InvocationStatus) -> InvocationHistory:
    record = InvocationStatusRecord(status, runner_id=runner_context_id, timestamp=T0)
    history = InvocationHistory(InvocationId(invocation_id), record, runner_context_id)
    history._timestamp = T0
    return history


def _populate(backend: RedisStackStateBackend, tag: str) -> None:
    """Per injection id ``h`` (number ``n``): an invocation ``h`` and its child ``<tag>-child-n``
    (parent ``h``, event ``h``, workflow ``h`` of type ``flows.h``, task ``tasks.h``), one
    history entry each, a runner context ``h``, a sub-invocation link, and ``h``'s result."""
    for n, hostile in enumerate(INJECTIONS):
        child = f"{tag}-child-{n}"
        workflow = WorkflowIdentity(InvocationId(hostile), TaskId(FLOW_MODULE, hostile), None)
        _upsert(backend, hostile, n, TaskId(TASK_MODULE, "root"), workflow=workflow)
        _upsert(
            backend, child, n, TaskId(TASK_MODULE, hostile), parent=hostile, event=hostile, workflow=workflow
        )
        backend._store_runner_context(
            RunnerContext(runner_cls=tag, runner_id=hostile, pid=1, hostname=tag, thread_id=1)
        )
        for invocation_id, status in ((hostile, InvocationStatus.RUNNING), (child, InvocationStatus.FAILED)):
            backend._add_histories(
                [InvocationId(invocation_id)], _history(invocation_id, f"{tag}-rc", status)
            )
        backend.store_workflow_run(workflow)
        backend.store_workflow_sub_invocation(InvocationId(hostile), InvocationId(child))
        backend._set_result(InvocationId(hostile), f"{tag}-result-{n}")
        backend.set_workflow_data(workflow, hostile, f"{tag}-data-{n}")


@pytest.fixture
def apps(redis_url: str) -> Iterator[dict[str, RedisStackStateBackend]]:
    """Every app of APP_IDS, populated with the same ids; purged before and after."""
    backends = {app_id: _backend(app_id, redis_url) for app_id in APP_IDS}
    for n, backend in enumerate(backends.values()):
        backend.purge()
        _populate(backend, f"t{n}")
    yield backends
    for backend in backends.values():
        backend.purge()


def _assert_exactly_its_own(backend: RedisStackStateBackend, tag: str) -> None:
    runner_ids = set(INJECTIONS)
    for n, hostile in enumerate(INJECTIONS):
        child = f"{tag}-child-{n}"
        assert list(backend.get_child_invocations(InvocationId(hostile))) == [child], hostile
        assert list(backend.get_invocations_by_parent_event(hostile)) == [child], hostile
        assert sorted(backend.get_invocation_ids_by_workflow(hostile)) == sorted([hostile, child]), hostile
        flow_key = TaskId(FLOW_MODULE, hostile).key
        assert sorted(backend.get_invocation_ids_by_workflow(None, flow_key)) == sorted([hostile, child])
        found = list(backend.find_invocations(task_key=TaskId(TASK_MODULE, hostile).key))
        assert found == [(child, InvocationStatus.FAILED, T0)], hostile
        failed = {i for i, _s, _t in backend.find_invocations(status=InvocationStatus.FAILED)}
        assert child in failed and all(i.startswith(f"{tag}-child-") for i in failed)
        history = backend.get_history(InvocationId(hostile))
        assert [(h.runner_context_id, h.status_record.status) for h in history] == [
            (f"{tag}-rc", InvocationStatus.RUNNING)
        ], hostile
        assert list(backend.get_workflow_sub_invocations(InvocationId(hostile))) == [child], hostile
        assert backend._get_result(InvocationId(hostile)) == f"{tag}-result-{n}"
        workflow = WorkflowIdentity(InvocationId(hostile), TaskId(FLOW_MODULE, hostile), None)
        assert backend.get_workflow_data(workflow, hostile) == f"{tag}-data-{n}"
        assert [r.workflow_id for r in backend.get_workflow_runs(TaskId(FLOW_MODULE, hostile))] == [hostile]
        # the partial runner id: a literal substring, compared with Python's `in`
        contexts = list(backend.get_matching_runner_contexts(hostile))
        assert sorted(c.runner_id for c in contexts) == sorted(r for r in runner_ids if hostile in r), hostile
        assert {c.runner_cls for c in contexts} == {tag}
    everything = list(backend.get_invocation_ids_by_workflow())
    assert len(everything) == 2 * len(INJECTIONS) and len(set(everything)) == len(everything)
    assert {str(i) for i in everything} == set(INJECTIONS) | {
        f"{tag}-child-{n}" for n in range(len(INJECTIONS))
    }


def test_injection_ids_answer_exactly_and_never_cross_apps(apps: dict[str, RedisStackStateBackend]) -> None:
    for n, backend in enumerate(apps.values()):
        _assert_exactly_its_own(backend, f"t{n}")


def test_purge_of_an_injection_app_id_leaves_the_victim_whole(
    apps: dict[str, RedisStackStateBackend],
) -> None:
    for app_id in APP_IDS[1:]:
        apps[app_id].purge()
        assert list(apps[app_id].get_invocation_ids_by_workflow()) == []
    _assert_exactly_its_own(apps["other"], "t0")


# -- 10 MB payloads -------------------------------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


def _big(seed: str) -> str:
    """10 MB of text with quotes, backslashes, braces, newlines and non-ASCII characters."""
    unit = f'{seed} "quoted" \\back\\slash {{brace}} é日😀\n'
    return (unit * (TEN_MB // len(unit) + 1))[:TEN_MB]


@pytest.fixture
def backend(request: pytest.FixtureRequest, redis_url: str) -> Iterator[RedisStackStateBackend]:
    backend = _backend(unique_app_id(request), redis_url)
    yield backend
    backend.purge()


def test_ten_megabyte_arguments_results_exceptions_and_data_round_trip(
    backend: RedisStackStateBackend,
) -> None:
    task = TaskId(TASK_MODULE, "big")
    flow = WorkflowIdentity(InvocationId("big-wf"), TaskId(FLOW_MODULE, "big"), None)
    arguments = {"blob": _big("arg"), "small": "1"}
    _upsert(backend, "big", 0, task, parent="big-parent", workflow=flow, arguments=arguments)
    backend._add_histories([InvocationId("big")], _history("big", "rc", InvocationStatus.SUCCESS))
    backend._set_result(InvocationId("big"), _big("result"))
    backend._set_exception(InvocationId("big"), _big("exception"))
    data = _big("data")
    backend.set_workflow_data(flow, "blob", data)

    stored = backend._get_invocation(InvocationId("big"))
    assert stored is not None and stored[1].serialized_arguments == arguments
    assert backend._get_result(InvocationId("big")) == _big("result")
    assert backend._get_exception(InvocationId("big")) == _big("exception")
    assert backend.get_workflow_data(flow, "blob") == data
    # lookups that never load the payload still answer
    assert list(backend.get_child_invocations(InvocationId("big-parent"))) == ["big"]
    assert [i for i, _s, _t in backend.find_invocations(task_key=task.key)] == ["big"]


# -- invalid UTF-8 ---------------------------------------------------------------------------------

SURROGATE = "\udcff"
"""What ``bytes.decode(errors="surrogateescape")`` makes of the byte 0xff: not valid Unicode."""


def _app_keys(client: redis.Redis, backend: RedisStackStateBackend) -> set[str]:
    app = backend.app.app_id
    return {key for key in client.scan_iter(match="pynenc:*", count=10_000) if f":{app}" in key}


WRITES: dict[str, Any] = {
    "invocation id": lambda b: _upsert(b, f"inv{SURROGATE}", 0, TaskId(TASK_MODULE, "t")),
    "parent id": lambda b: _upsert(b, "inv", 0, TaskId(TASK_MODULE, "t"), parent=f"p{SURROGATE}"),
    "task name": lambda b: _upsert(b, "inv", 0, TaskId(TASK_MODULE, f"t{SURROGATE}")),
    "argument value": lambda b: _upsert(b, "inv", 0, TaskId(TASK_MODULE, "t"), arguments={"a": SURROGATE}),
    "argument name": lambda b: _upsert(b, "inv", 0, TaskId(TASK_MODULE, "t"), arguments={SURROGATE: "1"}),
    "history runner id": lambda b: b._add_histories(
        [InvocationId("inv")], _history("inv", f"rc{SURROGATE}", InvocationStatus.RUNNING)
    ),
    "runner context id": lambda b: b._store_runner_context(
        RunnerContext(runner_cls="R", runner_id=SURROGATE, pid=1, hostname="h", thread_id=1)
    ),
    "runner hostname": lambda b: b._store_runner_context(
        RunnerContext(runner_cls="R", runner_id="r", pid=1, hostname=SURROGATE, thread_id=1)
    ),
    "raw result": lambda b: b._set_result(InvocationId("inv"), f"result{SURROGATE}"),
    "raw exception": lambda b: b._set_exception(InvocationId("inv"), SURROGATE),
    "workflow data key": lambda b: b.set_workflow_data(
        WorkflowIdentity(InvocationId("wf"), TaskId(FLOW_MODULE, "f"), None), SURROGATE, 1
    ),
}


@pytest.mark.parametrize("what", list(WRITES))
def test_a_lone_surrogate_in_a_write_is_a_clear_error_and_nothing_is_written(
    what: str, backend: RedisStackStateBackend, redis_client: redis.Redis
) -> None:
    before = _app_keys(redis_client, backend)
    with pytest.raises(InvalidDocumentError, match="lone surrogate .*not valid Unicode.*errors='replace'"):
        WRITES[what](backend)
    assert _app_keys(redis_client, backend) == before


READS: dict[str, Any] = {
    "get_history": lambda b: b.get_history(InvocationId(SURROGATE)),
    "get_child_invocations": lambda b: list(b.get_child_invocations(InvocationId(SURROGATE))),
    "find_invocations": lambda b: list(b.find_invocations(task_key=SURROGATE)),
    "get_matching_runner_contexts": lambda b: list(b.get_matching_runner_contexts(f"x{SURROGATE}")),
    "_get_invocation": lambda b: b._get_invocation(InvocationId(SURROGATE)),
    "_get_result": lambda b: b._get_result(InvocationId(SURROGATE)),
}


@pytest.mark.parametrize("what", list(READS))
def test_a_lone_surrogate_in_a_lookup_is_a_clear_error(what: str, backend: RedisStackStateBackend) -> None:
    with pytest.raises((InvalidDocumentError, QueryError), match="lone surrogate .*not valid Unicode"):
        READS[what](backend)


def test_surrogates_inside_serialized_values_round_trip(backend: RedisStackStateBackend) -> None:
    """pynenc's serializer escapes them (``\\udcff`` in JSON text), so values round-trip."""
    flow = WorkflowIdentity(InvocationId("wf"), TaskId(FLOW_MODULE, "f"), None)
    value = {"name": f"caf{SURROGATE}", SURROGATE: [SURROGATE]}
    backend.set_workflow_data(flow, "k", value)
    assert backend.get_workflow_data(flow, "k") == value


def test_a_surrogate_app_id_is_refused(redis_url: str) -> None:
    with pytest.raises(InvalidDocumentError, match="lone surrogate"):
        _backend(f"app{SURROGATE}", redis_url).get_history(InvocationId("x"))


# -- deep nesting -----------------------------------------------------------------------------------


def _nested(levels: int) -> list[Any]:
    root: list[Any] = []
    current = root
    for _ in range(levels):
        inner: list[Any] = []
        current.append(inner)
        current = inner
    return root


def test_nesting_beyond_redisjson_limit_round_trips_as_a_payload(
    backend: RedisStackStateBackend, redis_client: redis.Redis
) -> None:
    """RedisJSON refuses documents nested deeper than 128 levels; payloads are stored as
    strings inside the document, so their own depth does not count."""
    with pytest.raises(redis.ResponseError, match="recursion limit"):
        redis_client.execute_command("JSON.SET", "hostile:deep", "$", "[" * 200 + "]" * 200)
    flow = WorkflowIdentity(InvocationId("wf"), TaskId(FLOW_MODULE, "f"), None)
    backend.set_workflow_data(flow, "deep", _nested(200))
    assert backend.get_workflow_data(flow, "deep") == _nested(200)
    backend._set_result(InvocationId("inv"), "[" * 5000 + "]" * 5000)
    assert backend._get_result(InvocationId("inv")) == "[" * 5000 + "]" * 5000


def test_workflow_data_too_deep_to_serialize_is_a_clear_error(
    backend: RedisStackStateBackend, redis_client: redis.Redis
) -> None:
    flow = WorkflowIdentity(InvocationId("wf"), TaskId(FLOW_MODULE, "f"), None)
    before = _app_keys(redis_client, backend)
    with pytest.raises(
        InvalidDocumentError, match="'deep' of workflow 'wf' is nested too deeply.*nothing was stored"
    ):
        backend.set_workflow_data(flow, "deep", _nested(10_000))
    assert _app_keys(redis_client, backend) == before
    assert backend.get_workflow_data(flow, "deep", "absent") == "absent"
