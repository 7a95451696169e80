"""What pynenc-redis 0.3.0 stores for an app, and how the import reads it (never writes).

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

Each source key is classified as the :class:`DocumentKind` it becomes (with the ids its name
carries), as derived, or as unrecognized; its value is decoded into pynenc's objects the way
pynenc-redis itself reads it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import orjson
import redis
from pynenc.identifiers.call_id import CallId
from pynenc.identifiers.invocation_id import InvocationId
from pynenc.identifiers.task_id import TaskId
from pynenc.models.call_dto import CallDTO
from pynenc.models.invocation_dto import InvocationDTO
from pynenc.workflow import WorkflowIdentity

from pynenc_redis_stack.core.errors import RedisImportError
from pynenc_redis_stack.core.keys import DocumentKind, glob_escape

SOURCE_ROOT = "__pynenc__"
"""First segment of every pynenc-redis key (``PYNENC_KEY_PREFIX``)."""

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

DERIVED: Literal["derived"] = "derived"
"""What :func:`classify` returns for a key derived from the documents (not copied)."""

type Classified = tuple[DocumentKind, tuple[str, ...]]
"""The kind a source key becomes, and the ids its name carries (invocation, runner,
workflow[, data key])."""


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


def source_app_ids(source: redis.Redis) -> list[str]:
    """Return the apps pynenc-redis recorded on ``source`` (its app-info keys), sorted."""
    prefix = source_app_info_key("")
    return sorted(
        {text(key)[len(prefix) :] for key in source.scan_iter(match=glob_escape(prefix) + "*", count=1000)}
    )


def scan_keys(source: redis.Redis, prefix: str) -> list[str]:
    """Return every key under ``prefix``, sorted, each once (``SCAN`` may return a key twice)."""
    return sorted({text(key) for key in source.scan_iter(match=glob_escape(prefix) + "*", count=1000)})


def classify(
    rest: str, key_type: str, value: Any, workflows: set[str]
) -> Classified | Literal["derived"] | None:
    """Return what the key ``<prefix><rest>`` of type ``key_type`` holding ``value`` is.

    :data:`DERIVED` for derived keys, None for keys of no known shape. Ids may contain ``:``;
    each shape has a fixed head (and tail), so the id is whatever lies between.
    """
    if key_type == "zset" and rest in _DERIVED_KEYS:
        return DERIVED
    if key_type == "set":
        if rest in _DERIVED_KEYS or rest.startswith(_DERIVED_PREFIXES):
            return DERIVED
        head, tail = "workflow:", ":sub_invocations"
        if rest.startswith(head) and rest.endswith(tail) and len(rest) > len(head) + len(tail):
            return DocumentKind.WORKFLOW_SUB_INVOCATION, (rest[len(head) : -len(tail)],)
        return None
    if key_type == "list":
        if rest.startswith("history:"):
            return DocumentKind.HISTORY, (rest[len("history:") :],)
        return None
    if key_type != "string":
        return None
    for head, kind in (
        ("invocation:", DocumentKind.INVOCATION),
        ("result:", DocumentKind.RESULT),
        ("exception:", DocumentKind.EXCEPTION),
        ("runner_context:", DocumentKind.RUNNER_CONTEXT),
    ):
        if rest.startswith(head):
            return kind, (rest[len(head) :],)
    if rest.startswith("workflow:run:") and decode_run(value, rest[len("workflow:run:") :]) is not None:
        return DocumentKind.WORKFLOW_RUN, (rest[len("workflow:run:") :],)
    # ``workflow:run:<w>`` whose value is not a run of ``<w>`` is the data key
    # ``workflow:<w'>:data:<k>`` of a workflow named ``run``
    if rest.startswith("workflow:"):
        data = _split_data_key(rest[len("workflow:") :], workflows)
        if data is not None:
            return DocumentKind.WORKFLOW_DATA, data
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


def text(value: bytes | str) -> str:
    """Return a reply as text (the source client may or may not decode responses)."""
    return value.decode() if isinstance(value, bytes) else value


def known_workflows(keys: Sequence[str], prefix: str) -> set[str]:
    """Workflow ids named by run and sub-invocation keys (to split ambiguous data keys)."""
    known = set()
    for key in keys:
        rest = key[len(prefix) :]
        if rest.startswith("workflow:run:"):
            known.add(rest[len("workflow:run:") :])
        elif rest.startswith("workflow:") and rest.endswith(":sub_invocations"):
            known.add(rest[len("workflow:") : -len(":sub_invocations")])
    return known


def read_batch(source: redis.Redis, batch: list[str]) -> Iterator[tuple[str, str, Any]]:
    """Yield ``(key, type, value)`` for the batch: one pipelined ``TYPE`` round trip, then one
    for the values. Keys that vanished since the scan are skipped."""
    pipe = source.pipeline(transaction=False)
    for key in batch:
        pipe.type(key)
    types = [text(t) for t in pipe.execute()]
    readers = {"string": pipe.get, "list": lambda k: pipe.lrange(k, 0, -1), "set": pipe.smembers}
    present = [(key, key_type) for key, key_type in zip(batch, types, strict=True) if key_type in readers]
    for key, key_type in present:
        readers[key_type](key)
    values = pipe.execute()
    for (key, key_type), value in zip(present, values, strict=True):
        if value is None:
            continue  # deleted between TYPE and GET
        if key_type == "string":
            yield key, key_type, text(value)
        elif key_type == "list":
            yield key, key_type, [text(v) for v in value]
        else:
            yield key, key_type, sorted(text(v) for v in value)
    # other types (a zset, a hash...) are classified from the type alone
    for key, key_type in zip(batch, types, strict=True):
        if key_type not in readers and key_type != "none":
            yield key, key_type, None


# -- decoding source values ------------------------------------------------------------------


def history_entry_id(position: int, raw_entry: str) -> str:
    """Return the deterministic id of the ``position``-th entry of a source history list.

    The position keeps identical entries apart; the hash makes a re-import of a changed
    list (never the case for pynenc-redis, which only appends) write a new key, not
    overwrite an entry with a different one.
    """
    digest = hashlib.sha256(raw_entry.encode()).hexdigest()[:24]
    return f"redis-{position:06d}-{digest}"


def decode_invocation(raw: str) -> tuple[InvocationDTO, CallDTO]:
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


def decode_run(raw: str, workflow_id: str) -> WorkflowIdentity | None:
    """Return the run stored under ``workflow:run:<workflow_id>``, or None if the value is not
    a run of that workflow (then the key is a data value of a workflow named ``run``)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("workflow_id") != workflow_id:
        return None
    return _workflow_identity(data)
