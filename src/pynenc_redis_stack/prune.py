"""Retention: delete the invocations whose latest status is older than a cutoff.

An invocation is old when its ``status_ts`` (the time of its latest history entry, kept on
the invocation document by every history write) is before the cutoff. With it go its history
entries, its result and exception, and the workflow-sub-invocation links in which it is the
sub-invocation. A workflow's run and data values go too once no remaining invocation refers
to the workflow (as member, as child workflow, or through a sub-invocation link); a
workflow run still referenced by newer invocations is kept. Runner contexts are shared by
every invocation a runner touched and are kept. Invocations that never had a status (no
history) are never old.

Everything is found through the indexes (no keyspace scan), batch by batch: the first batch
of old invocations is queried, its dependents looked up (three queries), and all of it
deleted by one script that first checks, per invocation, that its status is still older than
the cutoff, so an invocation that got a new status meanwhile is left whole. Then the next
batch is queried afresh (a long cursor over an index that is being deleted from is not
relied upon). A dry run walks the same queries and deletes nothing; its counts are those a
run would delete on data that does not change in between.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, cast

import redis

from pynenc_redis_stack import documents as docs
from pynenc_redis_stack import query
from pynenc_redis_stack.errors import PruneRefusedError, RedisStackError
from pynenc_redis_stack.keys import EXCEPTION, RESULT, WORKFLOW_DATA, AppKeys, Namespace
from pynenc_redis_stack.schema import Schemas
from pynenc_redis_stack.scripts import Script
from pynenc_redis_stack.search import Row, fetch_complete, iter_cursor

DEFAULT_BATCH_SIZE = 500
"""Invocations per batch (each id is one query parameter of the dependents' lookups)."""

MAX_PRUNE_BATCH = 1000
"""Largest batch the backend's :meth:`prune` uses, whatever its page size: the lookups carry
one parameter per id."""

UNLINK_CHUNK = 1000
"""Keys per ``UNLINK`` call inside the script (Lua's ``unpack`` has a stack limit)."""

PRUNE_INVOCATIONS = """
-- ARGV[1]: the cutoff (epoch us, decimal string); then per invocation, the number of keys
-- that belong to it. KEYS: per invocation, its invocation key, then those keys.
-- An invocation whose status_ts is no longer before the cutoff (a new status arrived after
-- it was selected) is left whole. Returns 1 (deleted) or 0 (kept) per invocation.
local cutoff = tonumber(ARGV[1])
local deleted = {}
local k = 1
for i = 2, #ARGV do
  local count = tonumber(ARGV[i])
  local invocation_key = KEYS[k]
  local old = true
  local raw = redis.call('JSON.GET', invocation_key, '$.status_ts')
  if raw then
    local ts = tonumber(string.match(raw, '%-?%d+') or '')
    old = ts ~= nil and ts < cutoff
  end
  if old then
    local first = k
    local last = k + count
    while first <= last do
      local upto = math.min(first + 999, last)
      redis.call('UNLINK', unpack(KEYS, first, upto))
      first = upto + 1
    end
  end
  deleted[#deleted + 1] = old and 1 or 0
  k = k + count + 1
end
return deleted
"""

_prune_invocations = Script(PRUNE_INVOCATIONS)

type Progress = Callable[[int, int], None]
"""Called after each batch with ``(invocations done, invocations selected at the start)``."""


@dataclass
class PruneReport:
    """What :func:`prune_invocations` deleted (or, on a dry run, would delete).

    :ivar app_id: The app pruned.
    :ivar cutoff: Invocations whose latest status is strictly before this were selected.
    :ivar dry_run: True when nothing was deleted.
    :ivar invocations: Invocation documents.
    :ivar history: History entries.
    :ivar results: Result payloads.
    :ivar exceptions: Exception payloads.
    :ivar workflow_sub_invocations: Links in which a deleted invocation is the sub-invocation.
    :ivar workflow_runs: Workflow runs no remaining invocation refers to.
    :ivar workflow_data: Data values of those workflows.
    :ivar workflows_kept: Workflows some deleted invocation belonged to that are still
        referenced by remaining invocations (their run and data are kept).
    :ivar skipped: Selected invocations that got a newer status before their batch was
        deleted, and were kept whole.
    """

    app_id: str
    cutoff: datetime
    dry_run: bool
    invocations: int = 0
    history: int = 0
    results: int = 0
    exceptions: int = 0
    workflow_sub_invocations: int = 0
    workflow_runs: int = 0
    workflow_data: int = 0
    workflows_kept: int = 0
    skipped: int = 0

    COUNTED: ClassVar[tuple[str, ...]] = (
        "invocations",
        "history",
        "results",
        "exceptions",
        "workflow_sub_invocations",
        "workflow_runs",
        "workflow_data",
    )
    """The fields that count deleted documents, in report order."""

    def counts(self) -> dict[str, int]:
        """Return the deleted (or deletable) documents per kind."""
        return {name: getattr(self, name) for name in self.COUNTED}

    @property
    def deleted_documents(self) -> int:
        """Total documents deleted (or deletable)."""
        return sum(self.counts().values())


def check_cutoff(cutoff: datetime, allow_all: bool = False, now: datetime | None = None) -> None:
    """Refuse a cutoff that selects everything, unless ``allow_all``.

    A cutoff at or after now selects every invocation with a status, which is what a wrong
    unit or a ``0`` would do by accident (RedisVL refuses match-all deletes the same way).

    :raises PruneRefusedError: If ``cutoff`` is not in the past and ``allow_all`` is False.
    """
    now = now or datetime.now(UTC)
    moment = cutoff if cutoff.tzinfo is not None else cutoff.replace(tzinfo=UTC)
    if moment >= now and not allow_all:
        raise PruneRefusedError(
            f"cutoff {moment.isoformat()} is not in the past: it would delete every invocation "
            "of the app. Pass allow_all=True (--all on the command line) to do that on purpose."
        )


@dataclass
class _Dependents:
    """The documents of a batch of invocations, by invocation."""

    history: dict[str, list[str]] = field(default_factory=dict)
    payloads: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """Per invocation: ``(key, kind)`` of its result and exception."""
    links: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """Per sub-invocation: ``(key, workflow id)`` of its links."""

    def keys_of(self, invocation_id: str) -> list[str]:
        return [
            *self.history.get(invocation_id, ()),
            *(key for key, _kind in self.payloads.get(invocation_id, ())),
            *(key for key, _workflow in self.links.get(invocation_id, ())),
        ]


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
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.schemas = schemas
        self.keys: AppKeys = namespace.for_app(app_id)
        self.app_id = app_id
        self.cutoff_us = docs.to_micros(cutoff)
        self.batch_size = batch_size
        self.report = PruneReport(app_id, cutoff, dry_run)
        self.workflows: set[str] = set()
        """Workflows a deleted invocation belonged to, or was linked into."""

    # -- queries --------------------------------------------------------------------------

    def _rows(self, spec_name: str, request_filter: query.Filter, *steps: str) -> list[Row]:
        """Every row of the lookup: prune only ever acts on whole answers."""
        spec = getattr(self.schemas, spec_name)
        request = query.Aggregate(self.namespace.alias(spec), request_filter, steps)
        return fetch_complete(self.client, request, self.batch_size)

    def _old_filter(self) -> query.Filter:
        return query.where(self.schemas.invocations, self.app_id).before("status_ts", self.cutoff_us)

    def count_old(self) -> int:
        """Return how many invocations the cutoff selects now."""
        rows = list(self._rows("invocations", self._old_filter(), *query.count_rows()))
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
            # A fresh query per batch: the previous batch is gone from the index by now.
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
        for row in self._rows("history", history, *query.LOAD_KEY, *query.load_fields("invocation_id")):
            found.history.setdefault(row["invocation_id"], []).append(row["__key"])
        payloads = (
            query.where(self.schemas.payloads, self.app_id)
            .tag_in("owner_id", invocation_ids)
            .tag_in("kind", (RESULT, EXCEPTION))
        )
        for row in self._rows("payloads", payloads, *query.LOAD_KEY, *query.load_fields("owner_id", "kind")):
            found.payloads.setdefault(row["owner_id"], []).append((row["__key"], row["kind"]))
        links = query.where(self.schemas.workflow_sub_invocations, self.app_id).tag_in(
            "sub_invocation_id", invocation_ids
        )
        steps = (*query.LOAD_KEY, *query.load_fields("sub_invocation_id", "workflow_id"))
        for row in self._rows("workflow_sub_invocations", links, *steps):
            found.links.setdefault(row["sub_invocation_id"], []).append((row["__key"], row["workflow_id"]))
        return found

    # -- phase 1: invocations -------------------------------------------------------------

    def prune_batch(self, rows: list[Row]) -> int:
        """Delete (or count) one batch of selected invocations; return how many were selected."""
        invocation_ids = [row["invocation_id"] for row in rows]
        found = self.dependents(invocation_ids)
        if self.report.dry_run:
            deleted = [True] * len(rows)
        else:
            script_keys: list[str] = []
            script_args = [str(self.cutoff_us)]
            for invocation_id in invocation_ids:
                owned = found.keys_of(invocation_id)
                script_keys.append(self.keys.invocation(invocation_id))
                script_keys.extend(owned)
                script_args.append(str(len(owned)))
            pipe = self.client.pipeline(transaction=False)
            replies = _prune_invocations.run_in(pipe, script_keys, script_args)
            deleted = [bool(flag) for flag in replies[-1]]
        report = self.report
        for row, was_deleted in zip(rows, deleted, strict=True):
            invocation_id = row["invocation_id"]
            if not was_deleted:
                report.skipped += 1
                continue
            report.invocations += 1
            report.history += len(found.history.get(invocation_id, ()))
            for _key, kind in found.payloads.get(invocation_id, ()):
                if kind == RESULT:
                    report.results += 1
                else:
                    report.exceptions += 1
            links = found.links.get(invocation_id, ())
            report.workflow_sub_invocations += len(links)
            self.workflows.update(workflow_id for _key, workflow_id in links)
            # its workflow, and the parent workflow it keeps referenced as a child workflow
            self.workflows.update(
                row[name] for name in ("workflow_id", "parent_workflow_id") if row.get(name)
            )
        return len(rows)

    # -- phase 2: workflows ---------------------------------------------------------------

    def referenced(self, workflow_ids: Sequence[str]) -> set[str]:
        """Return the workflows of ``workflow_ids`` that remaining invocations refer to.

        Remaining means not selected by the cutoff, so the answer is the same before the
        deletion (dry run) and after it.
        """
        referenced: set[str] = set()
        members = (
            query.where(self.schemas.invocations, self.app_id)
            .any_tag_in(("workflow_id", "parent_workflow_id"), workflow_ids)
            .not_before("status_ts", self.cutoff_us)
        )
        for row in self._rows("invocations", members, *query.group_by("workflow_id", "parent_workflow_id")):
            referenced.update(value for value in row.values() if value)
        links = query.where(self.schemas.workflow_sub_invocations, self.app_id).tag_in(
            "workflow_id", workflow_ids
        )
        subs: dict[str, set[str]] = {}
        for row in self._rows(
            "workflow_sub_invocations", links, *query.load_fields("workflow_id", "sub_invocation_id")
        ):
            subs.setdefault(row["sub_invocation_id"], set()).add(row["workflow_id"])
        # A link survives unless its sub-invocation is selected (a link whose sub-invocation
        # has no invocation document, or no status, is never pruned).
        for chunk in _chunks(sorted(subs), self.batch_size):
            selected = self._old_filter().tag_in("invocation_id", chunk)
            steps = query.load_fields("invocation_id")
            pruned = {row["invocation_id"] for row in self._rows("invocations", selected, *steps)}
            for sub in chunk:
                if sub not in pruned:
                    referenced.update(subs[sub])
        return referenced & set(workflow_ids)

    def prune_workflows(self) -> None:
        """Delete (or count) the run and data of every workflow nothing refers to any more."""
        for chunk in _chunks(sorted(self.workflows), self.batch_size):
            kept = self.referenced(chunk)
            orphans = [workflow_id for workflow_id in chunk if workflow_id not in kept]
            runs_filter = query.where(self.schemas.workflow_runs, self.app_id).tag_in("workflow_id", chunk)
            runs = {
                row["workflow_id"]: row["__key"]
                for row in self._rows(
                    "workflow_runs", runs_filter, *query.LOAD_KEY, *query.load_fields("workflow_id")
                )
            }
            self.report.workflows_kept += sum(1 for workflow_id in kept if workflow_id in runs)
            data_filter = (
                query.where(self.schemas.payloads, self.app_id)
                .tag_in("owner_id", orphans)
                .tag_in("kind", (WORKFLOW_DATA,))
            )
            data_keys = [row["__key"] for row in self._rows("payloads", data_filter, *query.LOAD_KEY)]
            run_keys = [runs[workflow_id] for workflow_id in orphans if workflow_id in runs]
            self.report.workflow_runs += len(run_keys)
            self.report.workflow_data += len(data_keys)
            if not self.report.dry_run:
                for keys in _chunks([*run_keys, *data_keys], UNLINK_CHUNK):
                    self.client.unlink(*keys)


def _chunks[T](items: Sequence[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


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
) -> PruneReport:
    """Delete ``app_id``'s invocations whose latest status is before ``older_than``, with their
    history, result, exception and sub-invocation links, then the runs and data of workflows
    no remaining invocation refers to.

    :param older_than: The cutoff (naive datetimes are UTC).
    :param dry_run: Count what would be deleted; delete nothing.
    :param allow_all: Accept a cutoff that is not in the past (selects every invocation).
    :param batch_size: Invocations per batch (query parameters per dependents lookup).
    :param progress: Called after each batch with ``(invocations done, invocations selected)``.
    :return: The counts per kind.
    :raises PruneRefusedError: If the cutoff is not in the past and ``allow_all`` is False.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    check_cutoff(older_than, allow_all)
    pruner = _Pruner(client, namespace, schemas, app_id, older_than, dry_run, batch_size)
    total = pruner.count_old()
    done = 0
    if progress is not None:
        progress(done, total)
    for rows in pruner.old_batches():
        done += pruner.prune_batch(rows)
        if progress is not None:
            progress(done, max(total, done))  # invocations that got old meanwhile are pruned too
    pruner.prune_workflows()
    return pruner.report
