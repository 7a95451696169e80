"""Exact command counts and network round trips of the backend's hot paths.

Commands are counted server-side with ``INFO commandstats`` deltas (``calls`` counters; the
commands a Lua script runs are counted too). Round trips are counted client-side by wrapping
``send_packed_command`` of redis-py's connection class: one call is one write of a request
(a single command, or a whole pipeline) followed by reading its replies. Tests run one at a
time in one process, so nothing else talks to the server while a delta is taken; each
measurement is preceded by a warm-up on the same client so that index preparation, the
module check and pool health checks are not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson
import pytest
import redis
import redis.connection
from pynenc import Pynenc, PynencBuilder
from pynenc.call import Call
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.invocation.dist_invocation import DistributedInvocation, TaskInvocation
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.runner.runner_context import RunnerContext
from redis.crc import key_slot

from tests.conftest import unique_app_id
from tests.integration.conftest import RoundTrips, commandstats, delta

if TYPE_CHECKING:
    from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend


def add(x: int, y: int) -> int:
    """A task body; registered on each test's app."""
    return x + y


class Measure:
    """Runs one call and returns (server-side command deltas, client round trips)."""

    def __init__(
        self,
        backend: RedisStackStateBackend,
        stats_client: redis.Redis,
        trips: RoundTrips,
    ) -> None:
        self.backend = backend
        self.stats_client = stats_client
        self.trips = trips

    def __call__(self, action: Callable[[], Any]) -> tuple[dict[str, int], int, Any]:
        self.backend.client.ping()  # warm-up on the pooled connection (health check included)
        before = commandstats(self.stats_client)
        with self.trips.counting():
            result = action()
        after = commandstats(self.stats_client)
        return delta(before, after), self.trips.count, result


@pytest.fixture
def app(request: pytest.FixtureRequest, redis_url: str) -> Pynenc:
    return PynencBuilder().app_id(unique_app_id(request)).memory().redis_stack(url=redis_url).build()


@pytest.fixture
def backend(app: Pynenc) -> RedisStackStateBackend:
    backend: RedisStackStateBackend = app.state_backend
    backend.get_history(InvocationId("warm-up"))  # module check and index preparation done here
    return backend


@pytest.fixture
def measure(backend: RedisStackStateBackend, redis_client: redis.Redis, round_trips: RoundTrips) -> Measure:
    return Measure(backend, redis_client, round_trips)


def _invocations(app: Pynenc, count: int, prefix: str = "inv") -> list[DistributedInvocation[Any, Any]]:
    task = app.task(add)
    return [
        TaskInvocation(
            call=Call(task),
            invocation_id=InvocationId(f"{prefix}-{n:03d}"),
            parent_invocation_id=InvocationId("the-parent"),
            workflow=None,
            stored_in_backend=True,
        )
        for n in range(count)
    ]


def _context(runner_id: str, parent: RunnerContext | None = None) -> RunnerContext:
    return RunnerContext(
        runner_cls="TestRunner",
        runner_id=runner_id,
        parent_ctx=parent,
        pid=1,
        hostname="h",
        thread_id=1,
    )


def _slots(backend: RedisStackStateBackend, invocations: list[DistributedInvocation[Any, Any]]) -> int:
    """Script calls a batch of these invocations takes: one per hash slot."""
    return len({key_slot(backend.keys.invocation(i.invocation_id).encode()) for i in invocations})


def test_upsert_batch_is_one_script_call_per_slot_in_one_round_trip(
    app: Pynenc, backend: RedisStackStateBackend, measure: Measure
) -> None:
    backend._upsert_invocations([(i.to_dto(), i.call.to_dto()) for i in _invocations(app, 1, "warm")])
    invocations = _invocations(app, 50)
    entries = [(i.to_dto(), i.call.to_dto()) for i in invocations]

    commands, trips, _ = measure(lambda: backend._upsert_invocations(entries))

    # Per invocation: JSON.GET of a status a history write may have stored first (none here),
    # one JSON.SET of the whole document (indexed once).
    assert commands == {"evalsha": _slots(backend, invocations), "json.get": 50, "json.set": 50}
    assert trips == 1
    assert {str(i) for i in backend.get_child_invocations(InvocationId("the-parent"))} == {
        str(i.invocation_id) for i in [*invocations, *_invocations(app, 1, "warm")]
    }


