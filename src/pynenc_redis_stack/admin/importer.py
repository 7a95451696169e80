"""Import one app's state from pynenc-redis 0.3.0 (plain Redis keys) into our documents.

The source layout, and how its keys are classified and read, is in
:mod:`pynenc_redis_stack.admin.import_source`. The import reads the source only (``SCAN`` over the
exact, glob-escaped prefix, ``TYPE``, ``GET``, ``LRANGE``, ``SMEMBERS``) and writes through
:mod:`pynenc_redis_stack.state_backend.writes`, the commands the backend itself sends (every document is
validated before it is written), batch by batch, each batch one pipelined round trip per step.
It is idempotent: every document has a deterministic key, and history entries, which have
no id in pynenc-redis, get one derived from their position in the source list and a hash of
their JSON, so two identical entries stay two and a second import rewrites the same keys.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from pynenc.runner.runner_context import RunnerContext
from pynenc.state_backend.base_state_backend import InvocationHistory

from pynenc_redis_stack.admin.import_source import (
    DERIVED,
    classify,
    decode_invocation,
    decode_run,
    history_entry_id,
    known_workflows,
    read_batch,
    scan_keys,
    source_app_info_key,
    source_prefix,
    text,
)
from pynenc_redis_stack.core.arrival import writer_number
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.conf import ConfigStateBackendRedisStack
from pynenc_redis_stack.core.errors import RedisStackError, check_batch_size
from pynenc_redis_stack.core.indexes import connect
from pynenc_redis_stack.core.keys import AppKeys, DocumentKind, Namespace
from pynenc_redis_stack.core.schema import Schemas, load_schemas
from pynenc_redis_stack.state_backend.scripts import InvocationBatch
from pynenc_redis_stack.state_backend.writes import Command, DocumentWrites, HistoryEntry, send

if TYPE_CHECKING:
    from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend

DEFAULT_BATCH_SIZE = 500
"""Source keys per batch (each batch is a few pipelined round trips)."""

KINDS = tuple(DocumentKind)
"""What an import copies (every kind), in report order. History and sub-invocations count
entries, not keys."""


type Progress = Callable[[int, int], None]
"""Called after each batch with ``(source keys done, source keys in total)``."""


@dataclass
class ImportReport:
    """What :func:`import_from_redis` found in the source and wrote to the target.

    :ivar source_app_id: The pynenc-redis app read.
    :ivar target_app_id: The app the documents were written for.
    :ivar dry_run: True when nothing was written.
    :ivar keys_scanned: Source keys under the app's prefix (the app-info key is apart).
    :ivar found: Items per kind in the source (history: entries; sub-invocations: links).
    :ivar written: Documents written per kind (empty on a dry run). History entries of an
        invocation whose entries are all present already are not rewritten.
    :ivar unchanged: History entries left as they were because a previous import wrote them.
    :ivar derived_keys: Source sets and sorted sets pynenc-redis derives from the documents;
        not copied, our indexes answer the same questions.
    :ivar unrecognized: Source keys under the prefix that are not part of pynenc-redis 0.3.0's
        state backend layout; not copied.
    :ivar errors: ``(source key, reason)`` for every item that could not be imported
        (unparsable JSON, an identifier RediSearch cannot index...).
    """

    source_app_id: str
    target_app_id: str
    dry_run: bool
    keys_scanned: int = 0
    found: Counter[DocumentKind] = field(default_factory=Counter)
    written: Counter[DocumentKind] = field(default_factory=Counter)
    unchanged: int = 0
    derived_keys: int = 0
    unrecognized: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every item of the source was imported (or would be, on a dry run)."""
        return not self.errors


# -- target ----------------------------------------------------------------------------------


@dataclass
class _Target:
    namespace: Namespace
    schemas: Schemas
    keys: AppKeys
    connect: Callable[[], redis.Redis]
    _client: redis.Redis | None = None

    @property
    def client(self) -> redis.Redis:
        """Connect (and check the indexes) on first use, so a dry run never touches the target."""
        if self._client is None:
            self._client = self.connect()
        return self._client


