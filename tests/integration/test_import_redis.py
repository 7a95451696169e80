"""Import from pynenc-redis 0.3.0: a realistic dataset written by pynenc-redis's own
``RedisStateBackend`` (and, op for op, into pynenc's ``MemStateBackend``) is imported, then
every query of the state backend contract is asked of all three.

Ours must answer like pynenc-redis, except where pynenc-redis is known to be wrong; there ours
must answer like Mem, and each difference is asserted explicitly:

- ``get_invocation_ids_by_workflow(w, t)`` with an unknown ``w`` returns every member of type
  ``t`` (not the intersection); with neither filter it returns nothing (Mem: every member);
- ``iter_invocations_in_timerange`` repeats an id in every batch holding one of its entries,
  and cuts an id containing ``:`` at the first ``:``;
- ``iter_history_in_timerange`` keeps one of two identical entries (a sorted-set member), and
  fails on an invocation id containing ``:`` (it splits the member on ``:``);
- an empty-string result or exception reads as missing;
- ``get_matching_runner_contexts`` treats ``*``, ``?`` and ``[`` in the partial id as globs.

The source is plain Redis on the session server; reading it with SCAN is what the importer
does too (over the exact, glob-escaped prefix).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from pynenc import PynencBuilder
from pynenc.exceptions import InvocationNotFoundError
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

from pynenc_redis_stack.admin.import_source import source_app_info_key, source_prefix
from pynenc_redis_stack.admin.importer import KINDS, ImportReport, import_from_redis
from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.core.client import redacted_url
from pynenc_redis_stack.core.conf import ConfigStateBackendRedisStack
from pynenc_redis_stack.core.errors import RedisImportError
from pynenc_redis_stack.core.keys import DocumentKind, Namespace, encode_segment, glob_escape
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend
from tests.conftest import unique_app_id

S = InvocationStatus
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
COLON_TIME = T0 + timedelta(seconds=900)
"""The entries of the invocation whose id contains ':' are here, apart from the others."""

SEND = TaskId("shop.tasks", "send")
CHARGE = TaskId("shop.tasks", "charge")
CHECKOUT = TaskId("shop.flows", "checkout")
REFUND = TaskId("shop.flows", "refund")
W1 = WorkflowIdentity(InvocationId("wf-1"), CHECKOUT, None)
W2 = WorkflowIdentity(InvocationId("wf-2"), CHECKOUT, None)
W3 = WorkflowIdentity(InvocationId("wf-3"), REFUND, InvocationId("wf-1"))
WORKFLOWS = (W1, W2, W3)

ROOT = RunnerContext("ThreadRunner", "runner-root", pid=10, hostname="host-a", thread_id=1)
WORKER_1 = RunnerContext("ThreadRunner", "worker-1", pid=11, hostname="host-a", thread_id=2, parent_ctx=ROOT)
WORKER_2 = RunnerContext("ThreadRunner", "worker-2", pid=12, hostname="host-b", thread_id=3, parent_ctx=ROOT)
GLOBBY = RunnerContext(
    "ThreadRunner", "thread-a?b*", pid=13, hostname="host-b", thread_id=4, parent_ctx=WORKER_1
)
CONTEXTS = (ROOT, WORKER_1, WORKER_2, GLOBBY)

# invocation id -> (task, parent, parent event, workflow)
INVOCATIONS: dict[str, tuple[TaskId, str | None, str | None, WorkflowIdentity | None]] = {
    "wf-1": (CHECKOUT, None, None, W1),
    "inv-a": (SEND, "wf-1", None, W1),
    "inv-b": (CHARGE, "wf-1", None, W1),
    "wf-3": (REFUND, "wf-1", None, W3),
    "inv-f": (SEND, "wf-3", None, W3),
    "wf-2": (CHECKOUT, None, None, W2),
    "inv-e": (SEND, "wf-2", None, W2),
    "inv-c": (SEND, None, "evt-1", None),
    "inv-d": (CHARGE, "inv-a", "evt-1", None),
    "job:with:colons": (SEND, None, None, None),
    "inv-empty": (SEND, None, None, None),
    **{f"bulk-{n:02d}": (SEND, "inv-c", None, None) for n in range(12)},
}
SUB_INVOCATIONS = {"wf-1": ["inv-a", "inv-b", "wf-3"], "wf-3": ["inv-f"], "wf-2": ["inv-e"]}
WORKFLOW_DATA: list[tuple[WorkflowIdentity, str, Any]] = [
    (W1, "cart", {"items": 3}),
    (W1, "total", 42.5),
    (W2, "note:data:x", "tricky"),
    (W3, "flag", True),
]
RESULTS = {"inv-a": '"ok"', "wf-1": "42", "inv-empty": "", **{f"bulk-{n:02d}": str(n) for n in range(6)}}
EXCEPTIONS = {"inv-b": '{"error": "CardDeclined"}', "inv-empty": ""}
MISSING = "no-such-id"


def _entry(
    invocation_id: str, status: InvocationStatus, at: datetime, context: RunnerContext
) -> InvocationHistory:
    history = InvocationHistory(
        invocation_id=invocation_id,
        status_record=InvocationStatusRecord(status, runner_id=context.runner_id, timestamp=at),
        runner_context_id=context.runner_id,
        registered_by_inv_id=INVOCATIONS[invocation_id][1] if status is S.REGISTERED else None,
    )
    history._timestamp = at
    return history


def _histories() -> list[tuple[InvocationHistory, RunnerContext]]:
    """Every entry, in the order it is written; special cases spelled out below."""
    entries: list[tuple[InvocationHistory, RunnerContext]] = []
    for n, invocation_id in enumerate(INVOCATIONS):
        if invocation_id in ("bulk-10", "bulk-11"):
            continue  # upserted, never given a status
        base = COLON_TIME if ":" in invocation_id else T0 + timedelta(seconds=10 * n)
        final = S.FAILED if invocation_id in EXCEPTIONS else S.SUCCESS
        entries.append((_entry(invocation_id, S.REGISTERED, base, ROOT), ROOT))
        if invocation_id == "inv-a":  # the very same entry twice: both must be kept
            entries.append(entries[-1])
        worker = WORKER_1 if n % 2 else GLOBBY
        running_at = (
            T0 + timedelta(seconds=300)
            if invocation_id in ("inv-b", "inv-c")
            else base + timedelta(seconds=1)
        )
        entries.append((_entry(invocation_id, S.RUNNING, running_at, worker), worker))
        # inv-d: its final status shares the RUNNING timestamp; arrival order decides
        final_at = running_at if invocation_id == "inv-d" else running_at + timedelta(seconds=2)
        entries.append((_entry(invocation_id, final, final_at, WORKER_2), WORKER_2))
    return entries


HISTORIES = _histories()


def load_dataset(backend: BaseStateBackend) -> None:
    """Apply the dataset through the backend's own methods (pynenc's calls, with the
    timestamps set explicitly)."""
    for context in CONTEXTS:
        backend.store_runner_context(context)
    pairs = []
    for n, (invocation_id, (task, parent, event, workflow)) in enumerate(INVOCATIONS.items()):
        call = CallId(task, f"args-{n}")
        inv = InvocationDTO(
            InvocationId(invocation_id),
            call,
            workflow,
            InvocationId(parent) if parent else None,
            event,
        )
        pairs.append((inv, CallDTO(call, {"n": str(n), "label": json.dumps(invocation_id)})))
    backend._upsert_invocations(pairs)
    for history, _context in HISTORIES:
        backend._add_histories([InvocationId(history.invocation_id)], history)
    for invocation_id, value in RESULTS.items():
        backend._set_result(InvocationId(invocation_id), value)
    for invocation_id, value in EXCEPTIONS.items():
        backend._set_exception(InvocationId(invocation_id), value)
    for workflow in WORKFLOWS:
        backend.store_workflow_run(workflow)
    for workflow_id, subs in SUB_INVOCATIONS.items():
        for sub in subs:
            backend.store_workflow_sub_invocation(InvocationId(workflow_id), InvocationId(sub))
    for workflow, key, value in WORKFLOW_DATA:
        backend.set_workflow_data(workflow, key, value)


EXPECTED_FOUND = {
    DocumentKind.INVOCATION: len(INVOCATIONS),
    DocumentKind.HISTORY: len(HISTORIES),
    DocumentKind.RESULT: len(RESULTS),
    DocumentKind.EXCEPTION: len(EXCEPTIONS),
    DocumentKind.RUNNER_CONTEXT: len(CONTEXTS),
    DocumentKind.WORKFLOW_RUN: len(WORKFLOWS),
    DocumentKind.WORKFLOW_SUB_INVOCATION: sum(len(subs) for subs in SUB_INVOCATIONS.values()),
    DocumentKind.WORKFLOW_DATA: len(WORKFLOW_DATA),
    DocumentKind.APP_INFO: 1,
}
EXPECTED_DERIVED = (
    1  # history_by_timestamp
    + len({p for _t, p, _e, _w in INVOCATIONS.values() if p})  # parent_invocation_children:*
    + 1  # parent_event_children:evt-1
    + len(WORKFLOWS)  # workflow:invocations:*
    + 2  # workflow:type_invocations:* (checkout, refund)
    + 1  # workflow:types
    + 2  # workflow:type_index:* (checkout, refund)
)


# -- fixtures --------------------------------------------------------------------------------


def _pynenc_redis(app_id: str, redis_url: str) -> BaseStateBackend:
    """pynenc-redis's RedisStateBackend for ``app_id``; ``app.state_backend`` stores the app info."""
    app = (
        PynencBuilder()
        .app_id(app_id)
        .memory()
        .custom_config(state_backend_cls="RedisStateBackend", redis_url=redis_url)
        .build()
    )
    backend = app.state_backend
    assert type(backend).__name__ == "RedisStateBackend"
    return backend


