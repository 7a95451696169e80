"""Every lookup of the state backend, orchestrator and trigger is answered by the indexes.

Each lookup runs on a populated app while the server counts its commands (``INFO
commandstats`` deltas; the commands a Lua script runs are counted too). A lookup may send
index queries (``FT.SEARCH``, ``FT.AGGREGATE``, ``FT.CURSOR``) and read documents by key
(``JSON.GET``, ``JSON.MGET``); any other read (a set, sorted set, list, hash or string beside
the documents) or a script fails the test, as does a lookup that sent no index query where
one is required. Queues, leases and schedules (the broker, valid conditions, cron times,
claims) are not lookups and are not listed here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.call import Call
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.models.trigger_definition_dto import TriggerDefinitionDTO
from pynenc.runner.runner_context import RunnerContext
from pynenc.trigger.arguments import create_argument_filter
from pynenc.trigger.conditions import CompositeLogic, EventCondition
from pynenc.workflow import WorkflowIdentity

from tests.conftest import unique_app_id
from tests.integration.conftest import commandstats, delta

INDEX_QUERIES = {"ft.search", "ft.aggregate", "ft.cursor|read", "ft.cursor|del", "ft.cursor"}
DOCUMENT_READS = {"json.get", "json.mget"}
HEALTH = {"ping"}
CLOCK = {"time"}
"""The server's clock (``TIME``, sent in a one-line script by the orchestrator): not a lookup."""


def add(x: int, y: int) -> int:
    """A task body registered on the test's app."""
    return x + y


TASK = TaskId(__name__, "add")
WORKFLOW = WorkflowIdentity(
    workflow_id=InvocationId("wf:1 {a|b}"),
    workflow_type=TaskId(__name__, "a.workflow"),
    parent_workflow_id=None,
)
PARENT = InvocationId("parent @*? 1")
EVENT = 'event-"1" x'
RUNNER = "runner-3fa9:host.local"


def _entries(count: int) -> list[tuple[InvocationDTO, CallDTO]]:
    entries = []
    for n in range(count):
        call_id = CallId(TASK, f"args-{n}")
        dto = InvocationDTO(
            invocation_id=InvocationId(f"inv-{n}"),
            call_id=call_id,
            workflow=WORKFLOW,
            parent_invocation_id=PARENT,
            parent_event_id=EVENT,
        )
        entries.append((dto, CallDTO(call_id=call_id, serialized_arguments={"x": str(n), "y": "1"})))
    return entries


def _context(runner_id: str) -> RunnerContext:
    return RunnerContext(
        runner_cls="ThreadRunner", runner_id=runner_id, parent_ctx=None, pid=1, hostname="h", thread_id=1
    )


@pytest.fixture
def app(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Pynenc]:
    built = (
        PynencBuilder().app_id(unique_app_id(request)).redis_stack(url=redis_url, components="all").build()
    )
    built.task(add)
    yield built
    built.purge()


START = datetime.now(UTC) - timedelta(minutes=1)
"""Every history entry of the populated app is written after this (pynenc stamps entries now)."""
END = START + timedelta(days=1)


@pytest.fixture
def populated(app: Pynenc) -> Pynenc:
    backend = app.state_backend
    entries = _entries(5)
    backend._upsert_invocations(entries)
    context = _context(RUNNER)
    backend.store_runner_context(context)
    for dto, _call in entries:
        record = InvocationStatusRecord(InvocationStatus.REGISTERED, RUNNER)
        backend.add_history(dto.invocation_id, record, context)
    backend.store_workflow_run(WORKFLOW)
    backend.store_workflow_sub_invocation(WORKFLOW.workflow_id, entries[0][0].invocation_id)
    app.orchestrator.route_call(Call(app.get_task(TASK)))
    trigger = app.trigger
    condition = EventCondition(EVENT, create_argument_filter(None))
    trigger.register_condition(condition)
    trigger.register_source_task_condition(TASK, condition.condition_id)
    trigger.register_trigger(
        TriggerDefinitionDTO(
            trigger_id="trigger:1",
            task_id=TASK,
            condition_ids=[condition.condition_id],
            logic=CompositeLogic.AND,
            argument_provider_json=None,
        )
    )
    return app


@dataclass(frozen=True)
class Lookup:
    name: str
    call: Callable[[Pynenc], Any]
    needs_index: bool = True  # False: a read of one record by its key (a document read)
    finds_something: bool = True  # the populated app has an answer for it


def _uncached_runner_context(app: Pynenc) -> RunnerContext | None:
    app.state_backend._runner_context_cache.clear()  # the backend keeps what it wrote or read
    return app.state_backend.get_runner_context(RUNNER)


def _condition_id(app: Pynenc) -> str:
    return str(EventCondition(EVENT, create_argument_filter(None)).condition_id)