def test_upsert_again_replaces_the_document_and_keeps_its_status(
    app: Pynenc, backend: RedisStackStateBackend, measure: Measure
) -> None:
    invocations = _invocations(app, 10)
    entries = [(i.to_dto(), i.call.to_dto()) for i in invocations]
    backend._upsert_invocations(entries)
    backend.add_histories(invocations, InvocationStatusRecord(InvocationStatus.PENDING), _context("r"))

    commands, trips, _ = measure(lambda: backend._upsert_invocations(entries))

    assert commands == {"evalsha": _slots(backend, invocations), "json.get": 10, "json.set": 10}
    assert trips == 1
    assert [status for _id, status, _ts in backend.find_invocations()] == [InvocationStatus.PENDING] * 10


@pytest.mark.parametrize(
    "lookup",
    [
        lambda b: b.get_child_invocations(InvocationId("the-parent")),
        lambda b: b.get_invocations_by_parent_event("an-event"),
        lambda b: b.get_invocation_ids_by_workflow(workflow_id="a-workflow"),
        lambda b: b.get_invocation_ids_by_workflow(workflow_type_key="a.type"),
        lambda b: b.get_invocation_ids_by_workflow(workflow_id="a-workflow", workflow_type_key="a.type"),
        lambda b: b.get_history(InvocationId("inv-001")),
    ],
    ids=["children", "parent-event", "workflow-id", "workflow-type", "workflow-id-and-type", "history"],
)
def test_lookups_are_one_index_query(
    app: Pynenc,
    backend: RedisStackStateBackend,
    measure: Measure,
    lookup: Callable[[RedisStackStateBackend], Any],
) -> None:
    invocations = _invocations(app, 5)
    backend.upsert_invocations(invocations)
    backend.add_histories(invocations, InvocationStatusRecord(InvocationStatus.REGISTERED), _context("r"))

    commands, trips, _ = measure(lambda: list(lookup(backend)))

    # One FT.SEARCH: no set, list, sorted set or string beside the documents is read.
    assert commands == {"ft.search": 1}
    assert trips == 1


def test_a_lookup_larger_than_the_first_page_is_one_more_exact_query(
    app: Pynenc, backend: RedisStackStateBackend, measure: Measure
) -> None:
    from pynenc_redis_stack.state_backend.backend import FIRST_PAGE

    invocations = _invocations(app, FIRST_PAGE + 20)
    backend.upsert_invocations(invocations)

    commands, trips, children = measure(
        lambda: list(backend.get_child_invocations(InvocationId("the-parent")))
    )

    assert commands == {"ft.search": 2}
    assert trips == 2
    assert sorted(children) == sorted(i.invocation_id for i in invocations)


def test_add_histories_with_cached_context_is_one_evalsha(
    app: Pynenc, backend: RedisStackStateBackend, measure: Measure
) -> None:
    invocations = _invocations(app, 50)
    backend.upsert_invocations(invocations)
    context = _context("cached-runner")
    # Caches the context and makes sure the script is loaded.
    backend.add_histories(invocations[:1], InvocationStatusRecord(InvocationStatus.REGISTERED), context)

    commands, trips, _ = measure(
        lambda: backend.add_histories(invocations, InvocationStatusRecord(InvocationStatus.PENDING), context)
    )

    # One script call per hash slot; inside, per entry JSON.SET NX of the entry (stored: not a
    # re-send), JSON.GET of the invocation's status_ts, then one JSON.MERGE of status and
    # status_ts (the entry is the newest). Nothing but documents is written.
    assert commands == {
        "evalsha": _slots(backend, invocations),
        "json.set": 50,
        "json.get": 50,
        "json.merge": 50,
    }
    assert trips == 1
    for invocation in invocations:
        statuses = [h.status_record.status for h in backend.get_history(invocation.invocation_id)]
        assert statuses[-1] == InvocationStatus.PENDING


def test_add_histories_for_new_invocations_and_new_context_is_one_round_trip(
    app: Pynenc, backend: RedisStackStateBackend, measure: Measure
) -> None:
    invocations = _invocations(app, 50, prefix="fresh")
    backend.add_histories(
        _invocations(app, 1, prefix="loader"),
        InvocationStatusRecord(InvocationStatus.REGISTERED),
        _context("loader-runner"),
    )  # script loaded
    context = _context("child-runner", parent=_context("parent-runner"))

    commands, trips, _ = measure(
        lambda: backend.add_histories(
            invocations, InvocationStatusRecord(InvocationStatus.REGISTERED), context
        )
    )

    # Two runner context documents (context and parent) + per entry: JSON.SET NX of the entry,
    # JSON.GET of the invocation (none yet), JSON.SET of its status-only document; one script
    # call per hash slot.
    expected = {"json.set": 2 + 100, "evalsha": _slots(backend, invocations), "json.get": 50}
    assert commands == expected
    assert trips == 1
    assert sorted(
        c.runner_id for c in backend.get_matching_runner_contexts("-runner") if c.runner_id != "loader-runner"
    ) == ["child-runner", "parent-runner"]
    history = backend.get_history(invocations[7].invocation_id)
    assert [(h.status_record.status, h.registered_by_inv_id) for h in history] == [
        (InvocationStatus.REGISTERED, "the-parent")
    ]

    # The context is cached now: the next batch stores no context.
    commands, trips, _ = measure(
        lambda: backend.add_histories(invocations, InvocationStatusRecord(InvocationStatus.PENDING), context)
    )
    assert commands == {
        "evalsha": _slots(backend, invocations),
        "json.set": 50,
        "json.get": 50,
        "json.merge": 50,
    }
    assert trips == 1