def _ours(app_id: str, redis_url: str, namespace: str = "pynenc") -> RedisStackStateBackend:
    """Our backend, constructed directly so it registers no app info of its own."""
    app = (
        PynencBuilder()
        .app_id(app_id)
        .memory()
        .redis_stack(url=redis_url)
        .custom_config(redis_stack_namespace=namespace)
        .build()
    )
    return RedisStackStateBackend(app)


def _source_keys(client: redis.Redis, app_id: str) -> list[str]:
    keys = [_text(k) for k in client.scan_iter(match=glob_escape(source_prefix(app_id)) + "*", count=1000)]
    return sorted(keys) + (
        [source_app_info_key(app_id)] if client.exists(source_app_info_key(app_id)) else []
    )


def _drop_source(client: redis.Redis, app_id: str) -> None:
    """Delete one pynenc-redis app's keys exactly (its own purge scans with unescaped globs)."""
    keys = _source_keys(client, app_id)
    if keys:
        client.unlink(*keys)


def _target_keys(client: redis.Redis, namespace: str) -> list[str]:
    return sorted(k for k in client.scan_iter(match=f"{namespace}:*", count=1000) if ":idx:" not in k)


def _drop_target(client: redis.Redis, namespace: str) -> None:
    """Delete a test namespace's documents and indexes (index definitions only: documents first)."""
    keys = _target_keys(client, namespace)
    if keys:
        client.unlink(*keys)
    for index in client.execute_command("FT._LIST"):
        if index.startswith(f"{namespace}:idx:"):
            client.execute_command("FT.DROPINDEX", index)


