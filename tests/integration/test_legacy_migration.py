"""``index migrate`` cleans a store written by the previous layout (lifecycle/legacy.py).

The store is written by this version, then rewritten key for key into the previous layout
(:mod:`tests.integration.legacy_layout`): call texts, history lists and timeline, relation
sets, completeness keys, ``history_list`` marks. A dry run lists what a run would do and
changes nothing; the run merges the call texts, deletes everything else, and every read gives
back what it gave before; a second run finds nothing to do.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

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
from pynenc.state_backend.base_state_backend import InvocationHistory
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack import admin
from pynenc_redis_stack.admin import legacy, tagged_layout
from pynenc_redis_stack.admin.tagged_layout import old_key
from pynenc_redis_stack.cli.index_commands import format_migration
from pynenc_redis_stack.core.command_line import split_redis_cli_line
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
from tests.conftest import unique_app_id
from tests.integration.legacy_layout import to_previous_layout

BASE = datetime(2025, 7, 1, 9, 0, 0, tzinfo=UTC)
HOSTILE = "a:{b}|c@d*e?f\\\"g' h-é日😀"
FLOW = TaskId("flows", "check.out")


def _dto(invocation_id: str, parent: str | None, workflow: str | None) -> tuple[InvocationDTO, CallDTO]:
    call_id = CallId(TaskId("tasks", "work.it"), f"args-{invocation_id}")
    identity = None if workflow is None else WorkflowIdentity(InvocationId(workflow), FLOW)
    parent_id = None if parent is None else InvocationId(parent)
    inv = InvocationDTO(InvocationId(invocation_id), call_id, identity, parent_id, f"event-{parent}")
    return inv, CallDTO(call_id, {"x": f'"{invocation_id}"', "n": "1"})


def _store(backend: RedisStackStateBackend) -> list[str]:
    ids = [f"{HOSTILE}-{n}" for n in range(12)]
    backend._upsert_invocations(
        [_dto(i, None if n == 0 else ids[0], None if n % 3 else f"wf-{HOSTILE}") for n, i in enumerate(ids)]
    )
    for n, invocation_id in enumerate(ids):
        for k, status in enumerate((InvocationStatus.REGISTERED, InvocationStatus.RUNNING)):
            moment = BASE + timedelta(seconds=n // 2, microseconds=k)  # ties across invocations
            record = InvocationStatusRecord(status, f"runner-{n}", moment)
            history = InvocationHistory(InvocationId(invocation_id), record, runner_context_id=f"rc-{n}")
            history._timestamp = moment
            backend._add_histories([InvocationId(invocation_id)], history)
    backend._add_histories(  # history before the invocation's upsert: a status-only document
        [InvocationId("no-upsert-yet")],
        InvocationHistory(
            InvocationId("no-upsert-yet"),
            InvocationStatusRecord(InvocationStatus.REGISTERED, "r", BASE),
            runner_context_id="rc",
        ),
    )
    return ids


def _reads(backend: RedisStackStateBackend, ids: list[str]) -> dict[str, Any]:
    def history(invocation_id: str) -> list[str]:
        return [h.to_json() for h in backend.get_history(InvocationId(invocation_id))]

    return {
        "invocations": [backend._get_invocation(InvocationId(i)) for i in [*ids, "no-upsert-yet"]],
        "histories": [history(i) for i in ids],
        "children": sorted(backend.get_child_invocations(InvocationId(ids[0]))),
        "by-event": sorted(backend.get_invocations_by_parent_event(f"event-{ids[0]}")),
        "workflow": sorted(backend.get_invocation_ids_by_workflow(workflow_id=f"wf-{HOSTILE}")),
        "workflow-type": sorted(backend.get_invocation_ids_by_workflow(workflow_type_key=FLOW.key)),
        "both": sorted(backend.get_invocation_ids_by_workflow(f"wf-{HOSTILE}", FLOW.key)),
        "range": [
            h.to_json()
            for b in backend.iter_history_in_timerange(BASE, BASE + timedelta(hours=1), 5)
            for h in b
        ],
        "invocations-in-range": sorted(
            i for b in backend.iter_invocations_in_timerange(BASE, BASE + timedelta(seconds=2), 3) for i in b
        ),
    }


def _legacy_keys(client: redis.Redis, backend: RedisStackStateBackend) -> list[str]:
    return sorted(
        key
        for kind in legacy.LEGACY_KINDS
        for key in client.scan_iter(legacy.scan_pattern(backend.namespace, kind))
    )


@pytest.fixture
def app(request: pytest.FixtureRequest, redis_url: str) -> Pynenc:
    return (
        PynencBuilder().app_id(unique_app_id(request) + HOSTILE).memory().redis_stack(url=redis_url).build()
    )


def test_migrate_cleans_the_previous_layout_and_every_read_stays_equal(
    app: Pynenc, redis_client: redis.Redis
) -> None:
    backend: RedisStackStateBackend = app.state_backend
    ids = _store(backend)
    before = _reads(backend, ids)
    written = to_previous_layout(redis_client, backend)
    # call texts, history lists (one of a status-only invocation), the timeline, relation sets
    # (a parent, two events, a workflow, its type), the two completeness keys
    assert len(written) == 12 + 13 + 1 + 5 + 2
    assert _legacy_keys(redis_client, backend) == written
    untagged = old_key(backend.namespace, "invocation", app.app_id, ids[0])
    stale = orjson.loads(redis_client.execute_command("JSON.GET", untagged))
    assert "task_module" not in stale and stale["history_list"] is True

    # the dry run lists every key it would delete and every merge, and changes nothing
    out = io.StringIO()
    dry = admin.index_migrate(backend.conf, dry_run=True, out=out)
    printed = out.getvalue().splitlines()
    copied = {split_redis_cli_line(line)[1] for line in printed if line.startswith("COPY ")}  # tags
    counters = {f"{backend.namespace.namespace}:{name}" for name in tagged_layout.COUNTERS}
    unlinked = {split_redis_cli_line(line)[1] for line in printed if line.startswith("UNLINK ")}
    unlinked -= copied | counters
    deleted_texts = {split_redis_cli_line(line)[1] for line in printed if line.startswith("DEL ")}
    assert unlinked | deleted_texts == set(written) and len(deleted_texts) == 12
    merges = [split_redis_cli_line(line) for line in printed if line.startswith("JSON.MERGE ")]
    assert len(merges) == 12 and all(orjson.loads(args[3])["task_module"] == "tasks" for args in merges)
    assert dry.legacy is not None and dry.legacy.merged == 12 and dry.legacy.unmarked == 13
    assert (
        "earlier layout: invocation call texts: 12 would be deleted, 12 would be merged into their "
        "invocation documents first"
    ) in format_migration(dry)
    assert _legacy_keys(redis_client, backend) == written

    # a writer of this version rewrites one invocation meanwhile (under its tagged key): its
    # document wins, the untagged one (merged too) is not copied over it
    backend._upsert_invocations([_dto(ids[1], ids[0], None)])

    report = admin.index_migrate(backend.conf)

    assert report.legacy is not None and report.legacy.merged == 12 and report.legacy.unmarked == 1
    assert (
        report.legacy.deleted["history lists"] == 13 and report.legacy.deleted["relation sets by parent"] == 1
    )
    assert _legacy_keys(redis_client, backend) == []
    assert _reads(backend, ids) == before
    for invocation_id in [*ids, "no-upsert-yet"]:
        raw = redis_client.execute_command("JSON.GET", backend.keys.invocation(invocation_id))
        assert "history_list" not in orjson.loads(raw)
    whole = orjson.loads(redis_client.execute_command("JSON.GET", backend.keys.invocation(ids[2])))
    assert whole["serialized_arguments"] == {"x": f'"{ids[2]}"', "n": "1"} and whole["status"] == "running"

    again = admin.index_migrate(backend.conf)
    assert again.legacy is not None and again.legacy.total == 0 and again.nothing_to_do


def test_a_call_text_without_its_document_is_deleted_and_other_keys_are_left(
    app: Pynenc, redis_client: redis.Redis
) -> None:
    backend: RedisStackStateBackend = app.state_backend
    namespace, app_id = backend.namespace, app.app_id
    orphan = legacy.legacy_key(namespace, legacy.INVOCATION_CALL, app_id, "pruned")
    redis_client.set(orphan, '{"task_module":"m"}')
    # a key of the same name pattern but another type is not the previous layout's: kept
    foreign = legacy.legacy_key(namespace, legacy.HISTORY_LIST, app_id, "not-a-list")
    redis_client.set(foreign, "x")

    report = admin.index_migrate(backend.conf)

    assert report.legacy is not None and report.legacy.merged == 0
    assert not redis_client.exists(orphan) and redis_client.get(foreign) == "x"
    assert not redis_client.exists(backend.keys.invocation("pruned"))
    redis_client.delete(foreign)


def test_the_dry_run_printed_commands_replayed_clean_the_store_as_a_run_does(
    app: Pynenc, redis_client: redis.Redis
) -> None:
    backend: RedisStackStateBackend = app.state_backend
    ids = _store(backend)
    before = _reads(backend, ids)
    to_previous_layout(redis_client, backend)
    out = io.StringIO()
    admin.index_migrate(backend.conf, dry_run=True, out=out)
    lines = [line for line in out.getvalue().splitlines() if line and not line.startswith("#")]
    legacy_lines = [line for line in lines if not line.startswith("FT.")]

    for line in legacy_lines:  # what an operator pasting them into redis-cli sends
        redis_client.execute_command(*split_redis_cli_line(line))

    assert _legacy_keys(redis_client, backend) == []
    assert _reads(backend, ids) == before
    again = admin.index_migrate(backend.conf)
    assert again.legacy is not None and again.legacy.total == 0
