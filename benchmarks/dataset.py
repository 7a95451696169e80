"""The seeded dataset every backend loads, and the truth its answers are checked against.

For a size ``n``: ``n`` invocations (call arguments included) over 20 tasks, each with 5 status
history entries; ``n / 10`` runner contexts with uuid ids (so a partial runner-id match means
something); ``n / 100`` workflow runs of 10 types, each run holding 100 consecutive invocations;
a parent/child tree with 10 children per parent; and parent events of 5 invocations each.

History is written the way runners write it: a status change for a batch of 100 invocations at
one timestamp by one runner (pynenc's ``add_histories``). Chunk ``c`` of 100 invocations gets
its 5 statuses at ``T0 + c * CHUNK_SPAN + k * STEP``, so timestamps are distinct per invocation
and ties happen only inside one batch.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.invocation.status import InvocationStatus
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.runner.runner_context import RunnerContext
from pynenc.workflow import WorkflowIdentity

from benchmarks import tasks

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK = 100  # invocations per status-change batch (and per workflow run)
STEP = timedelta(seconds=2)
CHUNK_SPAN = timedelta(seconds=10)  # 5 steps of 2 s: chunks never overlap
STATUSES = (
    InvocationStatus.REGISTERED,
    InvocationStatus.PENDING,
    InvocationStatus.RUNNING,
    InvocationStatus.RETRY,
)
FINAL = (InvocationStatus.SUCCESS, InvocationStatus.FAILED)
TASKS = tuple(TaskId(tasks.__name__, function.__name__) for function in tasks.TASKS)
WORKFLOW_TYPES = tuple(TaskId(tasks.__name__, function.__name__) for function in tasks.WORKFLOWS)
CHILDREN_PER_PARENT = 10
INVOCATIONS_PER_EVENT = 5


@dataclass(frozen=True)
class HistoryEntry:
    """One expected history entry (the part every backend must return unchanged)."""

    invocation_id: str
    status: InvocationStatus
    timestamp: datetime
    runner_context_id: str


@dataclass(frozen=True)
class StatusChange:
    """One ``add_histories`` call of the load: these invocations, this status, this time."""

    indexes: range
    status: InvocationStatus
    timestamp: datetime
    runner_context: RunnerContext


@dataclass
class Dataset:
    """Everything loaded into each backend, generated from ``(n, seed)`` only."""

    n: int
    seed: int
    invocation_ids: list[InvocationId] = field(default_factory=list)
    pairs: list[tuple[InvocationDTO, CallDTO]] = field(default_factory=list)
    runner_contexts: list[RunnerContext] = field(default_factory=list)
    workflows: list[WorkflowIdentity] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)

    @property
    def start(self) -> datetime:
        return T0

    @property
    def end(self) -> datetime:
        """The last history timestamp."""
        return max(change.timestamp for change in self.changes)

    @cached_property
    def history(self) -> dict[str, list[HistoryEntry]]:
        """Each invocation's entries in timestamp order."""
        entries: dict[str, list[HistoryEntry]] = defaultdict(list)
        for change in self.changes:
            for index in change.indexes:
                invocation_id = self.invocation_ids[index]
                entries[invocation_id].append(
                    HistoryEntry(
                        invocation_id, change.status, change.timestamp, change.runner_context.runner_id
                    )
                )
        for history in entries.values():
            history.sort(key=lambda entry: entry.timestamp)
        return dict(entries)

    @cached_property
    def all_history(self) -> list[HistoryEntry]:
        """Every entry in timestamp order (ties in load order)."""
        return sorted(
            (entry for history in self.history.values() for entry in history), key=lambda e: e.timestamp
        )

    @cached_property
    def children(self) -> dict[str, set[str]]:
        return _group((inv.parent_invocation_id, inv.invocation_id) for inv, _ in self.pairs)

    @cached_property
    def by_parent_event(self) -> dict[str, set[str]]:
        return _group((inv.parent_event_id, inv.invocation_id) for inv, _ in self.pairs)

    @cached_property
    def by_workflow(self) -> dict[str, set[str]]:
        return _group((inv.workflow and inv.workflow.workflow_id, inv.invocation_id) for inv, _ in self.pairs)

    @cached_property
    def by_workflow_type(self) -> dict[str, set[str]]:
        return _group(
            (inv.workflow and inv.workflow.workflow_type.key, inv.invocation_id) for inv, _ in self.pairs
        )

    def runner_ids_containing(self, partial: str) -> set[str]:
        return {context.runner_id for context in self.runner_contexts if partial in context.runner_id}

    def window(self, rng: random.Random, share: float) -> tuple[datetime, datetime]:
        """A time window of ``share`` of the whole range, starting at a random status change (so
        it is never empty)."""
        start = self.changes[rng.randrange(len(self.changes))].timestamp
        return start, start + (self.end - self.start) * share

    def history_between(self, start: datetime, end: datetime) -> list[HistoryEntry]:
        return [entry for entry in self.all_history if start <= entry.timestamp <= end]


def _group(pairs: Iterable[tuple[object, object]]) -> dict[str, set[str]]:
    grouped: dict[str, set[str]] = defaultdict(set)
    for key, value in pairs:
        if key:
            grouped[str(key)].add(str(value))
    return dict(grouped)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def build(n: int, seed: int) -> Dataset:
    """Generate the dataset of size ``n`` (a multiple of 100) from ``seed``."""
    if n < CHUNK or n % CHUNK:
        raise ValueError(f"size {n} must be a positive multiple of {CHUNK} (one workflow run per {CHUNK})")
    rng = random.Random(seed)
    data = Dataset(n=n, seed=seed)
    data.invocation_ids = [InvocationId(_uuid(rng)) for _ in range(n)]
    data.runner_contexts = [
        RunnerContext(
            runner_cls="ThreadRunner", runner_id=_uuid(rng), pid=1000 + k, hostname="bench-host", thread_id=k
        )
        for k in range(n // 10)
    ]
    for w in range(n // CHUNK):
        root = data.invocation_ids[w * CHUNK]
        data.workflows.append(WorkflowIdentity(root, WORKFLOW_TYPES[w % len(WORKFLOW_TYPES)]))
    for index, invocation_id in enumerate(data.invocation_ids):
        task = TASKS[rng.randrange(len(TASKS))]
        arguments = {"order": json.dumps(index), "customer": json.dumps(f"customer-{rng.randrange(n)}")}
        call_id = CallId(task, f"args-{index:08d}")
        parent = data.invocation_ids[(index - 1) // CHILDREN_PER_PARENT] if index else None
        event = f"event-{index // (2 * INVOCATIONS_PER_EVENT):08d}" if index % 2 == 0 else None
        workflow = data.workflows[index // CHUNK]
        data.pairs.append(
            (InvocationDTO(invocation_id, call_id, workflow, parent, event), CallDTO(call_id, arguments))
        )
    for chunk in range(n // CHUNK):
        indexes = range(chunk * CHUNK, (chunk + 1) * CHUNK)
        base = T0 + chunk * CHUNK_SPAN
        for step, status in enumerate((*STATUSES, FINAL[rng.randrange(len(FINAL))])):
            context = data.runner_contexts[rng.randrange(len(data.runner_contexts))]
            data.changes.append(StatusChange(indexes, status, base + step * STEP, context))
    return data