def _documents(client: redis.Redis, keys: list[str]) -> dict[str, Any]:
    """Every document (parsed) and the history counter's value: no other kind of key is written
    (but the namespace's trusted-index marker, which the index check writes)."""
    values: dict[str, Any] = {}
    for key in keys:
        if key == Namespace(key.split(":", 1)[0]).index_check():
            continue
        key_type = client.type(key)
        assert key_type in ("string", "ReJSON-RL"), (key, key_type)
        if key_type == "string":
            values[key] = client.get(key)
        else:
            values[key] = json.loads(client.execute_command("JSON.GET", key))
    return values


def _snapshot(raw_client: redis.Redis, keys: list[str]) -> dict[str, tuple[bytes | None, int]]:
    """DUMP and PTTL of every key: any change to a value, type or expiry shows."""
    return {key: (raw_client.dump(key), raw_client.pttl(key)) for key in keys}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class Imported:
    app_id: str
    namespace: str
    source: BaseStateBackend
    mem: MemStateBackend
    ours: RedisStackStateBackend
    report: ImportReport
    dry_run: ImportReport
    source_before: dict[str, tuple[bytes | None, int]]
    source_after: dict[str, tuple[bytes | None, int]]
    target_after_dry_run: list[str]
    progress: list[tuple[int, int]]


@pytest.fixture(scope="module")
def imported(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Imported]:
    """The dataset in pynenc-redis and Mem, imported into ours (same app id, own namespace)."""
    app_id = unique_app_id(request)
    namespace = f"import-{app_id[-10:]}"
    client = redis.Redis.from_url(redis_url, protocol=2, decode_responses=True)
    raw_client = redis.Redis.from_url(redis_url, protocol=2)  # bytes: DUMP payloads
    _drop_source(client, app_id)
    source = _pynenc_redis(app_id, redis_url)
    load_dataset(source)
    mem = MemStateBackend(PynencBuilder().app_id(f"{app_id}-mem").memory().build())
    load_dataset(mem)
    ours = _ours(app_id, redis_url, namespace)
    source_keys = _source_keys(client, app_id)
    source_before = _snapshot(raw_client, source_keys)
    dry_run = import_from_redis(client, ours, app_id, dry_run=True)
    target_after_dry_run = _target_keys(client, namespace)
    progress: list[tuple[int, int]] = []
    # the bytes client as source: the importer decodes either kind of reply
    report = import_from_redis(
        raw_client, ours, app_id, progress=lambda d, t: progress.append((d, t)), batch_size=7
    )
    source_after = _snapshot(raw_client, _source_keys(client, app_id))
    yield Imported(
        app_id,
        namespace,
        source,
        mem,
        ours,
        report,
        dry_run,
        source_before,
        source_after,
        target_after_dry_run,
        progress,
    )
    _drop_target(client, namespace)
    _drop_source(client, app_id)
    client.close()
    raw_client.close()


