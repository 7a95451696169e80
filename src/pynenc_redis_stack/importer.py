"""Import one app's state from pynenc-redis 0.3.0 (plain Redis keys) into our documents.

pynenc-redis's ``RedisStateBackend`` keeps an app's state under
``__pynenc__:<app>:state_backend:`` (``<app>`` with ``[ ] *`` spelled out by its
``sanitize_for_redis``) plus one app-info key outside that prefix::

    invocation:<id>                      string   JSON of the invocation and its call
    history:<id>                         list     InvocationHistory JSON, in arrival order
    result:<id>, exception:<id>          string   serialised payload ("" included)
    runner_context:<runner>              string   RunnerContext JSON (with its parent chain)
    workflow:run:<workflow>              string   {"workflow_id", "workflow_type_key", "parent_workflow_id"}
    workflow:<workflow>:sub_invocations  set      sub-invocation ids
    workflow:<workflow>:data:<key>       string   serialised workflow data value
    __pynenc__:__pynenc__:apps_info:<app>  string   AppInfo JSON

and, derived from those, ``parent_invocation_children:*``, ``parent_event_children:*``,
``workflow:invocations:*``, ``workflow:type_invocations:*``, ``workflow:types``,
``workflow:type_index:*`` (sets) and ``history_by_timestamp`` (a sorted set). The derived keys
are not copied: our indexes answer those questions from the documents.

The import reads the source only (``SCAN`` over the exact, glob-escaped prefix, ``TYPE``,
``GET``, ``LRANGE``, ``SMEMBERS``) and writes through :mod:`documents` (every document is
validated before it is written), batch by batch, each batch one pipelined round trip per step.
It is idempotent: every document has a deterministic key, and history entries, which have
no id in pynenc-redis, get one derived from their position in the source list and a hash of
their JSON, so two identical entries stay two and a second import rewrites the same keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import redis
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.runner.runner_context import RunnerContext
from pynenc.state_backend.base_state_backend import InvocationHistory
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack import documents as docs
from pynenc_redis_stack.client import run
from pynenc_redis_stack.conf import ConfigStateBackendRedisStack
from pynenc_redis_stack.errors import RedisImportError, RedisStackError
from pynenc_redis_stack.keys import EXCEPTION, RESULT, WORKFLOW_DATA, AppKeys, Namespace
from pynenc_redis_stack.lifecycle import connect
from pynenc_redis_stack.schema import Schemas, load_schemas
from pynenc_redis_stack.scripts import HistoryBatch

if TYPE_CHECKING:
    from pynenc_redis_stack.backend import RedisStackStateBackend

SOURCE_ROOT = "__pynenc__"
"""First segment of every pynenc-redis key (``PYNENC_KEY_PREFIX``)."""

DEFAULT_BATCH_SIZE = 500
"""Source keys per batch (each batch is a few pipelined round trips)."""

INVOCATIONS = "invocations"
HISTORY = "history"
RESULTS = "results"
EXCEPTIONS = "exceptions"
RUNNER_CONTEXTS = "runner_contexts"
WORKFLOW_RUNS = "workflow_runs"
WORKFLOW_SUB_INVOCATIONS = "workflow_sub_invocations"
WORKFLOW_DATA_VALUES = "workflow_data"
APP_INFO = "app_info"
KINDS = (
    INVOCATIONS,
    HISTORY,
    RESULTS,
    EXCEPTIONS,
    RUNNER_CONTEXTS,
    WORKFLOW_RUNS,
    WORKFLOW_SUB_INVOCATIONS,
    WORKFLOW_DATA_VALUES,
    APP_INFO,
)
"""What an import copies, in report order. History and sub-invocations count entries, not keys."""

# Sets and sorted sets pynenc-redis derives from the documents above (our indexes answer the
# same questions); matched on the key after the app prefix.
_DERIVED_PREFIXES = (
    "parent_invocation_children:",
    "parent_event_children:",
    "workflow:invocations:",
    "workflow:type_invocations:",
    "workflow:type_index:",
)
_DERIVED_KEYS = ("workflow:types", "history_by_timestamp")


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
    found: Counter[str] = field(default_factory=Counter)
    written: Counter[str] = field(default_factory=Counter)
    unchanged: int = 0
    derived_keys: int = 0
    unrecognized: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every item of the source was imported (or would be, on a dry run)."""
        return not self.errors