def test_add_history_single_is_one_round_trip(
    app: Pynenc, backend: RedisStackStateBackend, measure: Measure
) -> None:
    context = _context("single-runner")
    backend.add_history(
        InvocationId("single"),
        InvocationStatusRecord(InvocationStatus.REGISTERED),
        context,
    )

    commands, trips, _ = measure(
        lambda: backend.add_history(
            InvocationId("single"),
            InvocationStatusRecord(InvocationStatus.RUNNING),
            context,
        )
    )

    assert commands == {"evalsha": 1, "json.set": 1, "json.get": 1, "json.merge": 1}
    assert trips == 1


def test_get_invocation_is_one_json_get(
    app: Pynenc, backend: RedisStackStateBackend, measure: Measure
) -> None:
    invocation = _invocations(app, 1)[0]
    backend.upsert_invocations([invocation])

    commands, trips, fetched = measure(lambda: backend.get_invocation(invocation.invocation_id))

    assert commands == {"json.get": 1}
    assert trips == 1
    assert fetched == invocation
    assert fetched.parent_invocation_id == "the-parent"
    assert backend._get_invocation(InvocationId("never-stored")) is None


def test_json_get_of_an_invocation_shows_the_whole_record(
    app: Pynenc, backend: RedisStackStateBackend, redis_client: redis.Redis
) -> None:
    invocation = _invocations(app, 1)[0]
    backend.upsert_invocations([invocation])
    backend.add_history(
        invocation.invocation_id, InvocationStatusRecord(InvocationStatus.RUNNING), _context("r")
    )

    document = orjson.loads(
        redis_client.execute_command("JSON.GET", backend.keys.invocation(invocation.invocation_id))
    )

    call = invocation.call
    assert (
        document["task_module"] == call.task.task_id.module
        and document["task_func"] == call.task.task_id.func_name
    )
    assert document["serialized_arguments"] == dict(call.serialized_arguments)
    assert document["arguments_id"] == call.call_id.args_id
    assert (document["parent_invocation_id"], document["status"]) == ("the-parent", "running")
    assert isinstance(document["status_ts"], int) and "history_list" not in document
    from pynenc_redis_stack.state_backend import documents as docs

    assert docs.invocation_from_document(document) == (invocation.to_dto(), call.to_dto())


def test_get_history_is_one_ft_search(app: Pynenc, backend: RedisStackStateBackend, measure: Measure) -> None:
    context = _context("history-runner")
    for status in (
        InvocationStatus.REGISTERED,
        InvocationStatus.PENDING,
        InvocationStatus.RUNNING,
    ):
        backend.add_history(InvocationId("short"), InvocationStatusRecord(status), context)

    commands, trips, history = measure(lambda: backend.get_history(InvocationId("short")))

    # The invocation's entries through the history index, sorted by (ts, seq) here.
    assert commands == {"ft.search": 1}
    assert trips == 1
    assert [h.status_record.status for h in history] == [
        InvocationStatus.REGISTERED,
        InvocationStatus.PENDING,
        InvocationStatus.RUNNING,
    ]


def test_get_result_is_one_json_get(app: Pynenc, backend: RedisStackStateBackend, measure: Measure) -> None:
    backend.set_result(InvocationId("with-result"), {"answer": 42})

    commands, trips, result = measure(lambda: backend.get_result(InvocationId("with-result")))

    assert commands == {"json.get": 1}
    assert trips == 1
    assert result == {"answer": 42}


def test_set_result_is_one_json_set(app: Pynenc, backend: RedisStackStateBackend, measure: Measure) -> None:
    commands, trips, _ = measure(lambda: backend.set_result(InvocationId("set-result"), [1, 2]))

    assert commands == {"json.set": 1}
    assert trips == 1