# -- the import itself -----------------------------------------------------------------------


def test_dry_run_counts_every_kind_exactly_and_writes_nothing(imported: Imported) -> None:
    report = imported.dry_run
    assert report.dry_run
    assert dict(report.found) == EXPECTED_FOUND
    assert report.derived_keys == EXPECTED_DERIVED
    assert report.keys_scanned == len(imported.source_before) - 1  # the app info key is apart
    assert not report.written and not report.errors and not report.unrecognized
    assert imported.target_after_dry_run == []  # not even an index or a counter


def test_import_writes_every_item_and_leaves_the_source_untouched(imported: Imported) -> None:
    report = imported.report
    assert dict(report.found) == EXPECTED_FOUND
    assert dict(report.written) == EXPECTED_FOUND
    assert report.unchanged == 0 and report.ok and not report.unrecognized
    assert imported.source_after == imported.source_before
    # batches of 7 source keys, then the app info
    total = report.keys_scanned
    assert imported.progress[-1] == (total, total)
    assert [d for d, _t in imported.progress[:-1]] == list(range(7, total, 7)) + [total]


def test_second_import_changes_nothing(imported: Imported, redis_client: redis.Redis) -> None:
    keys = _target_keys(redis_client, imported.namespace)
    before = _documents(redis_client, keys)
    again = import_from_redis(redis_client, imported.ours, imported.app_id, batch_size=5)
    assert _target_keys(redis_client, imported.namespace) == keys
    assert _documents(redis_client, keys) == before  # history-seq included: no entry rewritten
    assert again.written[DocumentKind.HISTORY] == 0
    assert again.unchanged == len(HISTORIES)
    assert dict(again.written) == {k: v for k, v in EXPECTED_FOUND.items() if k != DocumentKind.HISTORY}


def test_history_entries_get_deterministic_keys(imported: Imported, redis_client: redis.Redis) -> None:
    """Two identical entries stay two, under keys derived from position and content."""
    prefix = Namespace(imported.namespace).for_app(imported.app_id).history("inv-a", "")
    keys = [k for k in _target_keys(redis_client, imported.namespace) if k.startswith(prefix)]
    assert len(keys) == 4  # REGISTERED twice, RUNNING, SUCCESS
    suffixes = sorted(k.rsplit(":", 1)[1] for k in keys)
    assert [s.split("-")[1] for s in suffixes] == ["000000", "000001", "000002", "000003"]
    assert suffixes[0].split("-")[2] == suffixes[1].split("-")[2]  # identical entries, same hash


def test_status_is_the_latest_entry_arrival_order_on_ties(imported: Imported) -> None:
    statuses = {inv: (status, ts) for inv, status, ts in imported.ours.find_invocations()}
    expected: dict[str, tuple[InvocationStatus, datetime]] = {}
    for history, _context in HISTORIES:  # later arrivals win ties, as the history script does
        current = expected.get(history.invocation_id)
        if current is None or history.timestamp >= current[1]:
            expected[history.invocation_id] = (history.status_record.status, history.timestamp)
    assert statuses == expected
    assert statuses["inv-d"][0] is S.SUCCESS  # RUNNING and SUCCESS share a timestamp
    assert "bulk-10" not in statuses  # never had a status


# -- every query of the contract -------------------------------------------------------------

ALL_IDS = [*INVOCATIONS, "evt-1", MISSING]


def _invocation(backend: BaseStateBackend, invocation_id: str) -> tuple[InvocationDTO, CallDTO] | None:
    try:
        found: tuple[InvocationDTO, CallDTO] | None = backend._get_invocation(InvocationId(invocation_id))
        return found
    except InvocationNotFoundError:  # pynenc-redis raises where the contract returns None
        return None