# -- source layout ---------------------------------------------------------------------------


def sanitize_app_id(app_id: str) -> str:
    """Return the app id as pynenc-redis spells it in its keys (``sanitize_for_redis``)."""
    for char, spelled in (("[", "__OPEN_BRACKET__"), ("]", "__CLOSE_BRACKET__"), ("*", "__ASTERISK__")):
        app_id = app_id.replace(char, spelled)
    return app_id


def source_prefix(app_id: str) -> str:
    """Return the prefix of every state-backend key pynenc-redis writes for ``app_id``.

    :raises RedisImportError: For ids pynenc-redis itself refuses (empty, or containing ``:``).
    """
    sanitized = sanitize_app_id(app_id)
    if not sanitized:
        raise RedisImportError("the app id cannot be empty")
    if ":" in sanitized:
        raise RedisImportError(f"app id {app_id!r} contains ':', which pynenc-redis refuses; it has no data")
    return f"{SOURCE_ROOT}:{sanitized}:state_backend:"


def source_app_info_key(app_id: str) -> str:
    """Return pynenc-redis's app-info key (outside the app prefix, the id unsanitised)."""
    return f"{SOURCE_ROOT}:{SOURCE_ROOT}:apps_info:{app_id}"


def glob_escape(text: str) -> str:
    """Escape ``text`` for a ``SCAN MATCH`` pattern so it matches only itself.

    pynenc-redis scans with unescaped ids, so an app ``a?c`` also reads ``abc``'s keys.
    """
    return "".join("\\" + char if char in "\\*?[]^" else char for char in text)


@dataclass(frozen=True)
class _Item:
    """One source key, classified."""

    key: str
    kind: str
    ids: tuple[str, ...]
    """The ids the key name carries (invocation, runner, workflow[, data key])."""


def _classify(rest: str, key_type: str, workflows: set[str]) -> tuple[str, tuple[str, ...]] | None:
    """Return ``(kind, ids)`` for the key ``<prefix><rest>`` of type ``key_type``.

    Returns ``("derived", ())`` for derived keys and None for keys of no known shape. Ids may
    contain ``:``; each shape has a fixed head (and tail), so the id is whatever lies between.
    """
    if key_type == "zset" and rest in _DERIVED_KEYS:
        return "derived", ()
    if key_type == "set":
        if rest in _DERIVED_KEYS or rest.startswith(_DERIVED_PREFIXES):
            return "derived", ()
        head, tail = "workflow:", ":sub_invocations"
        if rest.startswith(head) and rest.endswith(tail) and len(rest) > len(head) + len(tail):
            return WORKFLOW_SUB_INVOCATIONS, (rest[len(head) : -len(tail)],)
        return None
    if key_type == "list":
        if rest.startswith("history:"):
            return HISTORY, (rest[len("history:") :],)
        return None
    if key_type != "string":
        return None
    for head, kind in (
        ("invocation:", INVOCATIONS),
        ("result:", RESULTS),
        ("exception:", EXCEPTIONS),
        ("runner_context:", RUNNER_CONTEXTS),
    ):
        if rest.startswith(head):
            return kind, (rest[len(head) :],)
    if rest.startswith("workflow:run:"):
        # ``workflow:run:<w>`` and the data key ``workflow:<w'>:data:<k>`` of a workflow named
        # ``run`` can look alike; the value tells them apart (see _decode_run).
        return WORKFLOW_RUNS, (rest[len("workflow:run:") :],)
    if rest.startswith("workflow:"):
        data = _split_data_key(rest[len("workflow:") :], workflows)
        if data is not None:
            return WORKFLOW_DATA_VALUES, data
    return None


