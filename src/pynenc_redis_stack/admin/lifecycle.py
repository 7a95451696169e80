"""Migrate and drop: take the lifecycle lock, read the server once, plan, execute.

Each index is built under a versioned physical name (``<ns>:idx:<name>:v<N>``, or
``<ns>:idx:<name>:v<N>:r<k>`` when a drifted one is rebuilt at the same version) and always
queried through a stable alias (``<ns>:<name>``). A new version is built beside the live one
over the same key prefixes (the server backfills the documents already there), then the
alias is switched atomically with ``FT.ALIASUPDATE`` and the old index dropped without
``DD``, so readers never see a partial index and documents are never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from pynenc_redis_stack.core.errors import BackfillError, DrainTimeoutError
from pynenc_redis_stack.core.indexes.executor import AwaitDrain, Executor, LiveExecutor, Send
from pynenc_redis_stack.core.indexes.first_use import forget_checked_indexes, remember_checked_indexes
from pynenc_redis_stack.core.indexes.lock import LifecycleLock
from pynenc_redis_stack.core.indexes.plan import Action, IndexPlan, drop_targets, plan_all
from pynenc_redis_stack.core.indexes.snapshot import read_snapshot
from pynenc_redis_stack.core.indexes.status import IndexStatus, index_status

if TYPE_CHECKING:
    from pynenc_redis_stack.admin.legacy import LegacyCleanup
    from pynenc_redis_stack.admin.tagged_layout import TaggedLayoutMove
    from pynenc_redis_stack.core.keys import Namespace
    from pynenc_redis_stack.core.schema import IndexSpec
    from pynenc_redis_stack.trigger.migration import TriggerLayoutReport


def inspect_indexes(
    client: redis.Redis, namespace: Namespace, specs: Sequence[IndexSpec]
) -> list[IndexStatus]:
    """Return the status of every spec, in order. Reads only."""
    snapshot = read_snapshot(client, namespace, specs)
    return [index_status(snapshot, namespace, spec) for spec in specs]


@dataclass
class IndexResult:
    """What a migrate run did to one index.

    :param plan: The plan executed (or printed).
    :param sent: Write commands sent (or printed) for this index.
    :param error: Why the plan stopped, if it did.
    :param warnings: Things to know that did not stop the plan (an old index kept because
        cursors were still open on it).
    """

    plan: IndexPlan
    sent: list[tuple[str, ...]] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def alias(self) -> str:
        return self.plan.status.alias

    @property
    def dropped(self) -> list[str]:
        """Physical indexes dropped (or printed to be): the plan's drops minus any kept because
        readers still had cursors on them."""
        return [args[1] for args in self.sent if args[0] == "FT.DROPINDEX" and args[1] in self.plan.drops]

    @property
    def ok(self) -> bool:
        """True when the index is now at its file version (or would be, in a dry run)."""
        return self.error is None and self.plan.action is not Action.SKIP


@dataclass
class DataFill:
    """What the data step of a migration did (or, in a dry run, would do) to a store written
    by an earlier layout (``admin.index_migrate``)."""

    legacy: LegacyCleanup | None = None
    trigger_layout: TriggerLayoutReport | None = None
    tagged_layout: TaggedLayoutMove | None = None


@dataclass
class MigrationReport:
    """Outcome of :func:`migrate`.

    :param dry_run: True when commands were printed, not sent.
    :param results: One entry per index, in schema order.
    :param lock_wait: Seconds spent waiting for another run's lock.
    :param final: Status after the run (live runs only).
    """

    dry_run: bool
    results: list[IndexResult]
    lock_wait: float = 0.0
    final: list[IndexStatus] = field(default_factory=list)
    legacy: LegacyCleanup | None = None
    """Keys of the earlier layout merged and deleted (``admin.index_migrate``; a dry run
    counts them)."""
    trigger_layout: TriggerLayoutReport | None = None
    """Trigger definitions and conditions of the earlier layout turned into documents, and
    its keys deleted, per app (a dry run lists them)."""
    tagged_layout: TaggedLayoutMove | None = None
    """Keys of the untagged layout moved to their hash-tagged names (a dry run counts them)."""

    @property
    def nothing_to_do(self) -> bool:
        """True when every index was already at its file version, with nothing to clean up,
        and no key of the earlier layout was left."""
        return all(result.plan.action is Action.NONE for result in self.results) and not (
            (self.legacy and self.legacy.total)
            or (self.trigger_layout and self.trigger_layout.per_app)
            or (self.tagged_layout and self.tagged_layout.total)
        )

    @property
    def ok(self) -> bool:
        """True when every index is (or, in a dry run, would be) at its file version."""
        return all(result.ok for result in self.results)

    @property
    def sent(self) -> list[tuple[str, ...]]:
        """Every write command sent (or printed), in order."""
        return [args for result in self.results for args in result.sent]

    @property
    def created(self) -> list[str]:
        """Indexes this run sent ``FT.CREATE`` for (another process creating it first excluded)."""
        return [args[1] for args in self.sent if args[0] == "FT.CREATE"]


def _execute(plan: IndexPlan, executor: Executor) -> IndexResult:
    result = IndexResult(plan)
    before = len(executor.sent)
    skip_drop: str | None = None
    try:
        for step in plan.steps:
            if isinstance(step, Send) and step.args[:2] == ("FT.DROPINDEX", skip_drop):
                continue
            try:
                executor.run(step)
            except DrainTimeoutError as exc:
                # The alias already moved; keeping the old index only costs memory until a rerun.
                result.warnings.append(str(exc))
                skip_drop = step.index if isinstance(step, AwaitDrain) else None
    except BackfillError as exc:
        result.error = str(exc)
    result.sent = executor.sent[before:]
    return result


def migrate(
    client: redis.Redis,
    namespace: Namespace,
    specs: Sequence[IndexSpec],
    executor: Executor,
    *,
    rebuild_drifted: bool = False,
    lock_timeout: float = 3600.0,
    lock_ttl: float = 30.0,
    notify: Callable[[str], None] | None = None,
    fill: Callable[[Callable[[], None]], DataFill] | None = None,
) -> MigrationReport:
    """Bring every index to its schema file's version with zero downtime.

    Per index: create the new physical index over the same prefixes (or reuse one an
    interrupted run created), wait for the server to backfill it, switch the alias with
    ``FT.ALIASUPDATE`` (``FT.ALIASADD`` for a missing one), wait for readers' cursors on the old
    index, then drop it without ``DD``. Live runs hold the namespace's lifecycle lock (a second
    run waits, then finds nothing to do) and refresh it at every poll; a dry run takes no lock
    and its executor prints the commands instead of sending them.

    :param executor: :class:`~pynenc_redis_stack.core.indexes.executor.LiveExecutor` or
        :class:`~pynenc_redis_stack.core.indexes.executor.PrintingExecutor`. A live executor's heartbeat is
        replaced by the lock refresh.
    :param rebuild_drifted: Rebuild indexes whose live definition differs from the file at the
        same version (see :func:`plan_index`); otherwise they are reported and left alone.
    :param lock_timeout: Seconds to wait for another run's lock.
    :param lock_ttl: Lease of the lock; how long a killed run blocks the next one.
    :param notify: Receives human-readable notices (waiting for the lock).
    :param fill: The data step (:func:`~pynenc_redis_stack.admin.legacy.clean_legacy`,
        :func:`~pynenc_redis_stack.trigger.migration.migrate_trigger_layout` and
        :func:`~pynenc_redis_stack.admin.tagged_layout.move_to_tagged_layout`), run under the lock once every index is done, with the lock's refresh as its heartbeat.
    :raises LockTimeoutError: If another run holds the lock past ``lock_timeout``.
    :raises LockLostError: If the lock was lost mid-run (nothing more is changed).
    """
    if executor.dry_run:
        plans = plan_all(
            read_snapshot(client, namespace, specs), namespace, specs, rebuild_drifted=rebuild_drifted
        )
        results = [_execute(plan, executor) for plan in plans]
        data = fill(_no_heartbeat) if fill else DataFill()
        return MigrationReport(
            True,
            results,
            legacy=data.legacy,
            trigger_layout=data.trigger_layout,
            tagged_layout=data.tagged_layout,
        )
    lock = LifecycleLock(client, namespace, ttl=lock_ttl)

    def waiting(holder: str) -> None:
        if notify is not None:
            notify(f"waiting for {lock.key}, held by {holder} (another migrate or drop is running)")

    waited = lock.acquire(lock_timeout, waiting)
    try:
        if isinstance(executor, LiveExecutor):
            executor.heartbeat = lock.refresh
        forget_checked_indexes(client, namespace)  # new processes check fully until the end
        # Read only once the lock is held: a run that waited sees what the other one did.
        snapshot = read_snapshot(client, namespace, specs)
        results = []
        for plan in plan_all(snapshot, namespace, specs, rebuild_drifted=rebuild_drifted):
            results.append(_execute(plan, executor))
            lock.refresh()
        final = inspect_indexes(client, namespace, specs)
        remember_checked_indexes(client, namespace, final)
        filled = fill(lock.refresh) if fill and all(result.ok for result in results) else DataFill()
    finally:
        lock.release()
    return MigrationReport(
        False,
        results,
        lock_wait=waited,
        final=final,
        legacy=filled.legacy,
        trigger_layout=filled.trigger_layout,
        tagged_layout=filled.tagged_layout,
    )


def _no_heartbeat() -> None:
    """A dry run holds no lock to keep alive."""


@dataclass
class DropReport:
    """Outcome of :func:`drop`.

    :param dry_run: True when commands were printed, not sent.
    :param dropped: Physical indexes dropped (or that would be), per alias.
    :param delete_documents: True when ``DD`` was sent (documents deleted).
    :param cancelled: True when the confirmation was refused (nothing changed).
    :param sent: Write commands sent (or printed).
    """

    dry_run: bool
    dropped: dict[str, list[str]]
    delete_documents: bool
    cancelled: bool = False
    sent: list[tuple[str, ...]] = field(default_factory=list)


def drop(
    client: redis.Redis,
    namespace: Namespace,
    specs: Sequence[IndexSpec],
    executor: Executor,
    *,
    delete_documents: bool = False,
    confirm: Callable[[dict[str, list[str]]], bool] | None = None,
    lock_timeout: float = 60.0,
    lock_ttl: float = 30.0,
) -> DropReport:
    """Drop every physical index of ``specs`` (dropping an index removes its alias).

    :param delete_documents: Send ``DD``: the server also deletes every document the index
        holds. Versions of one index share their key prefixes, so this deletes the documents
        every version serves (and every app's in the namespace).
    :param confirm: Asked with the indexes about to be dropped (before anything changes);
        returning False cancels. None drops without asking.
    :raises LockTimeoutError: If a migrate holds the lifecycle lock past ``lock_timeout``.
    """
    targets = drop_targets(read_snapshot(client, namespace, specs), namespace, specs)
    if not targets or (confirm is not None and not confirm(targets)):
        return DropReport(executor.dry_run, targets, delete_documents, cancelled=bool(targets))
    suffix = ("DD",) if delete_documents else ()
    if executor.dry_run:
        executor.run_all(
            Send(("FT.DROPINDEX", name, *suffix)) for names in targets.values() for name in names
        )
        return DropReport(True, targets, delete_documents, sent=list(executor.sent))
    lock = LifecycleLock(client, namespace, ttl=lock_ttl)
    lock.acquire(lock_timeout)
    try:
        forget_checked_indexes(client, namespace)
        # Read again under the lock: a migrate may have finished while the user was asked.
        targets = drop_targets(read_snapshot(client, namespace, specs), namespace, specs)
        for names in targets.values():
            for name in names:
                executor.run(Send(("FT.DROPINDEX", name, *suffix), tolerate="unknown index"))
    finally:
        lock.release()
    return DropReport(False, targets, delete_documents, sent=list(executor.sent))