def _payload(backend: BaseStateBackend, method: str, invocation_id: str) -> tuple[str, str | None]:
    try:
        return ("value", getattr(backend, method)(InvocationId(invocation_id)))
    except KeyError:
        return ("missing", None)


def test_invocations_and_their_families(imported: Imported) -> None:
    ours, source, mem = imported.ours, imported.source, imported.mem
    for invocation_id in ALL_IDS:
        assert (
            _invocation(ours, invocation_id)
            == _invocation(source, invocation_id)
            == _invocation(mem, invocation_id)
        )
        for method in ("get_child_invocations", "get_invocations_by_parent_event"):
            answer = Counter(getattr(ours, method)(invocation_id))
            assert answer == Counter(getattr(source, method)(invocation_id)), (method, invocation_id)
            assert answer == Counter(getattr(mem, method)(invocation_id)), (method, invocation_id)
    assert len(list(ours.get_child_invocations(InvocationId("inv-c")))) == 12
    assert sorted(ours.get_invocations_by_parent_event("evt-1")) == ["inv-c", "inv-d"]
    found = ours._get_invocation(InvocationId("inv-a"))
    assert found is not None and found[1].serialized_arguments == {"n": "1", "label": '"inv-a"'}


def test_histories(imported: Imported) -> None:
    ours, source, mem = imported.ours, imported.source, imported.mem
    for invocation_id in ALL_IDS:
        history = ours.get_history(InvocationId(invocation_id))
        assert (
            history
            == source.get_history(InvocationId(invocation_id))
            == mem.get_history(InvocationId(invocation_id))
        )
    assert len(ours.get_history(InvocationId("inv-a"))) == 4  # identical entries both kept


def test_results_and_exceptions(imported: Imported) -> None:
    ours, source, mem = imported.ours, imported.source, imported.mem
    for method in ("_get_result", "_get_exception"):
        for invocation_id in ALL_IDS:
            answer = _payload(ours, method, invocation_id)
            assert answer == _payload(mem, method, invocation_id), (method, invocation_id)
            if invocation_id == "inv-empty":  # pynenc-redis reads "" as missing
                assert answer == ("value", "") and _payload(source, method, invocation_id) == (
                    "missing",
                    None,
                )
            else:
                assert answer == _payload(source, method, invocation_id), (method, invocation_id)


def _run_key(run: WorkflowIdentity) -> tuple[str, str, str]:
    return (run.workflow_id, run.workflow_type.key, run.parent_workflow_id or "")


def test_workflows(imported: Imported) -> None:
    ours, source, mem = imported.ours, imported.source, imported.mem
    types = sorted(t.key for t in ours.get_all_workflow_types())
    assert (
        types
        == sorted(t.key for t in source.get_all_workflow_types())
        == sorted(t.key for t in mem.get_all_workflow_types())
    )
    assert types == [CHECKOUT.key, REFUND.key]
    runs = sorted(map(_run_key, ours.get_all_workflow_runs()))
    assert (
        runs
        == sorted(map(_run_key, source.get_all_workflow_runs()))
        == sorted(map(_run_key, mem.get_all_workflow_runs()))
    )
    assert len(runs) == 3
    for task in (CHECKOUT, REFUND, SEND):
        answer = sorted(map(_run_key, ours.get_workflow_runs(task)))
        assert (
            answer
            == sorted(map(_run_key, source.get_workflow_runs(task)))
            == sorted(map(_run_key, mem.get_workflow_runs(task)))
        )
    for workflow_id in [*SUB_INVOCATIONS, "inv-a", MISSING]:
        subs = Counter(ours.get_workflow_sub_invocations(InvocationId(workflow_id)))
        assert subs == Counter(source.get_workflow_sub_invocations(InvocationId(workflow_id)))
        assert subs == Counter(mem.get_workflow_sub_invocations(InvocationId(workflow_id)))
    absent = object()
    for workflow, key, value in [*WORKFLOW_DATA, (W2, "cart", None), (W1, "note:data:x", None)]:
        answer = ours.get_workflow_data(workflow, key, absent)
        assert (
            answer
            == source.get_workflow_data(workflow, key, absent)
            == mem.get_workflow_data(workflow, key, absent)
        )
        assert answer == (absent if value is None else value)


