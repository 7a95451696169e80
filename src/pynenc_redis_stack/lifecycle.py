"""Index lifecycle: compare live indexes with ``schemas/``, create, migrate and drop them.

Each index is built under a versioned physical name (``<ns>:idx:<name>:v<N>``, or
``<ns>:idx:<name>:v<N>:r<k>`` when a drifted one is rebuilt at the same version) and always
queried through a stable alias (``<ns>:<name>``). A new version is built beside the live one
over the same key prefixes (the server backfills the documents already there), then the
alias is switched atomically with ``FT.ALIASUPDATE`` and the old index dropped without
``DD``, so readers never see a partial index and documents are never touched.

Layers, top to bottom:

- :func:`migrate` / :func:`drop`: take the lifecycle lock, inspect, plan, execute; used by the
  ``pynenc-redis-stack index`` command;
- :func:`ensure_indexes`: the backend's check on first use; it creates missing indexes with
  the same planning and executor as :func:`migrate` (without lock and without drops);
- :func:`index_status` / :func:`plan_index`: reads only; a plan is a list of steps decided
  from what the server holds before anything changes;
- :mod:`pynenc_redis_stack.executor`: sends the steps, or prints them (``--dry-run``).
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import redis

from pynenc_redis_stack.client import run
from pynenc_redis_stack.errors import (
    BackfillError,
    DrainTimeoutError,
    ForeignIndexError,
    IndexDefinitionMismatchError,
    LockLostError,
    LockTimeoutError,
)
from pynenc_redis_stack.executor import (
    DEFAULT_POLL_INTERVAL,
    AwaitBackfill,
    AwaitDrain,
    Executor,
    LiveExecutor,
    Send,
    Step,
    index_info,
    is_indexing,
    is_missing_index_error,
    list_indexes,
    percent_indexed,
)

if TYPE_CHECKING:
    from pynenc_redis_stack.keys import Namespace
    from pynenc_redis_stack.schema import IndexSpec

__all__ = [
    "Action",
    "DropReport",
    "IndexLock",
    "IndexPlan",
    "IndexResult",
    "IndexState",
    "IndexStatus",
    "LockLostError",
    "LockTimeoutError",
    "MigrationReport",
    "create_command",
    "create_index",
    "drop",
    "ensure_indexes",
    "index_status",
    "inspect_indexes",
    "is_missing_index_error",
    "lock_key",
    "migrate",
    "plan_index",
]

ALREADY_EXISTS = "already exists"
"""Lower-case text of the server's answer to creating an index or alias that exists."""


class IndexState(StrEnum):
    """What the server holds for one schema file, compared with the file."""

    OK = "ok"
    MISSING = "missing"
    OUTDATED = "outdated"
    """The alias points to another version (or to an index not named by this package)."""
    DRIFTED = "drifted"
    """The live index has the file's version but another definition."""
    BACKFILLING = "backfilling"
    """The index for the file's version is still indexing the documents already stored."""


@dataclass(frozen=True)
class IndexStatus:
    """What the server holds for one spec. Built by :func:`index_status`, which only reads.

    :param spec: The schema file's spec.
    :param alias: The alias queries use.
    :param live_index: The physical index the alias points to, or None without an alias.
    :param state: The comparison with the spec.
    :param detail: Why the state is not ``ok`` (or leftovers next to an ``ok`` index).
    :param live_version: Version parsed from the live index name (None if foreign or missing).
    :param num_docs: Documents in the live index (what queries see), if there is one.
    :param failures: The live index's ``hash_indexing_failures``.
    :param percent_indexed: Progress of the backfill when ``state`` is ``backfilling``.
    :param building_index: Index of the file's version being built beside the live one (a
        migration in progress), if any.
    :param versions: Every physical index of this name on the server (this package's naming).
    :param drift: Differences of the live index from the file when it has the file's version.
    """

    spec: IndexSpec
    alias: str
    live_index: str | None
    state: IndexState
    detail: str = ""
    live_version: int | None = None
    num_docs: int | None = None
    failures: int | None = None
    percent_indexed: float | None = None
    building_index: str | None = None
    versions: tuple[str, ...] = ()
    drift: str = ""

    @property
    def file_version(self) -> int:
        """The version in the schema file."""
        return self.spec.version

    @property
    def label(self) -> str:
        """The state as ``index status`` prints it (``backfilling 42%`` while indexing)."""
        if self.state is IndexState.BACKFILLING:
            return f"backfilling {int((self.percent_indexed or 0.0) * 100)}%"
        return self.state.value

    def as_dict(self) -> dict[str, Any]:
        """Return the status as JSON-ready data (``index status --json``)."""
        return {
            "name": self.spec.name,
            "alias": self.alias,
            "index": self.live_index,
            "file_version": self.file_version,
            "live_version": self.live_version,
            "state": self.state.value,
            "label": self.label,
            "percent_indexed": self.percent_indexed,
            "num_docs": self.num_docs,
            "hash_indexing_failures": self.failures,
            "building_index": self.building_index,
            "versions": list(self.versions),
            "detail": self.detail,
        }


