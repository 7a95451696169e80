"""The measured calls: pynenc's public state-backend methods, each with its arguments drawn
from the dataset and a check of every answer against the dataset's truth.

Reads come first; the write calls (which add history or rewrite invocations identically)
come last, so the truth the reads are checked against never moves under them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord
from pynenc.state_backend.base_state_backend import InvocationHistory

from benchmarks.backends import PYNENC_REDIS, SQLITE, Subject, invocation
from benchmarks.dataset import Dataset, HistoryEntry

Check = Callable[[Subject, Dataset, Any, Any], str | None]


@dataclass(frozen=True)
class CallSpec:
    """One row of the table."""

    name: str
    draw: Callable[[Dataset, random.Random], Any]  # the argument of one repetition
    invoke: Callable[[Subject, Dataset, Any], Any]  # the call, its answer fully consumed
    check: Check  # None when the answer is right, else what is wrong
    repeat_share: float = 1.0  # fraction of --repeat (slow calls repeat less)
    min_repeat: int = 3
    target: float | None = None  # the ratio to pynenc-redis this row must stay at or below
    # Builds what the caller holds before the call (pynenc's objects), untimed; invoke then
    # gets its result instead of the drawn argument. None: invoke gets the drawn argument.
    prepare: Callable[[Subject, Dataset, Any], Any] | None = None
    sqlite_max_n: int | None = None  # larger sizes do not run it on SQLite (see not_run_reason)
    not_run_reason: str | None = None
    # (backend, problem text, explanation): a reference backend's documented behaviour that
    # the check reports but that is not a failure of the benchmark
    known: tuple[str, str, str] | None = None

    def known_deviation(self, backend: str, problem: str | None) -> str | None:
        if problem is None or self.known is None:
            return None
        known_backend, text, explanation = self.known
        return explanation if backend == known_backend and text in problem else None

    def repeats(self, repeat: int) -> int:
        return max(self.min_repeat, round(repeat * self.repeat_share))

    def runs_on(self, backend: str, n: int) -> bool:
        return backend != SQLITE or self.sqlite_max_n is None or n <= self.sqlite_max_n


def _expect_set(truth: set[str], answer: list[Any]) -> str | None:
    got = [str(item) for item in answer]
    if set(got) != truth:
        return f"missing {len(truth - set(got))}, unexpected {len(set(got) - truth)} of {len(truth)}"
    if len(got) != len(set(got)):
        return f"{len(got) - len(set(got))} duplicate ids"
    return None


def _entry(history: InvocationHistory) -> tuple[str, str, datetime, str]:
    timestamp = history.timestamp.astimezone(UTC)
    return (
        str(history.invocation_id),
        str(history.status_record.status),
        timestamp,
        history.runner_context_id,
    )


def _truth(entry: HistoryEntry) -> tuple[str, str, datetime, str]:
    return (entry.invocation_id, str(entry.status), entry.timestamp, entry.runner_context_id)


def _expect_ordered_history(
    truth: list[HistoryEntry], batches: list[list[InvocationHistory]], batch_size: int
) -> str | None:
    """Same entries, in timestamp order; ties (one status-change batch) in any order."""
    if any(len(batch) > batch_size for batch in batches):
        return f"a batch longer than batch_size={batch_size}"
    got = [_entry(history) for batch in batches for history in batch]
    timestamps = [entry[2] for entry in got]
    if timestamps != sorted(timestamps):
        return "entries out of timestamp order"
    expected = Counter(_truth(entry) for entry in truth)
    if Counter(got) != expected:
        missing = sum((expected - Counter(got)).values())
        extra = sum((Counter(got) - expected).values())
        return f"missing {missing}, unexpected {extra} of {len(truth)} entries"
    return None


def _random_invocation(data: Dataset, rng: random.Random) -> str:
    return str(data.invocation_ids[rng.randrange(data.n)])


def _check_history(
    subject: Subject, data: Dataset, invocation_id: str, answer: list[InvocationHistory]
) -> str | None:
    expected = [_truth(entry) for entry in data.history[invocation_id]]
    return None if [_entry(h) for h in answer] == expected else "history differs from the dataset"


def _check_invocation(subject: Subject, data: Dataset, index: int, answer: Any) -> str | None:
    inv_dto, call_dto = data.pairs[index]
    got = (
        str(answer.invocation_id),
        answer.call.call_id.key,
        answer.parent_invocation_id,
        answer.parent_event_id,
        answer.workflow.workflow_id,
        answer.workflow.workflow_type.key,
        answer.call.serialized_arguments,
    )
    want = (
        str(inv_dto.invocation_id),
        call_dto.call_id.key,
        inv_dto.parent_invocation_id,
        inv_dto.parent_event_id,
        inv_dto.workflow.workflow_id,
        inv_dto.workflow.workflow_type.key,
        call_dto.serialized_arguments,
    )
    return None if got == want else f"invocation differs: {got} != {want}"


def _check_upsert(subject: Subject, data: Dataset, indexes: list[int], answer: Any) -> str | None:
    for index in indexes[:1]:  # rewritten identically: reading it back must give the dataset's row
        problem = _check_invocation(
            subject, data, index, subject.backend.get_invocation(data.invocation_ids[index])
        )
        if problem:
            return problem
    return None


def _invocations(subject: Subject, data: Dataset, indexes: list[int]) -> list[Any]:
    """The ``DistributedInvocation``s a runner holds for dataset rows (built untimed)."""
    return [invocation(subject.app, data.pairs[index]) for index in indexes]


def _upsert(subject: Subject, _data: Dataset, invocations: list[Any]) -> None:
    subject.backend.upsert_invocations(invocations)


def _upsert_building(subject: Subject, data: Dataset, indexes: list[int]) -> None:
    subject.backend.upsert_invocations(_invocations(subject, data, indexes))


@dataclass(frozen=True)
class StatusChange:
    """What a runner holds when it records one status change of a batch of invocations."""

    indexes: list[int]
    invocations: list[Any]
    record: InvocationStatusRecord
    context: Any


def _status_change(subject: Subject, data: Dataset, indexes: list[int]) -> StatusChange:
    context = data.runner_contexts[indexes[0] % len(data.runner_contexts)]
    record = InvocationStatusRecord(InvocationStatus.PAUSED, context.runner_id)
    return StatusChange(indexes, _invocations(subject, data, indexes), record, context)


def _add_histories(subject: Subject, _data: Dataset, change: StatusChange) -> None:
    subject.backend.add_histories(change.invocations, change.record, change.context)


def _check_add_histories(subject: Subject, data: Dataset, indexes: list[int], answer: Any) -> str | None:
    last = subject.backend.get_history(data.invocation_ids[indexes[-1]])[-1]
    return None if last.status_record.status == InvocationStatus.PAUSED else "the new entry is not the newest"


def _partial_runner_id(data: Dataset, rng: random.Random) -> str:
    runner_id = str(data.runner_contexts[rng.randrange(len(data.runner_contexts))].runner_id).replace("-", "")
    start = rng.randrange(len(runner_id) - 8)
    return runner_id[start : start + 8]


def _history_window(share: float) -> Callable[[Dataset, random.Random], tuple[datetime, datetime]]:
    return lambda data, rng: data.window(rng, share)


def calls() -> list[CallSpec]:
    """Every measured call, reads first."""
    one_batch = 100
    reads = [
        CallSpec(
            "get_history",
            _random_invocation,
            lambda s, _d, inv: s.backend.get_history(inv),
            _check_history,
            target=1.3,
        ),
        CallSpec(
            "get_child_invocations",
            lambda d, rng: d.invocation_ids[rng.randrange(d.n // 10)],
            lambda s, _d, parent: list(s.backend.get_child_invocations(parent)),
            lambda s, d, parent, answer: _expect_set(d.children.get(parent, set()), answer),
            target=1.3,
        ),
        CallSpec(
            "get_invocations_by_parent_event",
            lambda d, rng: sorted(d.by_parent_event)[rng.randrange(len(d.by_parent_event))],
            lambda s, _d, event: list(s.backend.get_invocations_by_parent_event(event)),
            lambda s, d, event, answer: _expect_set(d.by_parent_event[event], answer),
            target=1.3,
        ),
        CallSpec(
            "get_invocation_ids_by_workflow(id)",
            lambda d, rng: d.workflows[rng.randrange(len(d.workflows))].workflow_id,
            lambda s, _d, wf: list(s.backend.get_invocation_ids_by_workflow(workflow_id=wf)),
            lambda s, d, wf, answer: _expect_set(d.by_workflow[wf], answer),
            target=1.3,
        ),
        CallSpec(
            "get_invocation_ids_by_workflow(type)",
            lambda d, rng: sorted(d.by_workflow_type)[rng.randrange(len(d.by_workflow_type))],
            lambda s, _d, key: list(s.backend.get_invocation_ids_by_workflow(workflow_type_key=key)),
            lambda s, d, key, answer: _expect_set(d.by_workflow_type[key], answer),
            repeat_share=0.2,
            target=1.0,
        ),
        CallSpec(
            "iter_history_in_timerange(1%)",
            _history_window(0.01),
            lambda s, _d, w: list(s.backend.iter_history_in_timerange(w[0], w[1])),
            lambda s, d, w, answer: _expect_ordered_history(d.history_between(*w), answer, 100),
            repeat_share=0.2,
            target=1.3,
        ),
        CallSpec(
            "iter_history_in_timerange(all, batch 100)",
            lambda d, rng: (d.start, d.end),
            lambda s, _d, w: list(s.backend.iter_history_in_timerange(w[0], w[1], batch_size=100)),
            lambda s, d, w, answer: _expect_ordered_history(d.all_history, answer, 100),
            repeat_share=0.0,
            min_repeat=3,
            target=1.2,
            # pynenc's SQLite backend pages with LIMIT/OFFSET over a timestamp it does not
            # index: every page sorts the whole table (about 2 minutes at n = 20 000, growing
            # with the square of n), so larger sizes would take hours.
            sqlite_max_n=20_000,
            not_run_reason="not run above n = 20 000 (SQLite OFFSET paging sorts the table per page)",
        ),
        CallSpec(
            "get_invocation",
            lambda d, rng: rng.randrange(d.n),
            lambda s, d, index: s.backend.get_invocation(d.invocation_ids[index]),
            _check_invocation,
            target=1.0,
        ),
        CallSpec(
            "get_matching_runner_contexts(partial)",
            _partial_runner_id,
            lambda s, _d, partial: list(s.backend.get_matching_runner_contexts(partial)),
            lambda s, d, partial, answer: _expect_set(
                d.runner_ids_containing(partial), [context.runner_id for context in answer]
            ),
            repeat_share=0.1,
        ),
        CallSpec(
            "get_all_workflow_runs",
            lambda d, rng: None,
            lambda s, _d, _: list(s.backend.get_all_workflow_runs()),
            lambda s, d, _, answer: _expect_set(
                {str(w.workflow_id) for w in d.workflows}, [run.workflow_id for run in answer]
            ),
            repeat_share=0.2,
        ),
        CallSpec(
            "iter_invocations_in_timerange(1%)",
            _history_window(0.01),
            lambda s, _d, w: [
                inv for batch in s.backend.iter_invocations_in_timerange(w[0], w[1]) for inv in batch
            ],
            lambda s, d, w, answer: _expect_set({e.invocation_id for e in d.history_between(*w)}, answer),
            repeat_share=0.2,
            known=(
                PYNENC_REDIS,
                "duplicate ids",
                "pynenc-redis dedups only within a batch, so an id comes again in each batch "
                "holding one of its entries (the README lists it)",
            ),
        ),
    ]
    # Write rows time the backend's own call: the invocations (and status record) a runner
    # already holds are built before the clock starts. The "building" row adds what building
    # one DistributedInvocation from its DTOs costs, the same constant on every backend.
    writes = []
    for batch, target in ((1, 1.0), (one_batch, 0.5)):
        writes.append(
            CallSpec(
                f"upsert_invocations(batch {batch})",
                lambda d, rng, batch=batch: rng.sample(range(d.n), batch),
                _upsert,
                _check_upsert,
                target=target,
                prepare=_invocations,
            )
        )
        writes.append(
            CallSpec(
                f"add_histories(batch {batch})",
                lambda d, rng, batch=batch: rng.sample(range(d.n), batch),
                _add_histories,
                _check_add_histories,
                target=target,
                prepare=_status_change,
            )
        )
    writes.append(
        CallSpec(
            "upsert_invocations(batch 1, building the invocation)",
            lambda d, rng: [rng.randrange(d.n)],
            _upsert_building,
            _check_upsert,
        )
    )
    return reads + writes