def test_invocation_ids_by_workflow(imported: Imported) -> None:
    ours, source, mem = imported.ours, imported.source, imported.mem

    def answers(workflow_id: str | None, type_key: str | None) -> tuple[Counter[str], ...]:
        return tuple(
            Counter(b.get_invocation_ids_by_workflow(workflow_id, type_key)) for b in (ours, source, mem)
        )

    for workflow in WORKFLOWS:
        for workflow_id, type_key in (
            (workflow.workflow_id, None),
            (None, workflow.workflow_type.key),
            (workflow.workflow_id, workflow.workflow_type.key),
            (workflow.workflow_id, SEND.key),  # both known, nothing in common
        ):
            ours_answer, source_answer, mem_answer = answers(workflow_id, type_key)
            assert ours_answer == source_answer == mem_answer, (workflow_id, type_key)
    assert answers("wf-1", None)[0] == Counter(["wf-1", "inv-a", "inv-b"])
    # pynenc-redis: an unknown workflow id drops the filter instead of intersecting
    ours_answer, source_answer, mem_answer = answers(MISSING, CHECKOUT.key)
    assert ours_answer == mem_answer == Counter()
    assert source_answer == Counter(["wf-1", "inv-a", "inv-b", "wf-2", "inv-e"])
    # pynenc-redis: neither filter answers nothing; the contract (Mem) lists every member
    ours_answer, source_answer, mem_answer = answers(None, None)
    assert ours_answer == mem_answer == Counter(["wf-1", "inv-a", "inv-b", "wf-3", "inv-f", "wf-2", "inv-e"])
    assert source_answer == Counter()


def _flat(batches: list[list[Any]]) -> list[Any]:
    return [item for batch in batches for item in batch]


def _entry_key(h: InvocationHistory) -> str:
    return json.dumps(
        [h.invocation_id, h.timestamp.isoformat(), h.status_record.to_json(), h.runner_context_id]
    )


def _tie_groups(entries: list[InvocationHistory]) -> list[list[str]]:
    """Entries by timestamp, each group in a canonical order (backends order ties differently)."""
    return [
        sorted(map(_entry_key, group)) for _ts, group in itertools.groupby(entries, key=lambda h: h.timestamp)
    ]


def test_history_in_timerange(imported: Imported) -> None:
    ours, source, mem = imported.ours, imported.source, imported.mem
    start, end = T0 - timedelta(seconds=1), COLON_TIME + timedelta(seconds=10)
    for batch_size in (1, 4, 100):
        ours_batches = list(ours.iter_history_in_timerange(start, end, batch_size))
        mem_batches = list(mem.iter_history_in_timerange(start, end, batch_size))
        assert [len(b) for b in ours_batches] == [len(b) for b in mem_batches]
        assert _tie_groups(_flat(ours_batches)) == _tie_groups(_flat(mem_batches))
    entries = _flat(list(ours.iter_history_in_timerange(start, end, 100)))
    assert Counter(map(_entry_key, entries)) == Counter(_entry_key(h) for h, _c in HISTORIES)
    assert [h.timestamp for h in entries] == sorted(h.timestamp for h in entries)
    for invocation_id in INVOCATIONS:  # each invocation's entries keep their source order on ties
        own = [h for h in entries if h.invocation_id == invocation_id]
        assert own == sorted(
            (h for h, _c in HISTORIES if h.invocation_id == invocation_id), key=lambda h: h.timestamp
        )
    # pynenc-redis splits its sorted-set members on ':': an id containing one breaks the range
    with pytest.raises(json.JSONDecodeError):
        _flat(list(source.iter_history_in_timerange(start, end, 100)))
    # without that invocation: the same entries, less one of inv-a's two identical ones
    before_colon = COLON_TIME - timedelta(seconds=1)
    ours_part = _flat(list(ours.iter_history_in_timerange(start, before_colon, 3)))
    source_part = _flat(list(source.iter_history_in_timerange(start, before_colon, 3)))
    assert [h.timestamp for h in source_part] == sorted(h.timestamp for h in source_part)
    duplicate = next(h for h, _c in HISTORIES if h.invocation_id == "inv-a")
    assert Counter(map(_entry_key, ours_part)) - Counter(map(_entry_key, source_part)) == Counter(
        [_entry_key(duplicate)]
    )
    assert Counter(map(_entry_key, source_part)) - Counter(map(_entry_key, ours_part)) == Counter()