def _split_data_key(rest: str, workflows: set[str]) -> tuple[str, str] | None:
    """Split ``<workflow>:data:<key>``; when ``:data:`` occurs more than once, prefer the split
    whose workflow is known (has a run or sub-invocations), else the first."""
    marker = ":data:"
    splits = []
    start = rest.find(marker)
    while start > 0:
        splits.append((rest[:start], rest[start + len(marker) :]))
        start = rest.find(marker, start + 1)
    if not splits:
        return None
    for workflow_id, data_key in splits:
        if workflow_id in workflows:
            return workflow_id, data_key
    return splits[0]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _known_workflows(keys: Sequence[str], prefix: str) -> set[str]:
    """Workflow ids named by run and sub-invocation keys (to split ambiguous data keys)."""
    known = set()
    for key in keys:
        rest = key[len(prefix) :]
        if rest.startswith("workflow:run:"):
            known.add(rest[len("workflow:run:") :])
        elif rest.startswith("workflow:") and rest.endswith(":sub_invocations"):
            known.add(rest[len("workflow:") : -len(":sub_invocations")])
    return known


# -- converting source values ----------------------------------------------------------------


def history_entry_id(position: int, raw_entry: str) -> str:
    """Return the deterministic id of the ``position``-th entry of a source history list.

    The position keeps identical entries apart; the hash makes a re-import of a changed
    list (never the case for pynenc-redis, which only appends) write a new key, not
    overwrite an entry with a different one.
    """
    digest = hashlib.sha256(raw_entry.encode()).hexdigest()[:24]
    return f"redis-{position:06d}-{digest}"


def _invocation(raw: str) -> tuple[InvocationDTO, CallDTO]:
    """Rebuild the DTOs from pynenc-redis's invocation JSON (as its ``_get_invocation`` does,
    except that the call id is built from ``arguments_id``, which may contain ``:``)."""
    data = orjson.loads(raw)
    task = TaskId.from_key(data["task_id_key"])
    call_id = CallId(task_id=task, args_id=data["arguments_id"])
    workflow = _workflow_identity(data)
    inv = InvocationDTO(
        invocation_id=InvocationId(data["invocation_id"]),
        call_id=call_id,
        workflow=workflow,
        parent_invocation_id=InvocationId(data["parent_invocation_id"])
        if data.get("parent_invocation_id")
        else None,
        parent_event_id=data.get("parent_event_id") or None,
    )
    return inv, CallDTO(call_id=call_id, serialized_arguments=dict(data.get("serialized_arguments") or {}))


def _workflow_identity(data: dict[str, Any]) -> WorkflowIdentity | None:
    """pynenc-redis's ``_workflow_identity_from_json``: no id or type means no workflow."""
    if not data.get("workflow_id") or not data.get("workflow_type_key"):
        return None
    return WorkflowIdentity(
        workflow_id=InvocationId(data["workflow_id"]),
        workflow_type=TaskId.from_key(data["workflow_type_key"]),
        parent_workflow_id=InvocationId(data["parent_workflow_id"])
        if data.get("parent_workflow_id")
        else None,
    )


