"""Retention: ``prune(older_than)`` and ``pynenc-redis-stack prune`` on the real server.

The dataset is a list of operations, each owned by an invocation (or a workflow). Invocations
get explicit ages (40 days, 10 days, 1 hour; one exactly at the cutoff, one a microsecond
before it, one never given a status). After pruning with a 30-day cutoff, the app must hold
exactly what replaying the operations of the survivors produces: its keys are compared with
the keys before minus the expected deletions, and every query answer with pynenc's
``MemStateBackend`` loaded with the survivors' operations only.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from pynenc import PynencBuilder
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.runner.runner_context import RunnerContext
from pynenc.state_backend import MemStateBackend
from pynenc.state_backend.base_state_backend import BaseStateBackend, InvocationHistory
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack.admin import retention as prune_module
from pynenc_redis_stack.admin.retention import PruneReport, prune_invocations, prune_state_backend
from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.cli.prune_commands import parse_duration
from pynenc_redis_stack.core.errors import PruneRefusedError
from pynenc_redis_stack.core.keys import DocumentKind, encode_segment
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
from tests.conftest import unique_app_id

S = InvocationStatus
NOW = datetime.now(UTC).replace(microsecond=0)
CUTOFF = NOW - timedelta(days=30)
OLD = NOW - timedelta(days=40)
MID = NOW - timedelta(days=10)
NEW = NOW - timedelta(hours=1)

TASK = TaskId("shop.tasks", "work")
FLOW = TaskId("shop.flows", "flow")
CONTEXT = RunnerContext("ThreadRunner", "runner-1", pid=1, hostname="h", thread_id=1)

WM = WorkflowIdentity(InvocationId("wf-mixed"), FLOW, None)
"""Old and new members: its run and data are kept."""
WO = WorkflowIdentity(InvocationId("wf-old"), FLOW, None)
"""Only old members: its run and data go."""
WP = WorkflowIdentity(InvocationId("wf-parent"), FLOW, None)
"""Old, but the parent of a newer child workflow: kept."""
WC = WorkflowIdentity(InvocationId("wf-child"), FLOW, InvocationId("wf-parent"))
WS = WorkflowIdentity(InvocationId("wf-sub"), FLOW, None)
"""Old, but linked to a newer sub-invocation: kept."""
WORKFLOWS = (WM, WO, WP, WC, WS)
KEPT_WORKFLOWS = {"wf-mixed", "wf-parent", "wf-child", "wf-sub"}

ODD = "p-old|{x}\\y z"
"""An old invocation whose id is full of query syntax."""

# invocation id -> (workflow, timestamps of its history entries; the last is its status time)
INVOCATIONS: dict[str, tuple[WorkflowIdentity | None, list[datetime]]] = {
    "wf-mixed": (WM, [OLD, OLD + timedelta(minutes=1)]),
    "m-old": (WM, [OLD, OLD]),
    "m-new": (WM, [OLD, NEW]),  # entries older than the cutoff, but its latest is new
    "wf-old": (WO, [OLD, OLD + timedelta(seconds=5)]),
    "o-1": (WO, [OLD]),
    "wf-parent": (WP, [OLD]),
    "c-new": (WC, [MID, NEW]),
    "wf-sub": (WS, [OLD]),
    "s-new": (None, [NEW]),
    "p-old-1": (None, [OLD, OLD + timedelta(hours=1)]),
    "p-old-2": (None, [OLD]),
    ODD: (None, [OLD]),
    "p:old:colon": (None, [OLD]),
    "p-mid": (None, [OLD, MID]),
    "p-new": (None, [NEW]),
    "p-at-cutoff": (None, [OLD, CUTOFF]),  # not older than the cutoff: kept
    "p-just-before": (None, [CUTOFF - timedelta(microseconds=1)]),
    "p-nostatus": (None, []),  # never had a status: never old
    **{f"bulk-{n:02d}": (None, [OLD, OLD + timedelta(seconds=n)]) for n in range(20)},
}
OLD_IDS = {i for i, (_w, times) in INVOCATIONS.items() if times and times[-1] < CUTOFF}
RESULTS = {"p-old-1": '"r1"', "p-old-2": "", "p-new": '"new"', "m-old": "1", "m-new": "2", ODD: "3"}
RESULTS |= {f"bulk-{n:02d}": str(n) for n in range(0, 20, 2)}
EXCEPTIONS = {"p-old-1": "boom", "o-1": "", "c-new": "late"}
SUB_INVOCATIONS = [("wf-mixed", "m-old"), ("wf-mixed", "m-new"), ("wf-old", "o-1")]
SUB_INVOCATIONS += [("wf-sub", "s-new"), ("wf-sub", "p-old-2")]
DATA = [(WM, "k", 1), (WO, "k", 2), (WO, "other", 3), (WP, "k", 4), (WS, "k", 5)]


@dataclass(frozen=True)
class Op:
    """One write of the dataset and what owns it (it survives when its owner does)."""

    owner: str
    kind: DocumentKind
    apply: Callable[[BaseStateBackend], None]


def _history(invocation_id: str, status: InvocationStatus, at: datetime) -> InvocationHistory:
    history = InvocationHistory(
        invocation_id=invocation_id,
        status_record=InvocationStatusRecord(status, runner_id="runner-1", timestamp=at),
        runner_context_id="runner-1",
    )
    history._timestamp = at
    return history


def _operations() -> list[Op]:
    ops = [Op("*", DocumentKind.RUNNER_CONTEXT, lambda b: b.store_runner_context(CONTEXT))]
    for n, (invocation_id, (workflow, times)) in enumerate(INVOCATIONS.items()):
        call = CallId(TASK, f"args-{n}")
        pair = (
            InvocationDTO(InvocationId(invocation_id), call, workflow, None, None),
            CallDTO(call, {"n": str(n)}),
        )
        ops.append(
            Op(invocation_id, DocumentKind.INVOCATION, lambda b, pair=pair: b._upsert_invocations([pair]))
        )
        for k, at in enumerate(times):
            history = _history(invocation_id, S.SUCCESS if k == len(times) - 1 else S.RUNNING, at)
            ops.append(
                Op(
                    invocation_id,
                    DocumentKind.HISTORY,
                    lambda b, h=history: b._add_histories([InvocationId(h.invocation_id)], h),
                )
            )
    for invocation_id, value in RESULTS.items():
        ops.append(
            Op(
                invocation_id,
                DocumentKind.RESULT,
                lambda b, i=invocation_id, v=value: b._set_result(InvocationId(i), v),
            )
        )
    for invocation_id, value in EXCEPTIONS.items():
        ops.append(
            Op(
                invocation_id,
                DocumentKind.EXCEPTION,
                lambda b, i=invocation_id, v=value: b._set_exception(InvocationId(i), v),
            )
        )
    for workflow in WORKFLOWS:
        ops.append(
            Op(
                f"workflow:{workflow.workflow_id}",
                DocumentKind.WORKFLOW_RUN,
                lambda b, w=workflow: b.store_workflow_run(w),
            )
        )
    for workflow_id, sub in SUB_INVOCATIONS:
        ops.append(
            Op(
                sub,
                DocumentKind.WORKFLOW_SUB_INVOCATION,
                lambda b, w=workflow_id, s=sub: b.store_workflow_sub_invocation(
                    InvocationId(w), InvocationId(s)
                ),
            )
        )
    for workflow, key, value in DATA:
        ops.append(
            Op(
                f"workflow:{workflow.workflow_id}",
                DocumentKind.WORKFLOW_DATA,
                lambda b, w=workflow, k=key, v=value: b.set_workflow_data(w, k, v),
            )
        )
    return ops


OPERATIONS = _operations()


def _survives(op: Op) -> bool:
    if op.owner == "*":
        return True
    if op.owner.startswith("workflow:"):
        return op.owner.removeprefix("workflow:") in KEPT_WORKFLOWS
    return op.owner not in OLD_IDS


def _expected_report(dry_run: bool, app_id: str) -> PruneReport:
    return PruneReport(
        app_id=app_id,
        cutoff=CUTOFF,
        dry_run=dry_run,
        deleted=Counter(op.kind for op in OPERATIONS if not _survives(op)),
        workflows_kept=3,  # wf-mixed (m-new), wf-parent (c-new's parent workflow), wf-sub (s-new's link)
    )


# -- fixtures --------------------------------------------------------------------------------


def _ours(app_id: str, redis_url: str, batch_size: int = 3) -> RedisStackStateBackend:
    app = (
        PynencBuilder()
        .app_id(app_id)
        .memory()
        .redis_stack(url=redis_url)
        .custom_config(redis_stack_batch_size=batch_size)
        .build()
    )
    return RedisStackStateBackend(app)


def _app_keys(client: redis.Redis, backend: RedisStackStateBackend) -> set[str]:
    """Every key of the app (a test may scan; the code under test never does): documents only."""
    segment = encode_segment(backend.app.app_id).replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
    segment = segment.replace("[", "\\[").replace("]", "\\]")
    ns = backend.namespace.namespace
    keys = set(client.scan_iter(match=f"{ns}:*:{segment}:*", count=1000)) | set(
        client.scan_iter(match=f"{ns}:app-info:{segment}", count=1000)
    )
    pipe = client.pipeline(transaction=False)
    for key in sorted(keys):
        pipe.type(key)
    assert set(pipe.execute()) <= {"ReJSON-RL"}, "a key beside the documents"
    return keys


def _documents(client: redis.Redis, keys: set[str]) -> dict[str, object]:
    """Every JSON document of ``keys``."""
    return {key: client.execute_command("JSON.GET", key) for key in sorted(keys)}


def _expected_deleted(backend: RedisStackStateBackend, before: set[str]) -> set[str]:
    keys = backend.keys
    expected = set()
    for invocation_id in OLD_IDS:
        expected |= {
            keys.invocation(invocation_id),
            keys.result(invocation_id),
            keys.exception(invocation_id),
        }
    # History entry keys do not name their invocation: the documents do.
    entry_keys = [k for k in before if k.startswith(keys.history(""))]
    owners = backend.client.json().mget(entry_keys, "$.invocation_id") if entry_keys else []
    expected |= {k for k, owner in zip(entry_keys, owners, strict=True) if owner and owner[0] in OLD_IDS}
    for workflow_id, sub in SUB_INVOCATIONS:
        if sub in OLD_IDS:
            expected.add(keys.workflow_sub_invocation(workflow_id, sub))
    for workflow in WORKFLOWS:
        if workflow.workflow_id not in KEPT_WORKFLOWS:
            expected.add(keys.workflow_run(workflow.workflow_id))
    for workflow, key, _value in DATA:
        if workflow.workflow_id not in KEPT_WORKFLOWS:
            expected.add(keys.workflow_data(workflow.workflow_id, key))
    return expected & before  # results/exceptions only where one was written


@dataclass
class Loaded:
    ours: RedisStackStateBackend
    neighbour: RedisStackStateBackend
    client: redis.Redis


@pytest.fixture
def loaded(request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis) -> Iterator[Loaded]:
    """The dataset in our app, and the same in a neighbour app that must stay untouched."""
    ours = _ours(unique_app_id(request), redis_url)
    neighbour = _ours(unique_app_id(request, "-neighbour"), redis_url)
    for op in OPERATIONS:
        op.apply(ours)
        op.apply(neighbour)
    yield Loaded(ours, neighbour, redis_client)
    for backend in (ours, neighbour):
        backend.purge()


# -- the backend method ----------------------------------------------------------------------


def test_dry_run_counts_exactly_and_deletes_nothing(loaded: Loaded) -> None:
    before = _documents(loaded.client, _app_keys(loaded.client, loaded.ours))
    report = prune_state_backend(loaded.ours, CUTOFF, dry_run=True)
    assert report == _expected_report(True, loaded.ours.app.app_id)
    assert (
        report.deleted[DocumentKind.INVOCATION] == len(OLD_IDS) > 20
        and report.deleted[DocumentKind.WORKFLOW_RUN] == 1
    )
    assert _documents(loaded.client, _app_keys(loaded.client, loaded.ours)) == before


def test_prune_deletes_exactly_the_old_invocations(loaded: Loaded) -> None:
    client, ours = loaded.client, loaded.ours
    before = _app_keys(client, ours)
    neighbour_before = _documents(client, _app_keys(client, loaded.neighbour))
    expected_deleted = _expected_deleted(ours, before)
    dry = prune_state_backend(ours, CUTOFF, dry_run=True)
    report = prune_state_backend(ours, CUTOFF)
    assert report == _expected_report(False, ours.app.app_id)
    assert report.counts() == dry.counts() and report.deleted_documents == len(expected_deleted)
    after = _app_keys(client, ours)
    assert before - after == expected_deleted
    # Deleted invocations are found by no lookup; the others still are.
    children = {
        i for parent in {*OLD_IDS, *INVOCATIONS} for i in ours.get_child_invocations(InvocationId(parent))
    }
    assert not children & set(OLD_IDS)
    assert after <= before  # nothing written either
    # a second prune finds nothing; the neighbour app was never touched
    again = prune_state_backend(ours, CUTOFF)
    assert again.deleted_documents == 0 and again.workflows_kept == 0
    assert _app_keys(client, ours) == after
    assert _documents(client, _app_keys(client, loaded.neighbour)) == neighbour_before


def _flat(batches: Iterator[list[Any]]) -> list[Any]:
    return [item for batch in batches for item in batch]


def _run_key(run: WorkflowIdentity) -> tuple[str, str, str]:
    return (run.workflow_id, run.workflow_type.key, run.parent_workflow_id or "")


def _answer(backend: BaseStateBackend, method: str, invocation_id: str) -> tuple[str, Any]:
    try:
        return ("value", getattr(backend, method)(InvocationId(invocation_id)))
    except KeyError:
        return ("missing", None)


def test_after_prune_every_answer_is_that_of_the_survivors(loaded: Loaded) -> None:
    ours = loaded.ours
    prune_state_backend(ours, CUTOFF)
    mem = MemStateBackend(PynencBuilder().app_id(f"{ours.app.app_id}-mem").memory().build())
    for op in OPERATIONS:
        if _survives(op):
            op.apply(mem)
    ids = [*INVOCATIONS, *(w.workflow_id for w in WORKFLOWS), "missing"]
    for invocation_id in ids:
        inv = InvocationId(invocation_id)
        assert ours._get_invocation(inv) == mem._get_invocation(inv), invocation_id
        assert ours.get_history(inv) == mem.get_history(inv), invocation_id
        for method in (
            "get_child_invocations",
            "get_invocations_by_parent_event",
            "get_workflow_sub_invocations",
        ):
            assert Counter(getattr(ours, method)(inv)) == Counter(getattr(mem, method)(inv)), (
                method,
                invocation_id,
            )
        for method in ("_get_result", "_get_exception"):
            assert _answer(ours, method, invocation_id) == _answer(mem, method, invocation_id), (
                method,
                invocation_id,
            )
        assert Counter(ours.get_invocation_ids_by_workflow(invocation_id, None)) == Counter(
            mem.get_invocation_ids_by_workflow(invocation_id, None)
        )
    assert Counter(ours.get_invocation_ids_by_workflow()) == Counter(mem.get_invocation_ids_by_workflow())
    assert Counter(ours.get_invocation_ids_by_workflow(None, FLOW.key)) == Counter(
        mem.get_invocation_ids_by_workflow(None, FLOW.key)
    )
    assert sorted(map(_run_key, ours.get_all_workflow_runs())) == sorted(
        map(_run_key, mem.get_all_workflow_runs())
    )
    assert sorted(map(_run_key, ours.get_workflow_runs(FLOW))) == sorted(
        map(_run_key, mem.get_workflow_runs(FLOW))
    )
    assert sorted(t.key for t in ours.get_all_workflow_types()) == [FLOW.key]
    absent = object()
    for workflow, key, _value in DATA:
        assert ours.get_workflow_data(workflow, key, absent) == mem.get_workflow_data(workflow, key, absent)
    start, end = OLD - timedelta(days=1), NOW
    ours_entries = _flat(ours.iter_history_in_timerange(start, end, 7))
    mem_entries = _flat(mem.iter_history_in_timerange(start, end, 7))
    assert Counter(map(repr, ours_entries)) == Counter(map(repr, mem_entries))
    assert len([h for h in ours_entries if h.timestamp < CUTOFF]) > 0  # old entries of newer invocations
    assert sorted(_flat(ours.iter_invocations_in_timerange(start, end, 5))) == sorted(
        _flat(mem.iter_invocations_in_timerange(start, end, 5))
    )
    assert [c.runner_id for c in ours.get_matching_runner_contexts("runner")] == ["runner-1"]  # kept
    assert {i for i, _s, _t in ours.find_invocations()} == set(INVOCATIONS) - OLD_IDS - {"p-nostatus"}


def test_future_or_present_cutoff_is_refused_unless_all(loaded: Loaded) -> None:
    before = _app_keys(loaded.client, loaded.ours)
    for cutoff in (datetime.now(UTC) + timedelta(hours=1), datetime.now(UTC) + timedelta(seconds=5)):
        with pytest.raises(PruneRefusedError):
            prune_state_backend(loaded.ours, cutoff)
    assert _app_keys(loaded.client, loaded.ours) == before
    ours = loaded.ours
    report = prune_invocations(
        ours.client,
        ours.namespace,
        ours.schemas,
        ours.app.app_id,
        NOW + timedelta(days=1),
        allow_all=True,
        dry_run=True,
    )
    assert report.deleted[DocumentKind.INVOCATION] == len(INVOCATIONS) - 1  # every one with a status


def test_an_invocation_that_gets_a_new_status_meanwhile_is_kept(
    loaded: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: a runner records a new status for a selected invocation between its
    selection and the delete of its batch. The script's check keeps it whole."""
    ours = loaded.ours
    late = _history("p-old-1", S.RUNNING, NEW)
    original = prune_module._Pruner.dependents

    def racing_dependents(self: Any, invocation_ids: list[str]) -> Any:
        found = original(self, invocation_ids)
        if "p-old-1" in invocation_ids:  # after the lookup: the new entry is not in the batch
            ours._add_histories([InvocationId("p-old-1")], late)
        return found

    monkeypatch.setattr(prune_module._Pruner, "dependents", racing_dependents)
    report = prune_state_backend(ours, CUTOFF)
    assert report.skipped == 1
    assert report.deleted[DocumentKind.INVOCATION] == len(OLD_IDS) - 1
    history = ours.get_history(InvocationId("p-old-1"))
    assert [h.timestamp for h in history] == [
        OLD,
        OLD + timedelta(hours=1),
        NEW,
    ]  # whole, old entries included
    assert ours._get_result(InvocationId("p-old-1")) == '"r1"'