def test_invocations_in_timerange(imported: Imported) -> None:
    ours, source, mem = imported.ours, imported.source, imported.mem
    start, end = T0 - timedelta(seconds=1), COLON_TIME + timedelta(seconds=10)
    with_status = {h.invocation_id for h, _c in HISTORIES}
    for batch_size in (1, 5, 100):
        ours_batches = list(ours.iter_invocations_in_timerange(start, end, batch_size))
        mem_batches = list(mem.iter_invocations_in_timerange(start, end, batch_size))
        assert [len(b) for b in ours_batches] == [len(b) for b in mem_batches]
        assert sorted(_flat(ours_batches)) == sorted(_flat(mem_batches)) == sorted(with_status)
    # pynenc-redis: one id per entry across batches, and 'job:with:colons' cut to 'job'
    source_ids = _flat(list(source.iter_invocations_in_timerange(start, end, 1)))
    assert Counter(source_ids)["inv-b"] == 3
    assert "job" in source_ids and "job:with:colons" not in source_ids


def test_runner_contexts(imported: Imported) -> None:
    ours, source, mem = imported.ours, imported.source, imported.mem
    for partial in ("worker", "runner-root", "-", "2", "thread-a", MISSING):
        answer = sorted(c.to_json() for c in ours.get_matching_runner_contexts(partial))
        assert answer == sorted(c.to_json() for c in source.get_matching_runner_contexts(partial)), partial
        assert answer == sorted(c.to_json() for c in mem.get_matching_runner_contexts(partial)), partial
    # globs to pynenc-redis, plain characters to the contract
    for partial, expected in {"?": ["thread-a?b*"], "*": ["thread-a?b*"], "r?o": [], "[ab]": []}.items():
        answer = sorted(c.runner_id for c in ours.get_matching_runner_contexts(partial))
        assert answer == sorted(c.runner_id for c in mem.get_matching_runner_contexts(partial)) == expected
        assert len(list(source.get_matching_runner_contexts(partial))) > len(answer), partial
    ids = [c.runner_id for c in CONTEXTS] + [MISSING]
    assert ours._get_runner_contexts(ids) == source._get_runner_contexts(ids) == mem._get_runner_contexts(ids)
    assert ours.get_runner_context("thread-a?b*") == GLOBBY  # with its parent chain
    assert ours.get_runner_context("thread-a?b*").parent_ctx.parent_ctx == ROOT


def test_app_info(imported: Imported, monkeypatch: pytest.MonkeyPatch) -> None:
    info = imported.ours.get_app_info()
    assert info == imported.source.get_app_info()
    assert info.app_id == imported.app_id
    # discovery reads the default configuration: point it at the import's namespace
    monkeypatch.setenv("PYNENC__REDIS_STACK_NAMESPACE", imported.namespace)
    assert RedisStackStateBackend.discover_app_infos()[imported.app_id] == info
    assert type(imported.source).discover_app_infos()[imported.app_id] == info


# -- ids pynenc-redis mishandles, renamed targets, the command line --------------------------


def _small_dataset(backend: BaseStateBackend, label: str) -> None:
    call = CallId(SEND, label)
    backend._upsert_invocations(
        [(InvocationDTO(InvocationId(f"{label}-inv"), call, None, None, None), CallDTO(call, {}))]
    )
    backend._add_histories([InvocationId(f"{label}-inv")], _entry_for(f"{label}-inv"))
    backend._set_result(InvocationId(f"{label}-inv"), json.dumps(label))


def _entry_for(invocation_id: str) -> InvocationHistory:
    history = InvocationHistory(
        invocation_id=invocation_id,
        status_record=InvocationStatusRecord(S.SUCCESS, runner_id="r", timestamp=T0),
        runner_context_id="r",
    )
    history._timestamp = T0
    return history