def _decode_run(raw: str, workflow_id: str) -> WorkflowIdentity | None:
    """Return the run stored under ``workflow:run:<workflow_id>``, or None if the value is not
    a run of that workflow (then the key is a data value of a workflow named ``run``)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("workflow_id") != workflow_id:
        return None
    return _workflow_identity(data)


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

        return _Target(
            namespace,
            schemas,
            namespace.for_app(target_app_id or app_id),
            lambda: connect(conf, schemas, recheck=True),
        )
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
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    prefix = source_prefix(app_id)
    destination = _target(target, app_id, target_app_id)
    report = ImportReport(app_id, destination.keys.app_id, dry_run)
    # One full SCAN first: SCAN may return a key twice, and the total drives the progress bar.
    keys = sorted(
        {_text(key) for key in source_client.scan_iter(match=glob_escape(prefix) + "*", count=1000)}
    )
    workflows = _known_workflows(keys, prefix)
    report.keys_scanned = total = len(keys)
    done = 0
    for start in range(0, len(keys), batch_size):
        batch = keys[start : start + batch_size]
        _import_batch(source_client, destination, prefix, batch, workflows, report)
        done += len(batch)
        if progress is not None:
            progress(done, total)
    _import_app_info(source_client, destination, app_id, report)
    if progress is not None:
        progress(total, total)
    return report


def _import_app_info(source: redis.Redis, target: _Target, app_id: str, report: ImportReport) -> None:
    from pynenc.app import AppInfo

    key = source_app_info_key(app_id)
    raw = source.get(key)
    if raw is None:
        return
    try:
        info = AppInfo.from_json(_text(raw))
        if info.app_id != target.keys.app_id:
            info = dataclasses.replace(info, app_id=target.keys.app_id)
        document = docs.validated(target.schemas.app_infos, docs.app_info_document(info))
    except (ValueError, KeyError, TypeError) as exc:
        report.errors.append((key, f"app info: {exc}"))
        return
    report.found[APP_INFO] += 1
    if not report.dry_run:
        run(target.client, "JSON.SET", target.keys.app_info(), "$", docs.dumps(document))
        report.written[APP_INFO] += 1


def _read(source: redis.Redis, batch: list[str]) -> Iterator[tuple[str, str, Any]]:
    """Yield ``(key, type, value)`` for the batch: one pipelined ``TYPE`` round trip, then one
    for the values. Keys that vanished since the scan are skipped."""
    pipe = source.pipeline(transaction=False)
    for key in batch:
        pipe.type(key)
    types = [_text(t) for t in pipe.execute()]
    readers = {"string": pipe.get, "list": lambda k: pipe.lrange(k, 0, -1), "set": pipe.smembers}
    present = [(key, key_type) for key, key_type in zip(batch, types, strict=True) if key_type in readers]
    for key, key_type in present:
        readers[key_type](key)
    values = pipe.execute()
    for (key, key_type), value in zip(present, values, strict=True):
        if value is None:
            continue  # deleted between TYPE and GET
        if key_type == "string":
            yield key, key_type, _text(value)
        elif key_type == "list":
            yield key, key_type, [_text(v) for v in value]
        else:
            yield key, key_type, sorted(_text(v) for v in value)
    # other types (a zset, a hash...) are classified from the type alone
    for key, key_type in zip(batch, types, strict=True):
        if key_type not in readers and key_type != "none":
            yield key, key_type, None


@dataclass
class _Writes:
    """The target commands of one batch, and what they count as."""

    commands: list[tuple[str, ...]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    histories: list[tuple[str, list[tuple[str, docs.Document]]]] = field(default_factory=list)
    """Per invocation: its id and its ``(entry key, document)`` list, in source order."""

    def set(self, kind: str, key: str, document: docs.Document) -> None:
        self.commands.append(("JSON.SET", key, "$", docs.dumps(document)))
        self.counts[kind] += 1


def _import_batch(
    source: redis.Redis,
    target: _Target,
    prefix: str,
    batch: list[str],
    workflows: set[str],
    report: ImportReport,
) -> None:
    writes = _Writes()
    for key, key_type, value in _read(source, batch):
        classified = _classify(key[len(prefix) :], key_type, workflows)
        if classified is not None and classified[0] == WORKFLOW_RUNS:
            run_identity = _decode_run(value, classified[1][0])
            if run_identity is None:
                # not a run of that workflow: a data value of the workflow called "run"
                data = _split_data_key(key[len(prefix) + len("workflow:") :], workflows)
                classified = (WORKFLOW_DATA_VALUES, data) if data is not None else None
        if classified is None:
            report.unrecognized.append(key)
            continue
        kind, ids = classified
        if kind == "derived":
            report.derived_keys += 1
            continue
        try:
            _convert(kind, ids, value, target, writes, report)
        except (ValueError, KeyError, TypeError, AttributeError, RedisStackError) as exc:
            # JSONDecodeError and InvalidDocumentError are ValueErrors
            report.errors.append((key, f"{kind}: {type(exc).__name__}: {exc}"))
    if not report.dry_run:
        _write(target, writes, report)


def _convert(
    kind: str,
    ids: tuple[str, ...],
    value: Any,
    target: _Target,
    writes: _Writes,
    report: ImportReport,
) -> None:
    """Turn one source value into target documents (validated), counted in ``report.found``."""
    app_id = target.keys.app_id
    schemas = target.schemas
    keys = target.keys
    if kind == INVOCATIONS:
        inv, call = _invocation(value)
        document = docs.validated(schemas.invocations, docs.invocation_document(app_id, inv, call))
        key = keys.invocation(inv.invocation_id)
        # As the backend's upsert: an empty document first (a MERGE creating the key would
        # store its nulls, which exists() counts as values); MERGE keeps the status the history
        # writes own (they may come in an earlier batch); the arguments are replaced whole.
        writes.commands.append(("JSON.SET", key, "$", docs.EMPTY_INVOCATION, "NX"))
        writes.commands.append(("JSON.MERGE", key, "$", docs.dumps(document)))
        writes.commands.append(
            ("JSON.SET", key, "$.serialized_arguments", docs.dumps(dict(call.serialized_arguments)))
        )
        writes.counts[INVOCATIONS] += 1
    elif kind == HISTORY:
        invocation_id = ids[0]
        entries = []
        for position, raw_entry in enumerate(value):
            history = InvocationHistory.from_json(raw_entry)
            # The list's key says whose history this is (pynenc-redis's batch write pushes one
            # entry JSON to every invocation's list), as get_history(<id>) reads it.
            history.invocation_id = invocation_id
            document = docs.validated(schemas.history, docs.history_document(app_id, history))
            entries.append((keys.history(invocation_id, history_entry_id(position, raw_entry)), document))
        if entries:  # Redis deletes empty lists, but a key may empty between TYPE and LRANGE
            writes.histories.append((invocation_id, entries))
        report.found[HISTORY] += len(entries)
        return
    elif kind in (RESULTS, EXCEPTIONS):
        owner = ids[0]
        payload_kind, key = (
            (RESULT, keys.result(owner)) if kind == RESULTS else (EXCEPTION, keys.exception(owner))
        )
        document = docs.validated(schemas.payloads, docs.payload_document(app_id, payload_kind, owner, value))
        writes.set(kind, key, document)
    elif kind == RUNNER_CONTEXTS:
        context = RunnerContext.from_json(value)
        document = docs.validated(schemas.runner_contexts, docs.runner_context_document(app_id, context))
        writes.set(kind, keys.runner_context(context.runner_id), document)
    elif kind == WORKFLOW_RUNS:
        identity = _decode_run(value, ids[0])
        if identity is None:
            raise ValueError("workflow run without a workflow type")
        document = docs.validated(schemas.workflow_runs, docs.workflow_run_document(app_id, identity))
        writes.set(kind, keys.workflow_run(identity.workflow_id), document)
    elif kind == WORKFLOW_SUB_INVOCATIONS:
        workflow_id = ids[0]
        links = [
            (
                keys.workflow_sub_invocation(workflow_id, sub),
                docs.validated(
                    schemas.workflow_sub_invocations,
                    docs.workflow_sub_invocation_document(app_id, workflow_id, sub),
                ),
            )
            for sub in value
        ]
        for key, document in links:
            writes.set(kind, key, document)
    elif kind == WORKFLOW_DATA_VALUES:
        workflow_id, data_key = ids
        document = docs.validated(
            schemas.payloads,
            docs.payload_document(app_id, WORKFLOW_DATA, workflow_id, value, name=data_key),
        )
        writes.set(kind, keys.workflow_data(workflow_id, data_key), document)
    report.found[kind] += 1 if kind != WORKFLOW_SUB_INVOCATIONS else len(value)


def _write(target: _Target, writes: _Writes, report: ImportReport) -> None:
    """Send one batch: existence of the history entries (one round trip), then every document
    and the history script (one round trip, two the first time the script meets the server)."""
    client = target.client
    histories = writes.histories
    present: list[int] = []
    if histories:
        pipe = client.pipeline(transaction=False)
        for _invocation_id, entries in histories:
            run(pipe, "EXISTS", *(key for key, _doc in entries))
        present = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for command in writes.commands:
        run(pipe, *command)
    batch = HistoryBatch(target.namespace.history_seq())
    for (invocation_id, entries), existing in zip(histories, present, strict=True):
        if existing == len(entries):
            report.unchanged += len(entries)
            continue
        # Some entry is missing (first import, or one interrupted): write the whole list again
        # so its entries get consecutive seq values, i.e. keep their source order on equal ts.
        for key, document in entries:
            batch.add(
                target.keys.invocation(invocation_id), key, target.keys.history_list(invocation_id), document
            )
        report.written[HISTORY] += len(entries)
    if len(batch):
        batch.run_in(pipe)
    elif writes.commands:
        pipe.execute()
    report.written.update(writes.counts)