# -- names ---------------------------------------------------------------------------------


def _name_pattern(namespace: Namespace, spec: IndexSpec) -> re.Pattern[str]:
    return re.compile(re.escape(f"{namespace.namespace}:idx:{spec.name}:v") + r"(\d+)(?::r(\d+))?")


def parse_physical(namespace: Namespace, spec: IndexSpec, name: str) -> tuple[int, int] | None:
    """Return ``(version, rebuild)`` of a physical index name of ``spec``, or None if it is not one.

    ``<ns>:idx:<name>:v3`` is ``(3, 0)``; ``<ns>:idx:<name>:v3:r2`` (the second rebuild of a
    drifted v3) is ``(3, 2)``.
    """
    match = _name_pattern(namespace, spec).fullmatch(name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def physical_indexes(namespace: Namespace, spec: IndexSpec, listed: Sequence[str]) -> tuple[str, ...]:
    """Return the physical indexes of ``spec`` among ``listed`` (``FT._LIST``), oldest first."""
    ours = [name for name in listed if parse_physical(namespace, spec, name) is not None]
    return tuple(sorted(ours, key=lambda name: parse_physical(namespace, spec, name) or (0, 0)))


def create_command(namespace: Namespace, spec: IndexSpec, index: str | None = None) -> list[str]:
    """Return the ``FT.CREATE`` command of ``spec``'s physical index.

    :param index: Physical name; ``namespace.physical_index(spec)`` by default.
    """
    prefixes = namespace.prefixes(spec)
    return [
        "FT.CREATE",
        index or namespace.physical_index(spec),
        "ON",
        "JSON",
        "PREFIX",
        str(len(prefixes)),
        *prefixes,
        *spec.schema_args(),
    ]


# -- comparing a live index with its spec -------------------------------------------------

type _Attribute = tuple[str, str, str, frozenset[str]]


def _expected_attributes(spec: IndexSpec) -> list[_Attribute]:
    expected = []
    for spec_field in spec.fields:
        flags = set()
        if spec_field.type == "tag" and spec_field.case_sensitive:
            flags.add("CASESENSITIVE")
        if spec_field.sortable:
            flags.add("SORTABLE")
        expected.append((spec_field.path, spec_field.name, spec_field.type.upper(), frozenset(flags)))
    return expected


def _live_attributes(raw: list[list[Any]]) -> list[_Attribute]:
    live = []
    for attribute in raw:
        info: dict[str, Any] = {}
        flags = set()
        items = list(attribute)
        position = 0
        while position < len(items):
            token = items[position]
            if token in ("identifier", "attribute", "type", "SEPARATOR") and position + 1 < len(items):
                info[token] = items[position + 1]
                position += 2
                continue
            flags.add(str(token))
            position += 1
        if info.get("SEPARATOR", "") != "":
            flags.add(f"SEPARATOR={info['SEPARATOR']}")
        flags.discard("UNF")  # implied by SORTABLE on JSON since RediSearch 2.6
        live.append(
            (
                str(info.get("identifier")),
                str(info.get("attribute")),
                str(info.get("type")),
                frozenset(flags),
            )
        )
    return live


def definition_differences(info: dict[str, Any], namespace: Namespace, spec: IndexSpec) -> list[str]:
    """Return how the index described by ``FT.INFO`` differs from ``spec`` (empty if it matches)."""
    raw_definition = list(info.get("index_definition") or [])
    definition = dict(zip(raw_definition[::2], raw_definition[1::2], strict=False))
    differences = []
    if str(definition.get("key_type")) != "JSON":
        differences.append(f"key type {definition.get('key_type')} instead of JSON")
    if list(definition.get("prefixes", [])) != namespace.prefixes(spec):
        differences.append(f"prefixes {definition.get('prefixes')} instead of {namespace.prefixes(spec)}")
    live = {attribute[1]: attribute for attribute in _live_attributes(info.get("attributes") or [])}
    expected = {attribute[1]: attribute for attribute in _expected_attributes(spec)}
    missing = [name for name in expected if name not in live]
    unexpected = [name for name in live if name not in expected]
    if missing:
        differences.append(f"missing fields {', '.join(missing)}")
    if unexpected:
        differences.append(f"unexpected fields {', '.join(unexpected)}")
    for name in expected:
        if name in live and live[name] != expected[name]:
            differences.append(
                f"field {name} is {_describe(live[name])} instead of {_describe(expected[name])}"
            )
    return differences


def _describe(attribute: _Attribute) -> str:
    path, _name, kind, flags = attribute
    return " ".join([path, kind, *sorted(flags)])


def _matches(client: redis.Redis, namespace: Namespace, spec: IndexSpec, name: str) -> dict[str, Any] | None:
    """Return ``FT.INFO`` of ``name`` if it exists and matches ``spec``, else None."""
    info = index_info(client, name)
    if info is None or definition_differences(info, namespace, spec):
        return None
    return info


# -- status (reads only) -------------------------------------------------------------------


def index_status(
    client: redis.Redis,
    namespace: Namespace,
    spec: IndexSpec,
    listed: Sequence[str] | None = None,
) -> IndexStatus:
    """Compare what the server holds for ``spec`` with the spec. Reads only.

    :param listed: ``FT._LIST`` if the caller already has it (one read for many specs).
    """
    alias = namespace.alias(spec)
    names = list(listed) if listed is not None else list_indexes(client)
    versions = physical_indexes(namespace, spec, names)
    alias_info = index_info(client, alias)
    live = str(alias_info["index_name"]) if alias_info is not None else None
    # A migration in progress: an index of the file's version, not aliased, still indexing.
    building: str | None = None
    building_percent: float | None = None
    for name in versions:
        parsed = parse_physical(namespace, spec, name)
        if name == live or parsed is None or parsed[0] != spec.version:
            continue
        info = _matches(client, namespace, spec, name)
        if info is not None and is_indexing(info):
            building, building_percent = name, percent_indexed(info)
            break
    common: dict[str, Any] = {"versions": versions, "building_index": building}
    if alias_info is None or live is None:
        if building is not None:
            return IndexStatus(
                spec,
                alias,
                None,
                IndexState.BACKFILLING,
                f"{building} is being built; the alias does not exist yet",
                percent_indexed=building_percent,
                **common,
            )
        return IndexStatus(spec, alias, None, IndexState.MISSING, **common)
    parsed_live = parse_physical(namespace, spec, live)
    common.update(
        live_version=parsed_live[0] if parsed_live else None,
        num_docs=int(alias_info.get("num_docs", 0)),
        failures=int(alias_info.get("hash_indexing_failures", 0)),
    )
    drift = ""
    if parsed_live is not None and parsed_live[0] == spec.version:
        drift = "; ".join(definition_differences(alias_info, namespace, spec))
    if building is not None:
        return IndexStatus(
            spec,
            alias,
            live,
            IndexState.BACKFILLING,
            f"{building} is being built; the alias still points to {live}",
            percent_indexed=building_percent,
            drift=drift,
            **common,
        )
    if parsed_live is None or parsed_live[0] != spec.version:
        return IndexStatus(spec, alias, live, IndexState.OUTDATED, f"alias points to {live}", **common)
    if drift:
        return IndexStatus(spec, alias, live, IndexState.DRIFTED, drift, drift=drift, **common)
    if is_indexing(alias_info):
        return IndexStatus(
            spec,
            alias,
            live,
            IndexState.BACKFILLING,
            f"{live} is indexing the documents already stored",
            percent_indexed=percent_indexed(alias_info),
            **common,
        )
    leftovers = [name for name in versions if name != live]
    detail = f"leftover {', '.join(leftovers)} (migrate drops it)" if leftovers else ""
    return IndexStatus(spec, alias, live, IndexState.OK, detail, **common)


def inspect_indexes(
    client: redis.Redis, namespace: Namespace, specs: Sequence[IndexSpec]
) -> list[IndexStatus]:
    """Return the status of every spec, in order. Reads only."""
    listed = list_indexes(client)
    return [index_status(client, namespace, spec, listed) for spec in specs]


# -- plans -----------------------------------------------------------------------------------


class Action(StrEnum):
    """What a plan does to one index."""

    NONE = "up to date"
    CREATE = "create"
    MIGRATE = "migrate"
    REBUILD = "rebuild"
    WAIT = "wait for backfill"
    CLEANUP = "drop leftovers"
    SKIP = "skip"


@dataclass(frozen=True)
class IndexPlan:
    """The steps that bring one index to its schema file.

    :param status: What the server held when the plan was made.
    :param action: Summary of the plan.
    :param target: Physical index the alias points to afterwards.
    :param reused: True when ``target`` already existed (a previous run was interrupted) and
        is reused instead of created.
    :param drops: Physical indexes dropped (without ``DD``) once the alias has moved.
    :param steps: What the executor runs, in order.
    :param note: Why nothing is done (``skip``), or what was deliberately left alone.
    """

    status: IndexStatus
    action: Action
    target: str | None
    reused: bool = False
    drops: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    note: str = ""


def _drop_steps(names: Sequence[str]) -> list[Step]:
    steps: list[Step] = []
    for name in names:
        # A reader that opened a cursor before the alias moved reads from the old index; dropping
        # it under that cursor fails the reader ("The index was dropped while the cursor was idle").
        steps.append(AwaitDrain(name))
        steps.append(Send(("FT.DROPINDEX", name)))
    return steps


def _rebuild_name(namespace: Namespace, spec: IndexSpec, versions: Sequence[str]) -> str:
    rebuilds = [
        parsed[1]
        for parsed in (parse_physical(namespace, spec, name) for name in versions)
        if parsed is not None and parsed[0] == spec.version
    ]
    return f"{namespace.physical_index(spec)}:r{max(rebuilds, default=0) + 1}"


def plan_index(
    client: redis.Redis,
    namespace: Namespace,
    status: IndexStatus,
    *,
    rebuild_drifted: bool = False,
    cleanup: bool = True,
) -> IndexPlan:
    """Decide the steps that bring one index to its schema file. Reads only.

    :param status: The index's current status (:func:`index_status`).
    :param rebuild_drifted: Rebuild a live index whose definition differs from the file at the
        same version, as a fresh physical index ``<ns>:idx:<name>:v<N>:r<k>``, swapped in like a
        migration. Without it a drifted index is left alone.
    :param cleanup: Drop replaced and leftover physical indexes (without ``DD``). The backend's
        check on first use plans without cleanup: it only ever creates what is missing.
    """
    spec, live = status.spec, status.live_index
    live_is_ours = live is not None and live in status.versions
    leftovers = [name for name in status.versions if name != live]
    if status.state is IndexState.OK or (
        status.state is IndexState.BACKFILLING and live is not None and status.building_index is None
    ):
        drops: tuple[str, ...] = tuple(leftovers) if cleanup else ()
        steps: list[Step] = []
        if status.state is IndexState.BACKFILLING:
            steps.append(AwaitBackfill(live or ""))
        steps.extend(_drop_steps(drops))
        if status.state is IndexState.BACKFILLING:
            action = Action.WAIT
        else:
            action = Action.CLEANUP if drops else Action.NONE
        return IndexPlan(status, action, live, drops=drops, steps=tuple(steps))
    if status.drift and not rebuild_drifted:
        note = (
            f"drifted ({status.drift}); not touched: rerun with --rebuild-drifted to rebuild it "
            "as a fresh index and swap it in"
        )
        return IndexPlan(status, Action.SKIP, live, note=note)

    # Reuse an index of the file's version that an interrupted run left behind, if it matches.
    target: str | None = None
    candidates = [status.building_index] if status.building_index else []
    candidates += [name for name in leftovers if name not in candidates]
    for name in candidates:
        parsed = parse_physical(namespace, spec, name)
        if parsed is not None and parsed[0] == spec.version and _matches(client, namespace, spec, name):
            target = name
            break
    if target is None and not cleanup and namespace.physical_index(spec) in status.versions:
        # Without cleanup nothing may be dropped: alias what is there; the check that follows
        # reports it if it does not match.
        target = namespace.physical_index(spec)
    reused = target is not None
    steps = []
    if target is None:
        plain = namespace.physical_index(spec)
        if status.live_version == spec.version:
            target = _rebuild_name(namespace, spec, status.versions)
        else:
            target = plain
            if plain in status.versions:
                # Not aliased and not matching the file: nothing reads it, rebuild it in place.
                steps.append(Send(("FT.DROPINDEX", plain)))
        steps.append(Send(tuple(create_command(namespace, spec, target)), tolerate=ALREADY_EXISTS))
    # A new index that fails documents the old one took would silently lose them from answers.
    steps.append(AwaitBackfill(target, max_failures=status.failures if live is not None else None))
    if live is None:
        steps.append(Send(("FT.ALIASADD", status.alias, target), tolerate=ALREADY_EXISTS))
    else:
        steps.append(Send(("FT.ALIASUPDATE", status.alias, target)))
    drops = ()
    if cleanup:
        drops = tuple(([live] if live_is_ours and live else []) + [n for n in leftovers if n != target])
        steps.extend(_drop_steps(drops))
    if live is None:
        action = Action.CREATE
    elif status.drift:
        action = Action.REBUILD
    else:
        action = Action.MIGRATE
    note = (
        f"the alias pointed to {live}, which is not named by this package; it was kept"
        if (live is not None and not live_is_ours)
        else ""
    )
    return IndexPlan(status, action, target, reused=reused, drops=drops, steps=tuple(steps), note=note)


# -- the lifecycle lock ------------------------------------------------------------------------

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def lock_key(namespace: Namespace) -> str:
    """Return the key of the lock that serialises ``index migrate`` and ``index drop``."""
    return f"{namespace.namespace}:lock:index-migrate"


class IndexLock:
    """A lease on the namespace's lifecycle: ``SET key token NX PX ttl``, refreshed while held,
    released with a compare-and-delete script (a process whose lease expired cannot delete the
    next holder's).

    :param client: The connection.
    :param namespace: The namespace whose indexes are changed.
    :param ttl: Seconds the lease lasts without refresh; a killed holder blocks others this long.
    :param poll_interval: Seconds between two attempts while waiting.
    """

    def __init__(
        self,
        client: redis.Redis,
        namespace: Namespace,
        ttl: float = 30.0,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self.client = client
        self.key = lock_key(namespace)
        self.ttl_ms = max(1, int(ttl * 1000))
        self.poll_interval = poll_interval
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self._refreshed = 0.0

    def acquire(self, timeout: float, on_wait: Callable[[str], None] | None = None) -> float:
        """Take the lock, waiting up to ``timeout`` seconds for the current holder.

        :param on_wait: Called once with the holder's token when the lock is busy.
        :return: Seconds spent waiting.
        :raises LockTimeoutError: If the lock is still held at the deadline.
        """
        start = time.monotonic()
        notified = False
        while True:
            if run(self.client, "SET", self.key, self.token, "NX", "PX", str(self.ttl_ms)):
                self._refreshed = time.monotonic()
                return self._refreshed - start
            holder = str(run(self.client, "GET", self.key))
            if not notified and on_wait is not None:
                on_wait(holder)
                notified = True
            if time.monotonic() - start >= timeout:
                raise LockTimeoutError(
                    f"{self.key} is still held by {holder} after {timeout:g} s (another `index "
                    "migrate` or `index drop` is running); nothing was changed. Run it again once "
                    "that one is done."
                )
            time.sleep(self.poll_interval)

    def refresh(self) -> None:
        """Extend the lease; cheap enough to call at every poll (it only writes every ttl/3).

        :raises LockLostError: If the lease expired or another process holds the lock.
        """
        now = time.monotonic()
        if now - self._refreshed < self.ttl_ms / 3000:
            return
        if not run(self.client, "EVAL", _REFRESH, "1", self.key, self.token, str(self.ttl_ms)):
            raise LockLostError(
                f"lost {self.key} (expired or taken by another process); stopped before changing more. "
                "Run migrate again: it resumes where this run stopped."
            )
        self._refreshed = now

    def release(self) -> bool:
        """Release the lock if this process still holds it.

        :return: True if it was released, False if it had already expired or changed hands.
        """
        return bool(run(self.client, "EVAL", _RELEASE, "1", self.key, self.token))


# -- migrate -----------------------------------------------------------------------------------


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

    @property
    def nothing_to_do(self) -> bool:
        """True when every index was already at its file version, with nothing to clean up."""
        return all(result.plan.action is Action.NONE for result in self.results)

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
) -> MigrationReport:
    """Bring every index to its schema file's version with zero downtime.

    Per index: create the new physical index over the same prefixes (or reuse one an
    interrupted run created), wait for the server to backfill it, switch the alias with
    ``FT.ALIASUPDATE`` (``FT.ALIASADD`` for a missing one), wait for readers' cursors on the old
    index, then drop it without ``DD``. Live runs hold the namespace's lifecycle lock (a second
    run waits, then finds nothing to do) and refresh it at every poll; a dry run takes no lock
    and its executor prints the commands instead of sending them.

    :param executor: :class:`~pynenc_redis_stack.executor.LiveExecutor` or
        :class:`~pynenc_redis_stack.executor.PrintingExecutor`. A live executor's heartbeat is
        replaced by the lock refresh.
    :param rebuild_drifted: Rebuild indexes whose live definition differs from the file at the
        same version (see :func:`plan_index`); otherwise they are reported and left alone.
    :param lock_timeout: Seconds to wait for another run's lock.
    :param lock_ttl: Lease of the lock; how long a killed run blocks the next one.
    :param notify: Receives human-readable notices (waiting for the lock).
    :raises LockTimeoutError: If another run holds the lock past ``lock_timeout``.
    :raises LockLostError: If the lock was lost mid-run (nothing more is changed).
    """
    if executor.dry_run:
        statuses = inspect_indexes(client, namespace, specs)
        plans = [plan_index(client, namespace, s, rebuild_drifted=rebuild_drifted) for s in statuses]
        return MigrationReport(True, [_execute(plan, executor) for plan in plans])
    lock = IndexLock(client, namespace, ttl=lock_ttl)

    def waiting(holder: str) -> None:
        if notify is not None:
            notify(f"waiting for {lock.key}, held by {holder} (another migrate or drop is running)")

    waited = lock.acquire(lock_timeout, waiting)
    try:
        if isinstance(executor, LiveExecutor):
            executor.heartbeat = lock.refresh
        # Inspect only once the lock is held: a run that waited sees what the other one did.
        statuses = inspect_indexes(client, namespace, specs)
        results = []
        for status in statuses:
            plan = plan_index(client, namespace, status, rebuild_drifted=rebuild_drifted)
            results.append(_execute(plan, executor))
            lock.refresh()
        final = inspect_indexes(client, namespace, specs)
    finally:
        lock.release()
    return MigrationReport(False, results, lock_wait=waited, final=final)


# -- drop --------------------------------------------------------------------------------------


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


def drop_targets(
    client: redis.Redis, namespace: Namespace, specs: Sequence[IndexSpec]
) -> dict[str, list[str]]:
    """Return, per alias, the physical indexes a drop removes: every version of that name
    (``<ns>:idx:<name>:v<N>``, the only names this package creates). Reads only; aliases with
    nothing to drop are left out.

    :raises ForeignIndexError: If an alias points to an index of another name: something else
        created it, and dropping it could destroy data this package does not own.
    """
    listed = list_indexes(client)
    targets: dict[str, list[str]] = {}
    foreign = []
    for spec in specs:
        names = list(physical_indexes(namespace, spec, listed))
        alias = namespace.alias(spec)
        info = index_info(client, alias)
        if info is not None and parse_physical(namespace, spec, str(info["index_name"])) is None:
            foreign.append((alias, str(info["index_name"]), namespace.physical_index(spec)))
        if names:
            targets[alias] = names
    if foreign:
        raise ForeignIndexError(
            "refusing to drop: "
            + "; ".join(
                f"alias {alias} points to index {index!r}, which pynenc-redis-stack did not create "
                f"(its indexes are named like {example})"
                for alias, index, example in foreign
            )
            + ". Nothing was dropped. Detach the alias with FT.ALIASDEL (or drop that index "
            "yourself with FT.DROPINDEX if it is yours to drop), then run `index drop` again."
        )
    return targets


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
    targets = drop_targets(client, namespace, specs)
    if not targets or (confirm is not None and not confirm(targets)):
        return DropReport(executor.dry_run, targets, delete_documents, cancelled=bool(targets))
    suffix = ("DD",) if delete_documents else ()
    if executor.dry_run:
        executor.run_all(
            Send(("FT.DROPINDEX", name, *suffix)) for names in targets.values() for name in names
        )
        return DropReport(True, targets, delete_documents, sent=list(executor.sent))
    lock = IndexLock(client, namespace, ttl=lock_ttl)
    lock.acquire(lock_timeout)
    try:
        # Listed again under the lock: a migrate may have finished while the user was asked.
        targets = drop_targets(client, namespace, specs)
        for names in targets.values():
            for name in names:
                executor.run(Send(("FT.DROPINDEX", name, *suffix), tolerate="unknown index"))
    finally:
        lock.release()
    return DropReport(False, targets, delete_documents, sent=list(executor.sent))


# -- the backend's check on first use -------------------------------------------------------------


def create_index(client: redis.Redis, namespace: Namespace, spec: IndexSpec, timeout: float = 300.0) -> None:
    """Create ``spec``'s index and alias if the alias is missing, waiting for the backfill.

    Safe to run concurrently: a second creator's ``already exists`` errors are ignored.

    :raises BackfillError: If the backfill does not finish within ``timeout`` seconds.
    """
    status = index_status(client, namespace, spec)
    if status.live_index is None:
        LiveExecutor(client, timeout=timeout).run_all(
            plan_index(client, namespace, status, cleanup=False).steps
        )


def ensure_indexes(
    client: redis.Redis,
    namespace: Namespace,
    specs: Sequence[IndexSpec],
    create_missing: bool,
    *,
    backfill_timeout: float = 300.0,
) -> list[str]:
    """Make sure every index exists and matches its spec (the backend calls this on first use).

    A missing index is created with the same plan and executor as ``index migrate`` (no lock,
    nothing dropped), and the call waits for its backfill: querying a half-built index would
    return answers that are silently short.

    :param create_missing: Create missing indexes; when False a missing one is an error.
    :param backfill_timeout: Seconds to wait for a backfill.
    :return: The physical indexes this call created (empty when all were there).
    :raises IndexDefinitionMismatchError: If an index is missing (and may not be created),
        outdated, drifted or still backfilling at the deadline; the backend never queries
        such an index as if it were right.
    """
    listed = list_indexes(client)
    executor = LiveExecutor(client, timeout=backfill_timeout)
    problems = []
    for spec in specs:
        status = index_status(client, namespace, spec, listed)
        try:
            if status.live_index is None and create_missing:
                executor.run_all(plan_index(client, namespace, status, cleanup=False).steps)
                status = index_status(client, namespace, spec)
            elif status.state is IndexState.BACKFILLING and status.building_index is None:
                executor.run(AwaitBackfill(status.live_index or status.alias))
                status = index_status(client, namespace, spec)
        except BackfillError as exc:
            problems.append(f"{status.alias}: {exc}")
            continue
        if status.state is not IndexState.OK:
            problems.append(f"{status.alias}: {status.label} {status.detail}".rstrip())
    if problems:
        raise IndexDefinitionMismatchError(
            "RediSearch indexes do not match schemas/: "
            + "; ".join(problems)
            + ". Run `pynenc-redis-stack index status` to see each one and `pynenc-redis-stack "
            "index migrate` to create or migrate them (zero downtime; documents are kept). "
            "Missing indexes are also created on first use when redis_stack_create_indexes is true."
        )
    return executor.created