def test_a_finished_invocation_requeued_meanwhile_is_kept(
    loaded: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: between selection and delete, a selected SUCCESS invocation is retried
    (a RETRY entry whose time is still before the cutoff). It is no longer final: kept whole."""
    ours = loaded.ours
    retry = _history("p-old-2", S.RETRY, OLD + timedelta(hours=2))
    original = prune_module._Pruner.dependents

    def racing_dependents(self: Any, invocation_ids: list[str]) -> Any:
        found = original(self, invocation_ids)
        if "p-old-2" in invocation_ids:
            ours._add_histories([InvocationId("p-old-2")], retry)
        return found

    monkeypatch.setattr(prune_module._Pruner, "dependents", racing_dependents)
    report = prune_state_backend(ours, CUTOFF)
    assert report.skipped == 1 and report.deleted[DocumentKind.INVOCATION] == len(OLD_IDS) - 1
    assert [h.status_record.status for h in ours.get_history(InvocationId("p-old-2"))] == [S.SUCCESS, S.RETRY]
    assert ours._get_result(InvocationId("p-old-2")) == ""
    assert Counter(ours.get_workflow_sub_invocations(InvocationId("wf-sub"))) == Counter(["s-new", "p-old-2"])


UNFINISHED = [status for status in S if not status.is_final()]
FINAL = sorted(S.get_final_statuses())


def test_unfinished_invocations_are_never_pruned(request: pytest.FixtureRequest, redis_url: str) -> None:
    """One old invocation per status: only those in a final status go. A workflow whose old
    members are all finished but one is kept, with its data."""
    backend = _ours(unique_app_id(request), redis_url)
    flow = WorkflowIdentity(InvocationId("wf-unfinished"), FLOW, None)
    ids: dict[InvocationStatus, str] = {}
    try:
        for n, status in enumerate(S):
            invocation_id = f"inv-{status.value}"
            ids[status] = invocation_id
            call = CallId(TASK, f"args-{n}")
            workflow = flow if status in (S.PENDING, S.SUCCESS) else None
            backend._upsert_invocations(
                [(InvocationDTO(InvocationId(invocation_id), call, workflow, None, None), CallDTO(call, {}))]
            )
            for k, entry_status in enumerate((S.REGISTERED, status)):
                backend._add_histories(
                    [InvocationId(invocation_id)],
                    _history(invocation_id, entry_status, OLD + timedelta(seconds=k)),
                )
            backend._set_result(InvocationId(invocation_id), '"r"')
        backend.store_workflow_run(flow)
        backend.set_workflow_data(flow, "k", 1)
        assert len(UNFINISHED) >= 9 and set(FINAL) == {S.SUCCESS, S.FAILED, S.CONCURRENCY_CONTROLLED_FINAL}

        dry = prune_state_backend(backend, CUTOFF, dry_run=True)
        report = prune_state_backend(backend, CUTOFF)
        assert dry.counts() == report.counts()
        assert (
            report.deleted[DocumentKind.INVOCATION],
            report.deleted[DocumentKind.HISTORY],
            report.deleted[DocumentKind.RESULT],
        ) == (
            len(FINAL),
            2 * len(FINAL),
            len(FINAL),
        )
        assert (
            report.deleted[DocumentKind.WORKFLOW_RUN],
            report.deleted[DocumentKind.WORKFLOW_DATA],
            report.workflows_kept,
        ) == (0, 0, 1)
        for status, invocation_id in ids.items():
            kept = backend._get_invocation(InvocationId(invocation_id)) is not None
            assert kept == (status not in FINAL), status
            assert len(backend.get_history(InvocationId(invocation_id))) == (0 if status in FINAL else 2)
        assert [w.workflow_id for w in backend.get_all_workflow_runs()] == ["wf-unfinished"]
        assert backend.get_workflow_data(flow, "k") == 1
        assert {i for i, _s, _t in backend.find_invocations()} == {ids[s] for s in UNFINISHED}
    finally:
        backend.purge()


def test_workflows_left_by_a_crashed_run_are_collected_by_the_next(
    loaded: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the run dies after deleting the invocations, before collecting their
    workflows. The next run (which selects no invocation) collects them."""
    client, ours = loaded.client, loaded.ours
    expected_deleted = _expected_deleted(ours, _app_keys(client, ours))
    collect = prune_module._Pruner.prune_workflows

    def crash(self: Any) -> None:
        raise ConnectionError("simulated crash before the workflows are collected")

    monkeypatch.setattr(prune_module._Pruner, "prune_workflows", crash)
    with pytest.raises(ConnectionError):
        prune_state_backend(ours, CUTOFF)
    assert client.exists(ours.keys.workflow_run("wf-old"))  # not collected yet
    monkeypatch.setattr(prune_module._Pruner, "prune_workflows", collect)

    dry = prune_state_backend(ours, CUTOFF, dry_run=True)
    report = prune_state_backend(ours, CUTOFF)
    assert report.deleted[DocumentKind.INVOCATION] == dry.deleted[DocumentKind.INVOCATION] == 0
    assert (
        report.deleted[DocumentKind.WORKFLOW_RUN],
        report.deleted[DocumentKind.WORKFLOW_DATA],
        report.workflows_kept,
    ) == (1, 2, 3)
    assert dry.counts() == report.counts()
    assert expected_deleted.isdisjoint(_app_keys(client, ours))
    assert not client.exists(ours.keys.prune_pending_workflows())  # nothing owed any more
    assert prune_state_backend(ours, CUTOFF).deleted_documents == 0


# -- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("0", timedelta(0)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["30", "5w", "-1d", "d", "1.5d", "", "30d "])
def test_bad_durations(text: str) -> None:
    if text == "30d ":
        assert parse_duration(text) == timedelta(days=30)  # surrounding spaces are fine
        return
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def _table(out: str) -> dict[str, int]:
    rows = [line.split() for line in out.splitlines()[2 : 2 + len(PruneReport.COUNTED)]]
    return {row[0]: int(row[1]) for row in rows}


def test_command_line(loaded: Loaded, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    ours = loaded.ours
    app_id = ours.app.app_id
    base = ["prune", "--app-id", app_id, "--url", redis_url]
    before = _app_keys(loaded.client, ours)

    assert main([*base, "--older-than", "0"]) == 2
    assert "refused" in capsys.readouterr().err
    assert main(["prune", "--app-id", app_id]) == 2  # no duration, no --all
    capsys.readouterr()

    # "30d" is counted from a later now than CUTOFF: p-at-cutoff is old by then; nothing else
    # lies between the two instants
    expected = prune_state_backend(ours, datetime.now(UTC) - timedelta(days=30), dry_run=True).counts()
    assert expected[DocumentKind.INVOCATION] == len(OLD_IDS) + 1
    assert main([*base, "--older-than", "30d", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith(
        f"prune: app {app_id!r} in namespace 'pynenc': finished invocations"
    )
    assert out.splitlines()[1].split() == ["KIND", "WOULD", "DELETE"]
    assert _table(out) == expected
    assert "workflow runs kept (still referenced by newer invocations): 3" in out
    total = expected[DocumentKind.INVOCATION]
    assert err.splitlines()[-1].endswith(f"100% {total}/{total}")
    assert _app_keys(loaded.client, ours) == before

    assert main([*base, "--older-than", "30d"]) == 0
    out, _err = capsys.readouterr()
    assert out.splitlines()[1].split() == ["KIND", "DELETED"] and _table(out) == expected
    assert len(before - _app_keys(loaded.client, ours)) == sum(expected.values())

    # --all with 0: every remaining invocation with a status, through the app's configuration
    assert main([*base, "--older-than", "0", "--all", "--dry-run"]) == 0
    assert _table(capsys.readouterr().out)[DocumentKind.INVOCATION] == len(INVOCATIONS) - len(OLD_IDS) - 2


def test_command_line_takes_the_app_from_a_module(
    loaded: Loaded,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--app module:variable``: the app's id and configuration (its URL) are used."""
    module = tmp_path / "prune_target_app.py"
    module.write_text(
        textwrap.dedent(
            f"""
            from pynenc import PynencBuilder
            app = PynencBuilder().app_id({loaded.neighbour.app.app_id!r}).memory().redis_stack(url={redis_url!r}).build()
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    monkeypatch.delenv("PYNENC__REDIS_URL")  # only the app's configuration names the server
    before = _app_keys(loaded.client, loaded.ours)
    expected = prune_state_backend(
        loaded.neighbour, datetime.now(UTC) - timedelta(days=30), dry_run=True
    ).counts()
    assert main(["prune", "--app", "prune_target_app:app", "--older-than", "30d"]) == 0
    out = capsys.readouterr().out
    assert f"app {loaded.neighbour.app.app_id!r}" in out
    assert _table(out) == expected and expected[DocumentKind.INVOCATION] == len(OLD_IDS) + 1
    assert _app_keys(loaded.client, loaded.ours) == before  # the other app is untouched