LOOKUPS = [
    # state backend
    Lookup("children", lambda a: list(a.state_backend.get_child_invocations(PARENT))),
    Lookup("parent event", lambda a: list(a.state_backend.get_invocations_by_parent_event(EVENT))),
    Lookup(
        "workflow id", lambda a: list(a.state_backend.get_invocation_ids_by_workflow(WORKFLOW.workflow_id))
    ),
    Lookup(
        "workflow type",
        lambda a: list(
            a.state_backend.get_invocation_ids_by_workflow(workflow_type_key=WORKFLOW.workflow_type.key)
        ),
    ),
    Lookup(
        "workflow id and type",
        lambda a: list(
            a.state_backend.get_invocation_ids_by_workflow(WORKFLOW.workflow_id, WORKFLOW.workflow_type.key)
        ),
    ),
    Lookup("every workflow member", lambda a: list(a.state_backend.get_invocation_ids_by_workflow())),
    Lookup("get_history", lambda a: a.state_backend.get_history(InvocationId("inv-1"))),
    Lookup(
        "get_invocation", lambda a: a.state_backend.get_invocation(InvocationId("inv-1")), needs_index=False
    ),
    Lookup(
        "history time range",
        lambda a: list(a.state_backend.iter_history_in_timerange(START, END)),
    ),
    Lookup(
        "invocations time range",
        lambda a: list(a.state_backend.iter_invocations_in_timerange(START, END)),
    ),
    Lookup("partial runner id", lambda a: list(a.state_backend.get_matching_runner_contexts("3fa9"))),
    Lookup("workflow runs", lambda a: list(a.state_backend.get_all_workflow_runs())),
    Lookup("workflow types", lambda a: list(a.state_backend.get_all_workflow_types())),
    Lookup(
        "workflow runs of a type", lambda a: list(a.state_backend.get_workflow_runs(WORKFLOW.workflow_type))
    ),
    Lookup(
        "workflow sub-invocations",
        lambda a: list(a.state_backend.get_workflow_sub_invocations(WORKFLOW.workflow_id)),
    ),
    Lookup("runner context", lambda a: _uncached_runner_context(a), needs_index=False),
    # orchestrator
    Lookup("existing invocations", lambda a: list(a.orchestrator.get_existing_invocations(a.get_task(TASK)))),
    Lookup("task invocation ids", lambda a: list(a.orchestrator.get_task_invocation_ids(TASK))),
    Lookup("invocation ids page", lambda a: a.orchestrator.get_invocation_ids_paginated(limit=10)),
    Lookup("count invocations", lambda a: a.orchestrator.count_invocations()),
    Lookup("active runners", lambda a: a.orchestrator.get_active_runners(), finds_something=False),
    Lookup(
        "pending for recovery",
        lambda a: list(a.orchestrator.get_pending_invocations_for_recovery()),
        finds_something=False,
    ),
    Lookup(
        "running for recovery",
        lambda a: list(a.orchestrator.get_running_invocations_for_recovery()),
        finds_something=False,
    ),
    Lookup(
        "active atomic service runs",
        lambda a: a.orchestrator.get_active_atomic_service_executions(),
        finds_something=False,
    ),
    # trigger
    Lookup("condition", lambda a: a.trigger.get_condition(_condition_id(a)), needs_index=False),
    Lookup("triggers of a condition", lambda a: a.trigger.get_triggers_for_condition(_condition_id(a))),
    Lookup("conditions sourced from a task", lambda a: a.trigger.get_conditions_sourced_from_task(TASK)),
    Lookup("trigger", lambda a: a.trigger.get_trigger("trigger:1"), needs_index=False),
    Lookup("events", lambda a: a.trigger.get_events(event_code=EVENT), finds_something=False),
    Lookup(
        "trigger runs of an invocation",
        lambda a: a.trigger.get_trigger_runs_for_invocation("inv-1"),
        finds_something=False,
    ),
]


def _measure(app: Pynenc, stats: redis.Redis, lookup: Lookup) -> tuple[dict[str, int], Any]:
    lookup.call(app)  # warm-up: first-use checks and connections are not the lookup's
    before = commandstats(stats)
    answer = lookup.call(app)
    return delta(before, commandstats(stats)), answer


@pytest.mark.parametrize("lookup", LOOKUPS, ids=[lookup.name for lookup in LOOKUPS])
def test_a_lookup_reads_only_indexes_and_documents(
    populated: Pynenc, redis_client: redis.Redis, lookup: Lookup
) -> None:
    commands, answer = _measure(populated, redis_client, lookup)

    beside = set(commands) - INDEX_QUERIES - DOCUMENT_READS - HEALTH - CLOCK
    if commands.get("evalsha", 0) <= commands.get("time", 0):
        beside.discard("evalsha")  # the clock's script
    assert not beside, f"{lookup.name} sent {sorted(beside)}: {commands}"
    if lookup.needs_index:
        assert set(commands) & INDEX_QUERIES, f"{lookup.name} sent no index query: {commands}"
    else:
        assert set(commands) & DOCUMENT_READS, f"{lookup.name} read no document: {commands}"
    if lookup.finds_something:
        empty = answer is None or (isinstance(answer, list | int) and not answer)
        assert not empty, f"{lookup.name} found nothing on the populated app"


def test_the_lookups_find_what_was_stored(populated: Pynenc) -> None:
    backend = populated.state_backend
    ids = {f"inv-{n}" for n in range(5)}
    assert {str(i) for i in backend.get_child_invocations(PARENT)} == ids
    assert {str(i) for i in backend.get_invocations_by_parent_event(EVENT)} == ids
    assert {str(i) for i in backend.get_invocation_ids_by_workflow(WORKFLOW.workflow_id)} == ids
    assert [c.runner_id for c in backend.get_matching_runner_contexts("3fa9")] == [RUNNER]
    in_range = [h for batch in backend.iter_history_in_timerange(START, END) for h in batch]
    written = [str(h.invocation_id) for h in in_range if str(h.invocation_id).startswith("inv-")]
    assert written == [f"inv-{n}" for n in range(5)]  # in the order written
    trigger = populated.trigger
    assert [t.trigger_id for t in trigger.get_triggers_for_condition(_condition_id(populated))] == [
        "trigger:1"
    ]
    assert [c.condition_id for c in trigger.get_conditions_sourced_from_task(TASK)] == [
        _condition_id(populated)
    ]
