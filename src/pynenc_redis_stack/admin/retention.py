"""Retention (``prune``): deletes an app's finished invocations whose latest status is older
than a cutoff, with their history, payloads, sub-invocation links, their orchestrator and
broker entries, and then the workflows nothing refers to any more.

:func:`prune_invocations` finds everything through the indexes, batch by batch, and deletes a
batch in one script that re-checks each invocation; client data store values no document
refers to go last (:mod:`.client_data`). What is deleted and kept, and why (everything of an
app goes with :mod:`.purge`): docs/operations.md, "prune: retention".
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, ClassVar, cast

import orjson
import redis
from pynenc.invocation.status import InvocationStatus
from redis.crc import key_slot

from pynenc_redis_stack.admin.client_data import delete_orphans, scan_client_data
from pynenc_redis_stack.admin.purge import schema_sets_in_use
from pynenc_redis_stack.broker.broker import TakenEntry, queue_member_invocation_id
from pynenc_redis_stack.core import codec, query
from pynenc_redis_stack.core.errors import PruneRefusedError, RedisStackError, check_batch_size
from pynenc_redis_stack.core.keys import AppKeys, DocumentKind, Namespace
from pynenc_redis_stack.core.reads import Row, fetch_complete, iter_cursor
from pynenc_redis_stack.core.schema import (
    IndexSpec,
    OrchestratorSchemas,
    Schemas,
    TriggerSchemas,
    load_schema_set,
)
from pynenc_redis_stack.core.scripts import SlotCalls
from pynenc_redis_stack.core.store import unlink
from pynenc_redis_stack.state_backend.scripts import prune_invocations_script

if TYPE_CHECKING:
    from pynenc_redis_stack.state_backend import RedisStackStateBackend

DEFAULT_BATCH_SIZE = 500
"""Invocations per batch (each id is one query parameter of the dependents' lookups)."""

MAX_PRUNE_BATCH = 1000
"""Largest batch the backend's :meth:`prune` uses, whatever its page size: the lookups carry
one parameter per id."""

BROKER_SWEEP_IDS = 100_000
"""Deleted invocation ids kept in memory between two reads of the app's broker queues: a run
reads the queues once per this many deleted invocations, and once at its end."""

UNLINK_CHUNK = 1000
"""Keys per ``UNLINK`` call (in the prune script too: Lua's ``unpack`` has a stack limit)."""

FINAL_STATUSES: tuple[str, ...] = tuple(
    sorted(status.value for status in InvocationStatus.get_final_statuses())
)
"""The statuses after which pynenc never changes an invocation again (the same on pynenc 0.3
and 0.4): the only ones prune deletes."""

type Progress = Callable[[int, int], None]
"""Called after each batch with ``(invocations done, invocations selected at the start)``."""


@dataclass
class PruneReport:
    """What :func:`prune_invocations` deleted (or, on a dry run, would delete).

    :ivar app_id: The app pruned.
    :ivar cutoff: Invocations whose latest status is final and strictly before this were selected.
    :ivar dry_run: True when nothing was deleted.
    :ivar deleted: Documents per kind: invocations, their history entries, results and
        exceptions, the workflow links in which they are the sub-invocation, and the runs and
        data values of workflows no remaining invocation refers to.
    :ivar workflows_kept: Workflows some deleted invocation belonged to that are still
        referenced by remaining invocations (their run and data are kept).
    :ivar skipped: Selected invocations that got a new status before their batch was
        deleted, and were kept whole.
    :ivar orchestrator_invocations: The orchestrator's status documents of deleted invocations.
    :ivar orchestrator_waits: The orchestrator's blocking edges whose either end was deleted.
    :ivar broker_entries: Broker queue and taken entries naming deleted invocations.
    :ivar trigger_events: The trigger's events older than the cutoff.
    :ivar trigger_runs: The trigger's runs older than the cutoff or of a deleted event.
    :ivar client_data_values: Client data store values no document refers to.
    """

    app_id: str
    cutoff: datetime
    dry_run: bool
    deleted: Counter[DocumentKind] = field(default_factory=Counter)
    workflows_kept: int = 0
    skipped: int = 0
    orchestrator_invocations: int = 0
    orchestrator_waits: int = 0
    broker_entries: int = 0
    trigger_events: int = 0
    trigger_runs: int = 0
    client_data_values: int = 0

    COUNTED: ClassVar[tuple[DocumentKind, ...]] = (
        DocumentKind.INVOCATION,
        DocumentKind.HISTORY,
        DocumentKind.RESULT,
        DocumentKind.EXCEPTION,
        DocumentKind.WORKFLOW_SUB_INVOCATION,
        DocumentKind.WORKFLOW_RUN,
        DocumentKind.WORKFLOW_DATA,
    )
    """The kinds prune deletes, in report order (runner contexts and app infos are kept)."""

    def counts(self) -> dict[DocumentKind, int]:
        """Return the deleted (or deletable) documents per kind, every kind of :attr:`COUNTED`."""
        return {kind: self.deleted[kind] for kind in self.COUNTED}

    def other_counts(self) -> dict[str, int]:
        """Return what else went with the invocations: the orchestrator's documents and the
        broker's entries (zero where those components are not this package's)."""
        return {
            "orchestrator-invocation": self.orchestrator_invocations,
            "orchestrator-wait": self.orchestrator_waits,
            "broker-entry": self.broker_entries,
            "trigger-event": self.trigger_events,
            "trigger-run": self.trigger_runs,
            "client-data-value": self.client_data_values,
        }

    @property
    def deleted_documents(self) -> int:
        """Total documents deleted (or deletable), the orchestrator's included."""
        return (
            sum(self.deleted.values())
            + self.orchestrator_invocations
            + self.orchestrator_waits
            + self.trigger_events
            + self.trigger_runs
        )


def check_cutoff(cutoff: datetime, allow_all: bool = False, now: datetime | None = None) -> None:
    """Refuse a cutoff that selects everything, unless ``allow_all``.

    A cutoff at or after now selects every finished invocation, which is what a wrong
    unit or a ``0`` would do by accident (RedisVL refuses match-all deletes the same way).

    :raises PruneRefusedError: If ``cutoff`` is not in the past and ``allow_all`` is False.
    """
    now = now or datetime.now(UTC)
    moment = cutoff if cutoff.tzinfo is not None else cutoff.replace(tzinfo=UTC)
    if moment >= now and not allow_all:
        raise PruneRefusedError(
            f"cutoff {moment.isoformat()} is not in the past: it would delete every finished "
            "invocation of the app. Pass allow_all=True (--all on the command line) to do that on purpose."
        )


@dataclass
class _Dependents:
    """The documents of a batch of invocations, by invocation."""

    history: dict[str, list[str]] = field(default_factory=dict)
    payloads: dict[str, list[tuple[str, DocumentKind]]] = field(default_factory=dict)
    """Per invocation: ``(key, kind)`` of its result and exception."""
    links: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """Per sub-invocation: ``(key, workflow id)`` of its links."""
    waits: dict[str, list[str]] = field(default_factory=dict)
    """Per invocation: the orchestrator's blocking edges it is an end of (each edge listed
    under one end only)."""

    def workflows_of(self, row: Row) -> list[str]:
        """Return the workflows an invocation refers to: its own, the parent workflow it keeps
        referenced as a child workflow, and those it is linked into."""
        names = (row.get(name) for name in ("workflow_id", "parent_workflow_id"))
        linked = (workflow_id for _key, workflow_id in self.links.get(row["invocation_id"], ()))
        return sorted({workflow_id for workflow_id in (*names, *linked) if workflow_id})

    def keys_of(self, invocation_id: str) -> list[str]:
        return [
            *self.history.get(invocation_id, ()),
            *(key for key, _kind in self.payloads.get(invocation_id, ())),
            *(key for key, _workflow in self.links.get(invocation_id, ())),
            *self.waits.get(invocation_id, ()),
        ]


def _with_ids(request_filter: query.Filter, ids: Sequence[str]) -> query.Filter:
    return request_filter.tag_in("invocation_id", ids)


class _Pruner:
    def __init__(
        self,
        client: redis.Redis,
        namespace: Namespace,
        schemas: Schemas,
        app_id: str,
        cutoff: datetime,
        dry_run: bool,
        batch_size: int,
        orchestrator: OrchestratorSchemas | None,
    ) -> None:
        self.client = client
        self.orchestrator = orchestrator
        """The orchestrator's indexes, None when they are not on the server (it never ran)."""
        self.deleted_ids: set[str] = set()
        """Invocations deleted (or deletable) since the broker's queues were last read."""
        self.kept: set[str] = set()
        """Selected invocations the delete script kept (they got a new status meanwhile)."""
        self.namespace = namespace
        self.schemas = schemas
        self.keys: AppKeys = namespace.for_app(app_id)
        self.app_id = app_id
        self.cutoff_us = codec.to_micros(cutoff)
        self.batch_size = batch_size
        self.report = PruneReport(app_id, cutoff, dry_run)
        self.pending_key = self.keys.prune_pending_workflows()
        self.workflows: set[str] = set()
        """Workflows a deleted invocation belonged to, or was linked into, by this run or by
        an earlier one that stopped before collecting them."""
        self.would_delete: set[str] = set()
        """On a dry run, the documents a run would delete (they refer to no client data then)."""

    # -- queries --------------------------------------------------------------------------

    def _rows(self, request_filter: query.Filter, *steps: str) -> list[Row]:
        """Every row of the lookup: prune only ever acts on whole answers."""
        request = query.Aggregate(self.namespace.alias(request_filter.spec), request_filter, steps)
        return fetch_complete(self.client, request, self.batch_size)

    def _prunable(self, request_filter: query.Filter) -> query.Filter:
        return request_filter.before("status_ts", self.cutoff_us).tag_in("status", FINAL_STATUSES)

    def _old_filter(self) -> query.Filter:
        return self._prunable(query.where(self.schemas.invocations, self.app_id))

    def take_over_pending(self) -> None:
        """Add the workflows an earlier run deleted invocations of but did not collect."""
        self.workflows.update(self.client.sscan_iter(self.pending_key, count=self.batch_size))

    def count_old(self) -> int:
        """Return how many invocations the cutoff selects now."""
        rows = list(self._rows(self._old_filter(), *query.count_rows()))
        return int(rows[0]["count"]) if rows else 0

    def old_batches(self) -> Iterator[list[Row]]:
        """Yield the selected invocations batch by batch (id, workflow and parent workflow)."""
        spec = self.schemas.invocations
        steps = query.load_fields("invocation_id", "workflow_id", "parent_workflow_id")
        request = query.Aggregate(self.namespace.alias(spec), self._old_filter(), steps)
        if self.report.dry_run:
            yield from iter_cursor(self.client, request, self.batch_size)
            return
        previous: set[str] = set()
        while True:
            # A fresh query per batch: the previous batch is gone from the index by now, but
            # for invocations the script kept because the orchestrator moved them on (their
            # history entry not written yet): those are left out by id.
            if self.kept:
                request_filter = self._old_filter().excluding(partial(_with_ids, ids=sorted(self.kept)))
                request = query.Aggregate(self.namespace.alias(spec), request_filter, steps)
            # iter_cursor is a generator: closing it deletes the server-side cursor
            cursor = cast(Generator[list[Row]], iter_cursor(self.client, request, self.batch_size))
            rows = next(cursor, [])
            cursor.close()
            if not rows:
                return
            ids = {row["invocation_id"] for row in rows}
            if ids <= previous:
                raise RedisStackError(
                    f"invocations {sorted(ids)[:3]} are still selected after they were pruned; "
                    "the invocations index is not following its documents (see `index status`)"
                )
            previous = ids
            yield rows

    def dependents(self, invocation_ids: Sequence[str]) -> _Dependents:
        """Look up the history entries, payloads and links of a batch (three queries)."""
        found = _Dependents()
        history = query.where(self.schemas.history, self.app_id).tag_in("invocation_id", invocation_ids)
        for row in self._rows(history, *query.LOAD_KEY, *query.load_fields("invocation_id")):
            found.history.setdefault(row["invocation_id"], []).append(row["__key"])
        payloads = (
            query.where(self.schemas.payloads, self.app_id)
            .tag_in("owner_id", invocation_ids)
            .tag_in("kind", (DocumentKind.RESULT, DocumentKind.EXCEPTION))
        )
        for row in self._rows(payloads, *query.LOAD_KEY, *query.load_fields("owner_id", "kind")):
            found.payloads.setdefault(row["owner_id"], []).append((row["__key"], DocumentKind(row["kind"])))
        links = query.where(self.schemas.workflow_sub_invocations, self.app_id).tag_in(
            "sub_invocation_id", invocation_ids
        )
        steps = (*query.LOAD_KEY, *query.load_fields("sub_invocation_id", "workflow_id"))
        for row in self._rows(links, *steps):
            found.links.setdefault(row["sub_invocation_id"], []).append((row["__key"], row["workflow_id"]))
        if self.orchestrator is not None:
            waits = query.where(self.orchestrator.waits, self.app_id).any_tag_in(
                ("waiter_id", "waited_id"), invocation_ids
            )
            batch = set(invocation_ids)
            steps = (*query.LOAD_KEY, *query.load_fields("waiter_id", "waited_id"))
            for row in self._rows(waits, *steps):
                end = row["waiter_id"] if row["waiter_id"] in batch else row["waited_id"]
                found.waits.setdefault(end, []).append(row["__key"])
        return found

    # -- phase 1: invocations -------------------------------------------------------------

    def prune_batch(self, rows: list[Row]) -> int:
        """Delete (or count) one batch of selected invocations; return how many were selected."""
        invocation_ids = [row["invocation_id"] for row in rows]
        found = self.dependents(invocation_ids)
        orchestrator_keys = [self.keys.orchestrator_invocation(i) for i in invocation_ids]
        pipe = self.client.pipeline(transaction=False)
        for key in orchestrator_keys:
            pipe.exists(key)
        orchestrated = [bool(flag) for flag in pipe.execute()]
        if self.report.dry_run:
            deleted = [True] * len(rows)
            for row, orchestrator_key in zip(rows, orchestrator_keys, strict=True):
                invocation_id = row["invocation_id"]
                self.would_delete.update(
                    (self.keys.invocation(invocation_id), orchestrator_key, *found.keys_of(invocation_id))
                )
        else:
            deleted = self._delete_batch(rows, orchestrator_keys, found)
        report = self.report
        for row, was_deleted, has_status in zip(rows, deleted, orchestrated, strict=True):
            invocation_id = row["invocation_id"]
            if not was_deleted:
                report.skipped += 1
                self.kept.add(invocation_id)
                continue
            report.deleted[DocumentKind.INVOCATION] += 1
            report.deleted[DocumentKind.HISTORY] += len(found.history.get(invocation_id, ()))
            report.deleted.update(kind for _key, kind in found.payloads.get(invocation_id, ()))
            report.deleted[DocumentKind.WORKFLOW_SUB_INVOCATION] += len(found.links.get(invocation_id, ()))
            report.orchestrator_invocations += has_status
            report.orchestrator_waits += len(found.waits.get(invocation_id, ()))
            self.workflows.update(found.workflows_of(row))
            self.deleted_ids.add(invocation_id)
        if len(self.deleted_ids) >= BROKER_SWEEP_IDS:
            self.sweep_broker()
        return len(rows)

    def _delete_batch(self, rows: list[Row], orchestrator_keys: list[str], found: _Dependents) -> list[bool]:
        """Delete the invocations of ``rows`` still prunable: one script call per hash slot,
        sent in one pipeline (each invocation is checked and deleted with what it owns in its
        slot in one step); then what they owned in other slots (blocking edges of waiters in
        other slots). Their workflows join the pending set first, so a run that stops on the
        way leaves them to the next one (a workflow still referenced is kept)."""
        workflows = sorted({w for row in rows for w in found.workflows_of(row)})
        if workflows:
            self.client.sadd(self.pending_key, *workflows)
        calls = SlotCalls(
            prune_invocations_script, [str(self.cutoff_us), orjson.dumps(FINAL_STATUSES).decode()]
        )
        per_slot: dict[int, list[str]] = {}  # each call's invocations, in the order of its reply
        elsewhere: dict[str, list[str]] = {}
        for row, orchestrator_key in zip(rows, orchestrator_keys, strict=True):
            invocation_key = self.keys.invocation(row["invocation_id"])
            slot = key_slot(invocation_key.encode())
            owned = found.keys_of(row["invocation_id"])
            local = [key for key in owned if key_slot(key.encode()) == slot]
            elsewhere[invocation_key] = [key for key in owned if key_slot(key.encode()) != slot]
            calls.add([invocation_key, orchestrator_key, *local], [str(len(local))])
            per_slot.setdefault(slot, []).append(invocation_key)
        replies = calls.run_in(self.client.pipeline(transaction=False))
        flags: dict[str, bool] = {}
        for invocation_keys, reply in zip(per_slot.values(), replies, strict=True):
            flags.update(zip(invocation_keys, (bool(flag) for flag in reply), strict=True))
        deleted = [flags[self.keys.invocation(row["invocation_id"])] for row in rows]
        leftovers = [key for key, flag in flags.items() if flag for key in elsewhere[key]]
        for chunk in itertools.batched(leftovers, UNLINK_CHUNK):
            unlink(self.client, chunk)
        return deleted

    def sweep_broker(self) -> None:
        """Remove (or count) the broker entries naming the invocations deleted since the last
        sweep: one read of each of the app's queues and of its taken set.

        Each entry is removed by its exact member (``ZREM``): one a runner took meanwhile is
        found in the taken set, read after the queues.
        """
        if not self.deleted_ids:
            return
        keys = self.keys
        queues = [keys.broker_queue(name) for name in self.client.sscan_iter(keys.broker_queues())]
        for key in (*queues, keys.broker_taken()):
            taken = key == keys.broker_taken()
            stale = [
                member
                for member, _score in self.client.zscan_iter(key, count=self.batch_size)
                if (TakenEntry.parse(member).invocation_id if taken else queue_member_invocation_id(member))
                in self.deleted_ids
            ]
            self.report.broker_entries += len(stale)
            if not self.report.dry_run:
                for chunk in itertools.batched(stale, UNLINK_CHUNK):
                    self.client.zrem(key, *chunk)
        self.deleted_ids.clear()

    # -- phase 2: workflows ---------------------------------------------------------------

    def referenced(self, workflow_ids: Sequence[str]) -> set[str]:
        """Return the workflows of ``workflow_ids`` that remaining invocations refer to.

        Remaining means not selected (not both final and before the cutoff), so the answer is
        the same before the deletion (dry run) and after it.
        """
        referenced: set[str] = set()
        members = (
            query.where(self.schemas.invocations, self.app_id)
            .any_tag_in(("workflow_id", "parent_workflow_id"), workflow_ids)
            .excluding(self._prunable)
        )
        for row in self._rows(members, *query.group_by("workflow_id", "parent_workflow_id")):
            referenced.update(value for value in row.values() if value)
        links = query.where(self.schemas.workflow_sub_invocations, self.app_id).tag_in(
            "workflow_id", workflow_ids
        )
        subs: dict[str, set[str]] = {}
        for row in self._rows(links, *query.load_fields("workflow_id", "sub_invocation_id")):
            subs.setdefault(row["sub_invocation_id"], set()).add(row["workflow_id"])
        # A link survives unless its sub-invocation is selected (a link whose sub-invocation
        # has no invocation document, or no status, is never pruned).
        for chunk in itertools.batched(sorted(subs), self.batch_size):
            selected = self._old_filter().tag_in("invocation_id", chunk)
            steps = query.load_fields("invocation_id")
            pruned = {row["invocation_id"] for row in self._rows(selected, *steps)}
            for sub in chunk:
                if sub not in pruned:
                    referenced.update(subs[sub])
        return referenced & set(workflow_ids)

    def prune_workflows(self) -> None:
        """Delete (or count) the run and data of every workflow nothing refers to any more."""
        for chunk in itertools.batched(sorted(self.workflows), self.batch_size):
            kept = self.referenced(chunk)
            orphans = [workflow_id for workflow_id in chunk if workflow_id not in kept]
            runs_filter = query.where(self.schemas.workflow_runs, self.app_id).tag_in("workflow_id", chunk)
            runs = {
                row["workflow_id"]: row["__key"]
                for row in self._rows(runs_filter, *query.LOAD_KEY, *query.load_fields("workflow_id"))
            }
            self.report.workflows_kept += sum(1 for workflow_id in kept if workflow_id in runs)
            data_filter = (
                query.where(self.schemas.payloads, self.app_id)
                .tag_in("owner_id", orphans)
                .tag_in("kind", (DocumentKind.WORKFLOW_DATA,))
            )
            data_keys = [row["__key"] for row in self._rows(data_filter, *query.LOAD_KEY)]
            run_keys = [runs[workflow_id] for workflow_id in orphans if workflow_id in runs]
            self.report.deleted[DocumentKind.WORKFLOW_RUN] += len(run_keys)
            self.report.deleted[DocumentKind.WORKFLOW_DATA] += len(data_keys)
            if self.report.dry_run:
                self.would_delete.update(run_keys, data_keys)
            else:
                for keys in itertools.batched([*run_keys, *data_keys], UNLINK_CHUNK):
                    unlink(self.client, keys)
                # Only now: a run that stops before this point leaves them to the next one.
                self.client.srem(self.pending_key, *chunk)


def prune_invocations(
    client: redis.Redis,
    namespace: Namespace,
    schemas: Schemas,
    app_id: str,
    older_than: datetime,
    *,
    dry_run: bool = False,
    allow_all: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    keep_client_data: bool = False,
) -> PruneReport:
    """Delete ``app_id``'s invocations whose status is final and older than ``older_than``, with
    their history, result, exception and sub-invocation links, their orchestrator documents
    and broker entries, then the runs and data of
    workflows no remaining invocation refers to (including those of an earlier run that
    stopped before collecting them), then the client data values nothing refers to.

    :param older_than: The cutoff (naive datetimes are UTC).
    :param dry_run: Count what would be deleted; delete nothing.
    :param allow_all: Accept a cutoff that is not in the past (selects every invocation).
    :param batch_size: Invocations per batch (query parameters per dependents lookup).
    :param progress: Called after each batch with ``(invocations done, invocations selected)``.
    :param keep_client_data: Leave the client data store as it is (its values may be referred
        to from outside this package's components, such as pynenc's SQLite trigger).
    :return: The counts per kind.
    :raises PruneRefusedError: If the cutoff is not in the past and ``allow_all`` is False.
    """
    check_batch_size(batch_size)
    check_cutoff(older_than, allow_all)
    orchestrator = load_schema_set(OrchestratorSchemas)
    in_use = orchestrator if orchestrator in schema_sets_in_use(client, namespace) else None
    pruner = _Pruner(client, namespace, schemas, app_id, older_than, dry_run, batch_size, in_use)
    pruner.take_over_pending()
    total = pruner.count_old()
    done = 0
    if progress is not None:
        progress(done, total)
    for rows in pruner.old_batches():
        done += pruner.prune_batch(rows)
        if progress is not None:
            progress(done, max(total, done))  # invocations that got old meanwhile are pruned too
    pruner.sweep_broker()
    pruner.prune_workflows()
    if load_schema_set(TriggerSchemas) in schema_sets_in_use(client, namespace):
        records = prune_trigger_records(client, namespace, app_id, older_than, pruner.report, batch_size)
        if dry_run:
            pruner.would_delete.update(records)
    if not keep_client_data:
        # after everything else: what prune deleted no longer refers to a value
        orphans = scan_client_data(client, namespace, app_id, ignored=pruner.would_delete)
        report = pruner.report
        report.client_data_values = (
            len(orphans.orphaned) if dry_run else delete_orphans(client, namespace, app_id, orphans)
        )
    return pruner.report


def prune_state_backend(
    backend: RedisStackStateBackend, older_than: datetime, *, dry_run: bool = False
) -> PruneReport:
    """Delete ``backend``'s app's finished invocations whose latest status is older than ``older_than``.

    Only invocations in a final status (success, failed, concurrency-controlled final) are
    deleted; unfinished ones are kept however old. With each go its history, result,
    exception and the workflow links in which it is the sub-invocation; a workflow's run
    and data go once no remaining invocation refers to the workflow. Runner contexts are
    kept. Found through the indexes, batch by batch (see
    :mod:`pynenc_redis_stack.admin.retention`).

    :param older_than: The cutoff; it must be in the past (naive datetimes are UTC).
    :param dry_run: Count what would be deleted, delete nothing.
    :return: The documents deleted (or deletable) per kind.
    :raises PruneRefusedError: If the cutoff is not in the past (use
        :func:`pynenc_redis_stack.admin.retention.prune_invocations` with ``allow_all=True``).
    """
    return prune_invocations(
        backend.client,
        backend.namespace,
        backend.schemas,
        backend.app.app_id,
        older_than,
        dry_run=dry_run,
        batch_size=min(backend.batch_size, MAX_PRUNE_BATCH),
    )


def prune_trigger_records(
    client: redis.Redis,
    namespace: Namespace,
    app_id: str,
    older_than: datetime,
    report: PruneReport,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[str]:
    """Delete (count, on a dry run) ``app_id``'s trigger events older than ``older_than`` and
    its trigger runs executed (else claimed) before it or linked to a deleted event, as
    pynenc's own age purge does on every trigger loop (this is that purge for a cutoff of
    the operator's choosing, and for apps whose runners are stopped); return their keys."""
    trigger = load_schema_set(TriggerSchemas)
    bound = codec.to_micros(older_than)
    keys = namespace.for_app(app_id)

    def matching(spec: IndexSpec, request_filter: query.Filter) -> list[str]:
        request = query.Aggregate(namespace.alias(spec), request_filter, tuple(query.LOAD_KEY))
        return [row["__key"] for rows in iter_cursor(client, request, batch_size) for row in rows]

    events = matching(trigger.events, query.where(trigger.events, app_id).before("ts", bound))
    runs = set(matching(trigger.runs, query.where(trigger.runs, app_id).before("ts", bound)))
    for event_ids in itertools.batched(keys.trigger_event_ids_of(events), batch_size):
        runs.update(matching(trigger.runs, query.where(trigger.runs, app_id).tag_in("event_id", event_ids)))
    report.trigger_events, report.trigger_runs = len(events), len(runs)
    if not report.dry_run:
        for batch in itertools.batched([*events, *sorted(runs)], batch_size):
            unlink(client, batch)
    return [*events, *runs]