def _target(
    target: RedisStackStateBackend | ConfigStateBackendRedisStack, app_id: str, target_app_id: str | None
) -> _Target:
    schemas = load_schemas()
    if isinstance(target, ConfigStateBackendRedisStack):
        conf = target
        namespace = Namespace(str(conf.redis_stack_namespace))

        keys = namespace.for_app(target_app_id or app_id)
        return _Target(namespace, schemas, keys, lambda: connect(conf, schemas, recheck=True))
    backend = target
    return _Target(
        backend.namespace,
        backend.schemas,
        backend.namespace.for_app(target_app_id or backend.app.app_id),
        lambda: backend.client,
    )


# -- the import ------------------------------------------------------------------------------


def import_from_redis(
    source_client: redis.Redis,
    target: RedisStackStateBackend | ConfigStateBackendRedisStack,
    app_id: str,
    dry_run: bool = False,
    progress: Progress | None = None,
    *,
    target_app_id: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ImportReport:
    """Copy one app's pynenc-redis 0.3.0 state into Redis Stack documents.

    The source is only read. Every document gets a deterministic key, so running the import
    again (after an interruption, or to catch up with a source that kept running) creates no
    duplicate; history entries already imported are not rewritten. Stop the source app's
    writers for an exact copy: keys written during the scan may be missed (run it again).

    :param source_client: A client on the pynenc-redis server (``decode_responses`` either way).
    :param target: Our backend (its server, namespace and, by default, its app id) or a
        configuration (its server and namespace; the app id defaults to ``app_id``).
    :param app_id: The pynenc-redis app to copy.
    :param dry_run: Read and convert everything, count it, write nothing (not even indexes).
    :param progress: Called after each batch with ``(keys done, keys in total)``.
    :param target_app_id: Write the documents for this app id instead (the app info is
        rewritten to carry it).
    :param batch_size: Source keys per batch.
    :return: Counts per kind, and every key that was not imported with the reason.
    :raises RedisImportError: If ``app_id`` cannot exist in pynenc-redis.
    """
    check_batch_size(batch_size)
    prefix = source_prefix(app_id)
    destination = _target(target, app_id, target_app_id)
    writes = DocumentWrites(destination.keys, destination.schemas)
    report = ImportReport(app_id, destination.keys.app_id, dry_run)
    # One full SCAN first: the total drives the progress bar.
    keys = scan_keys(source_client, prefix)
    workflows = known_workflows(keys, prefix)
    report.keys_scanned = total = len(keys)
    done = 0
    for start in range(0, len(keys), batch_size):
        batch = keys[start : start + batch_size]
        _import_batch(source_client, destination, writes, prefix, batch, workflows, report)
        done += len(batch)
        if progress is not None:
            progress(done, total)
    _import_app_info(source_client, destination, writes, app_id, report)
    if progress is not None:
        progress(total, total)
    return report


def _import_app_info(
    source: redis.Redis, target: _Target, writes: DocumentWrites, app_id: str, report: ImportReport
) -> None:
    from pynenc.app import AppInfo

    key = source_app_info_key(app_id)
    raw = source.get(key)
    if raw is None:
        return
    try:
        info = AppInfo.from_json(text(raw))
        if info.app_id != target.keys.app_id:
            info = dataclasses.replace(info, app_id=target.keys.app_id)
        command = writes.app_info(info)
    except (ValueError, KeyError, TypeError) as exc:
        report.errors.append((key, f"app info: {exc}"))
        return
    report.found[DocumentKind.APP_INFO] += 1
    if not report.dry_run:
        run(target.client, *command)
        report.written[DocumentKind.APP_INFO] += 1


@dataclass
class _Batch:
    """The target commands of one batch of source keys, and what they count as."""

    commands: list[Command] = field(default_factory=list)
    counts: Counter[DocumentKind] = field(default_factory=Counter)
    histories: list[list[HistoryEntry]] = field(default_factory=list)
    """Per invocation, its history entries in source order."""

    invocations: InvocationBatch | None = None
    """The invocations' upsert script call, sent first."""

    def add(self, kind: DocumentKind, *commands: Command) -> None:
        """Queue the commands of one document."""
        self.commands.extend(commands)
        self.counts[kind] += 1


def _import_batch(
    source: redis.Redis,
    target: _Target,
    writes: DocumentWrites,
    prefix: str,
    keys: list[str],
    workflows: set[str],
    report: ImportReport,
) -> None:
    batch = _Batch()
    for key, key_type, value in read_batch(source, keys):
        classified = classify(key[len(prefix) :], key_type, value, workflows)
        if classified is None:
            report.unrecognized.append(key)
            continue
        if classified == DERIVED:
            report.derived_keys += 1
            continue
        kind, ids = classified
        try:
            report.found[kind] += _convert(kind, ids, value, writes, batch)
        except (ValueError, KeyError, TypeError, AttributeError, RedisStackError) as exc:
            # JSONDecodeError and InvalidDocumentError are ValueErrors
            report.errors.append((key, f"{kind}: {type(exc).__name__}: {exc}"))
    if not report.dry_run:
        _write(target, writes, batch, report)


def _convert(
    kind: DocumentKind, ids: tuple[str, ...], value: Any, writes: DocumentWrites, batch: _Batch
) -> int:
    """Queue the target commands of one source value (every document validated first, so a
    value that fails queues nothing); return how many items it holds."""
    if kind == DocumentKind.INVOCATION:
        if batch.invocations is None:
            batch.invocations = writes.invocation_batch()
        writes.add_invocation(batch.invocations, *decode_invocation(value))
        batch.counts[kind] += 1
    elif kind == DocumentKind.HISTORY:
        entries = []
        for position, raw_entry in enumerate(value):
            history = InvocationHistory.from_json(raw_entry)
            # The list's key says whose history this is (pynenc-redis's batch write pushes one
            # entry JSON to every invocation's list), as get_history(<id>) reads it.
            history.invocation_id = ids[0]
            entries.append(writes.imported_history_entry(history, history_entry_id(position, raw_entry)))
        if entries:  # Redis deletes empty lists, but a key may empty between TYPE and LRANGE
            batch.histories.append(entries)
        return len(entries)
    elif kind == DocumentKind.RESULT:
        batch.add(kind, writes.result(ids[0], value))
    elif kind == DocumentKind.EXCEPTION:
        batch.add(kind, writes.exception(ids[0], value))
    elif kind == DocumentKind.RUNNER_CONTEXT:
        batch.add(kind, writes.runner_context(RunnerContext.from_json(value)))
    elif kind == DocumentKind.WORKFLOW_RUN:
        identity = decode_run(value, ids[0])
        if identity is None:
            raise ValueError("workflow run without a workflow type")
        batch.add(kind, writes.workflow_run(identity))
    elif kind == DocumentKind.WORKFLOW_SUB_INVOCATION:
        links = [writes.workflow_sub_invocation(ids[0], sub) for sub in value]
        for command in links:
            batch.add(kind, command)
        return len(links)
    elif kind == DocumentKind.WORKFLOW_DATA:
        workflow_id, data_key = ids
        batch.add(kind, writes.workflow_data(workflow_id, data_key, value))
    return 1


def _write(target: _Target, writes: DocumentWrites, batch: _Batch, report: ImportReport) -> None:
    """Send one batch: the invocations' upsert script (one round trip), the existence of the
    history entries (one), then every other document and the history script (one; each script
    costs one more the first time it meets the server)."""
    client = target.client
    if batch.invocations is not None:
        batch.invocations.run_in(client.pipeline(transaction=False))
    present: list[int] = []
    if batch.histories:
        pipe = client.pipeline(transaction=False)
        for entries in batch.histories:
            run(pipe, "EXISTS", *(entry.key for entry in entries))
        present = pipe.execute()
    new_entries: list[HistoryEntry] = []
    for entries, existing in zip(batch.histories, present, strict=True):
        if existing == len(entries):
            report.unchanged += len(entries)
            continue
        # Some entry is missing (first import, or one interrupted): write the whole list again
        # so its entries get consecutive seq values, i.e. keep their source order on equal ts.
        new_entries.extend(entries)
        report.written[DocumentKind.HISTORY] += len(entries)
    writer = writer_number(client, writes.keys.namespace)
    send(client.pipeline(transaction=False), batch.commands, writes.history_batch(new_entries, writer))
    report.written.update(batch.counts)