@pytest.fixture
def glob_apps(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> Iterator[tuple[str, str]]:
    """A pynenc-redis app whose id holds glob characters, and one its unescaped pattern matches."""
    suffix = unique_app_id(request)[-10:]
    tricky, neighbour = f"a?c[1]-{suffix}", f"abc__OPEN_BRACKET__1__CLOSE_BRACKET__-{suffix}"
    for app_id in (tricky, neighbour):
        _small_dataset(_pynenc_redis(app_id, redis_url), app_id)
    yield tricky, neighbour
    for app_id in (tricky, neighbour):
        _drop_source(redis_client, app_id)


def test_glob_characters_in_the_app_id_select_only_that_app(
    glob_apps: tuple[str, str], redis_client: redis.Redis, redis_url: str
) -> None:
    tricky, neighbour = glob_apps
    # the unescaped pattern pynenc-redis would use reads the neighbour's keys too
    assert any(neighbour in k for k in redis_client.scan_iter(match=source_prefix(tricky) + "*", count=1000))
    namespace = f"import-glob-{tricky[-10:]}"
    conf = ConfigStateBackendRedisStack(
        config_values={"redis_url": redis_url, "redis_stack_namespace": namespace}
    )
    report = import_from_redis(redis_client, conf, tricky, target_app_id="renamed-" + tricky[-10:])
    try:
        assert report.found == Counter({"invocation": 1, "history": 1, "result": 1, "app-info": 1})
        assert report.derived_keys == 1 and report.ok
        renamed = _ours(report.target_app_id, redis_url, namespace)
        assert [h.invocation_id for h in renamed.get_history(InvocationId(f"{tricky}-inv"))] == [
            f"{tricky}-inv"
        ]
        assert renamed._get_result(InvocationId(f"{tricky}-inv")) == json.dumps(tricky)
        assert renamed._get_invocation(InvocationId(f"{neighbour}-inv")) is None
        info = renamed.get_app_info()  # the registration follows the documents to the new id
        assert info.app_id == report.target_app_id and info.config_values["app_id"] == tricky
    finally:
        _drop_target(redis_client, namespace)


def test_app_ids_pynenc_redis_refuses_are_refused(redis_client: redis.Redis, redis_url: str) -> None:
    conf = ConfigStateBackendRedisStack(config_values={"redis_url": redis_url})
    for app_id in ("", "with:colon"):
        with pytest.raises(RedisImportError):
            import_from_redis(redis_client, conf, app_id, dry_run=True)


def test_unparsable_and_unknown_keys_are_reported_not_guessed(
    request: pytest.FixtureRequest, redis_client: redis.Redis, redis_url: str
) -> None:
    app_id = unique_app_id(request)
    prefix = source_prefix(app_id)
    _small_dataset(_pynenc_redis(app_id, redis_url), "good")
    redis_client.set(prefix + "invocation:broken", "{not json")
    redis_client.set(prefix + "invocation_status:good-inv", "success")  # an older layout's key
    namespace = f"import-bad-{app_id[-10:]}"
    conf = ConfigStateBackendRedisStack(
        config_values={"redis_url": redis_url, "redis_stack_namespace": namespace}
    )
    try:
        report = import_from_redis(redis_client, conf, app_id)
        assert [key for key, _why in report.errors] == [prefix + "invocation:broken"]
        assert not report.ok and "JSONDecodeError" in report.errors[0][1]
        assert report.unrecognized == [prefix + "invocation_status:good-inv"]
        assert report.written[DocumentKind.INVOCATION] == 1  # everything else is imported
        assert _ours(app_id, redis_url, namespace)._get_result(InvocationId("good-inv")) == '"good"'
    finally:
        _drop_source(redis_client, app_id)
        _drop_target(redis_client, namespace)


def test_command_line_dry_run_then_import(
    request: pytest.FixtureRequest,
    redis_client: redis.Redis,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app_id = unique_app_id(request)
    namespace = f"import-cli-{app_id[-10:]}"
    _small_dataset(_pynenc_redis(app_id, redis_url), "cli")
    # the source defaults to the configured redis_url (PYNENC__REDIS_URL, as pynenc-redis reads it)
    monkeypatch.setenv("PYNENC__APP_ID", app_id)
    args = ["import-redis", "--namespace", namespace, "--url", redis_url]
    try:
        assert main([*args, "--dry-run"]) == 0
        out, err = capsys.readouterr()
        assert f"import-redis: app {app_id!r} from {redacted_url(redis_url)}" in out
        assert "dry run, nothing written" in out
        lines = out.splitlines()
        assert lines[1].split() == ["KIND", "FOUND"]
        table = dict(line.split() for line in lines[2 : 2 + len(KINDS)])
        assert table == {
            kind: str({"invocation": 1, "history": 1, "result": 1, "app-info": 1}.get(kind, 0))
            for kind in KINDS
        }
        assert err.splitlines()[-1].endswith("100% 4/4")  # the progress bar on stderr: 3 keys + the zset
        assert _target_keys(redis_client, namespace) == []

        assert main(args) == 0
        out, _err = capsys.readouterr()
        assert out.splitlines()[1].split() == ["KIND", "FOUND", "WRITTEN"]
        rows = [line.split() for line in out.splitlines()[2 : 2 + len(KINDS)]]
        assert ["invocation", "1", "1"] in rows and ["app-info", "1", "1"] in rows
        assert _ours(app_id, redis_url, namespace).get_history(InvocationId("cli-inv")) == [
            _entry_for("cli-inv")
        ]

        assert main(["import-redis", "--app-id", f"{app_id}-none", "--namespace", namespace]) == 1
        assert "has no data in the pynenc-redis store" in capsys.readouterr().err
    finally:
        _drop_source(redis_client, app_id)
        _drop_target(redis_client, namespace)