def test_add_histories_after_script_flush_reloads_the_script_once(
    app: Pynenc,
    backend: RedisStackStateBackend,
    measure: Measure,
    redis_client: redis.Redis,
) -> None:
    invocations = _invocations(app, 10, prefix="noscript")
    context = _context("noscript-runner")
    backend.add_histories(invocations[:1], InvocationStatusRecord(InvocationStatus.REGISTERED), context)
    redis_client.script_flush()
    before = redis_client.info("commandstats").get("cmdstat_evalsha", {}).get("failed_calls", 0)

    commands, trips, _ = measure(
        lambda: backend.add_histories(invocations, InvocationStatusRecord(InvocationStatus.PENDING), context)
    )

    # EVALSHA refused (NOSCRIPT, one per slot), SCRIPT LOAD, EVALSHA replayed: three round
    # trips. The replay: per entry JSON.SET NX of the entry and JSON.GET of the invocation; the
    # first invocation's status is merged, the nine others get a status-only document.
    slots = _slots(backend, invocations)
    assert commands == {
        "evalsha": 2 * slots,
        "script|load": 1,
        "json.get": 10,
        "json.set": 10 + 9,
        "json.merge": 1,
    }
    assert redis_client.info("commandstats")["cmdstat_evalsha"]["failed_calls"] == before + slots
    assert trips == 3
    assert all(
        [h.status_record.status for h in backend.get_history(i.invocation_id)][-1] == InvocationStatus.PENDING
        for i in invocations
    )
    assert len(backend.get_history(invocations[0].invocation_id)) == 2
    assert len(backend.get_history(invocations[1].invocation_id)) == 1

    # Loaded once: the next call is a single EVALSHA again.
    commands, trips, _ = measure(
        lambda: backend.add_histories(invocations, InvocationStatusRecord(InvocationStatus.RUNNING), context)
    )
    assert commands == {
        "evalsha": slots,
        "json.set": 10,
        "json.get": 10,
        "json.merge": 10,
    }
    assert trips == 1


def test_every_lookup_reads_the_indexes_only(
    app: Pynenc, backend: RedisStackStateBackend, measure: Measure
) -> None:
    """No lookup reads a set, list, sorted set or string kept beside the documents."""
    from datetime import UTC, datetime, timedelta

    from pynenc.identifiers.task_id import TaskId
    from pynenc.models.invocation_dto import InvocationDTO
    from pynenc.workflow import WorkflowIdentity

    invocations = _invocations(app, 5)
    backend.upsert_invocations(invocations)
    backend.add_histories(invocations, InvocationStatusRecord(InvocationStatus.REGISTERED), _context("r-1"))
    workflow = WorkflowIdentity(InvocationId("wf"), TaskId("flows", "f"))
    member = invocations[0].to_dto()
    in_workflow = InvocationDTO(InvocationId("member"), member.call_id, workflow, None, "an-event")
    backend._upsert_invocations([(in_workflow, invocations[0].call.to_dto())])
    backend.store_workflow_run(workflow)
    backend.store_workflow_sub_invocation(InvocationId("wf"), invocations[0].invocation_id)
    now = datetime.now(UTC)
    lookups: list[Callable[[], Any]] = [
        lambda: list(backend.get_child_invocations(InvocationId("the-parent"))),
        lambda: list(backend.get_invocations_by_parent_event("an-event")),
        lambda: list(backend.get_invocation_ids_by_workflow(workflow_id="wf")),
        lambda: list(backend.get_invocation_ids_by_workflow(workflow_type_key="flows.f")),
        lambda: list(backend.get_invocation_ids_by_workflow("wf", "flows.f")),
        lambda: list(backend.get_invocation_ids_by_workflow()),
        lambda: backend.get_history(invocations[0].invocation_id),
        lambda: list(backend.iter_history_in_timerange(now - timedelta(hours=1), now + timedelta(hours=1))),
        lambda: list(
            backend.iter_invocations_in_timerange(now - timedelta(hours=1), now + timedelta(hours=1))
        ),
        lambda: list(backend.find_invocations(status=InvocationStatus.REGISTERED)),
        lambda: list(backend.get_matching_runner_contexts("r-")),
        lambda: list(backend.get_all_workflow_types()),
        lambda: list(backend.get_all_workflow_runs()),
        lambda: list(backend.get_workflow_runs(TaskId("flows", "f"))),
        lambda: list(backend.get_workflow_sub_invocations(InvocationId("wf"))),
    ]
    for lookup in lookups:
        commands, _trips, answer = measure(lookup)
        assert answer, lookup
        assert commands and set(commands) <= {"ft.search", "ft.aggregate", "ft.cursor|read"}, commands
