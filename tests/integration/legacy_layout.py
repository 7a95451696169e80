"""Rewrite a store into the previous layout, key for key as its write scripts left it.

The previous layout (before every lookup went through the indexes) kept beside the documents:
a call-text string per invocation holding the fields its document lacked, a ``history_list``
mark in the document, a history list per invocation, a history timeline per app, relation sets
by parent, parent event, workflow and workflow type, and two completeness keys per app. Key
names come from :mod:`pynenc_redis_stack.admin.legacy`, the one place naming them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
import redis

from pynenc_redis_stack.admin import legacy, tagged_layout
from pynenc_redis_stack.admin.tagged_layout import old_key
from pynenc_redis_stack.core.keys import DocumentKind, Namespace, decode_segment, encode_segment
from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend

CALL_FIELDS = (
    "task_module",
    "task_func",
    "arguments_id",
    "serialized_arguments",
    "parent_invocation_id",
    "parent_event_id",
    "workflow_id",
    "workflow_type_module",
    "workflow_type_func",
    "parent_workflow_id",
)
"""The fields of the previous call text, in its order."""
ONLY_IN_CALL_TEXT = (
    "task_module",
    "task_func",
    "arguments_id",
    "serialized_arguments",
    "workflow_type_module",
    "workflow_type_func",
)
"""The fields the previous invocation document did not hold."""
LISTED = ("ts", "status", "runner_context_id")
NOT_LISTED = ("app_id", "invocation_id", "seq", *LISTED)


def _documents(client: redis.Redis, backend: RedisStackStateBackend, kind: DocumentKind) -> dict[str, Any]:
    prefix = f"{backend.namespace.namespace}:{kind}:{encode_segment(backend.app.app_id)}:"
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
    return {key: orjson.loads(client.execute_command("JSON.GET", key)) for key in client.scan_iter(pattern)}


def _listed(entry: dict[str, Any]) -> str:
    values: list[Any] = [entry["seq"], *(entry[name] for name in LISTED)]
    rest = {name: value for name, value in entry.items() if name not in NOT_LISTED}
    if rest:
        values.append(rest)
    return orjson.dumps(values).decode()


def to_previous_layout(client: redis.Redis, backend: RedisStackStateBackend) -> list[str]:
    """Rewrite ``backend``'s app into the previous layout; return the keys written beside the
    documents (the ones ``index migrate`` must remove)."""
    namespace, app_id = backend.namespace, backend.app.app_id
    to_untagged_layout(client, namespace, app_id)  # the previous layout's keys had no hash tags either
    written: list[str] = []
    pipe = client.pipeline(transaction=False)
    for key, document in _documents(client, backend, DocumentKind.INVOCATION).items():
        invocation_id = document["invocation_id"]
        if "task_module" in document:
            call = {name: document[name] for name in CALL_FIELDS if document.get(name) is not None}
            call_key = legacy.legacy_key(namespace, legacy.INVOCATION_CALL, app_id, invocation_id)
            pipe.set(call_key, orjson.dumps(call).decode())
            written.append(call_key)
            for name in ONLY_IN_CALL_TEXT:
                pipe.execute_command("JSON.DEL", key, f"$.{name}")
        pipe.execute_command("JSON.SET", key, "$.history_list", "true")
        for field, kind in legacy.RELATION_SETS.items():
            if document.get(field):
                set_key = legacy.legacy_key(namespace, kind, app_id, document[field])
                pipe.sadd(set_key, invocation_id)
                written.append(set_key)
    timeline = legacy.legacy_key(namespace, legacy.HISTORY_TIMELINE, app_id)
    for entry in sorted(_documents(client, backend, DocumentKind.HISTORY).values(), key=lambda e: e["seq"]):
        listed = _listed(entry)
        list_key = legacy.legacy_key(namespace, legacy.HISTORY_LIST, app_id, entry["invocation_id"])
        pipe.rpush(list_key, listed)
        member = (
            f"{entry['seq']:012x}"
            + orjson.dumps([entry["invocation_id"], *orjson.loads(listed)[1:]]).decode()
        )
        pipe.zadd(timeline, {member: entry["ts"]})
        written += [list_key, timeline]
    for kind in (legacy.RELATION_SETS_COMPLETE, legacy.TIMELINE_COMPLETE):
        complete = legacy.legacy_key(namespace, kind, app_id)
        pipe.set(complete, "1")
        written.append(complete)
    pipe.execute()
    return sorted(set(written))


def _untagged_history_key(namespace: Namespace, document: dict[str, Any], key: str) -> str:
    """The backend's entries had ``<ns>:history:<app>:<entry>``, imported ones the invocation
    too (their entry ids start with ``redis-``, :func:`history_entry_id`)."""
    entry_id = decode_segment(key.rsplit(":", 1)[1])
    invocation = (document["invocation_id"],) if entry_id.startswith("redis-") else ()
    return old_key(namespace, DocumentKind.HISTORY, document["app_id"], *invocation, entry_id)


UNTAGGED: dict[str, Callable[[Namespace, dict[str, Any], str], str]] = {
    DocumentKind.INVOCATION: lambda n, d, _k: old_key(n, "invocation", d["app_id"], d["invocation_id"]),
    DocumentKind.HISTORY: _untagged_history_key,
    DocumentKind.RESULT: lambda n, d, _k: old_key(n, "result", d["app_id"], d["owner_id"]),
    DocumentKind.EXCEPTION: lambda n, d, _k: old_key(n, "exception", d["app_id"], d["owner_id"]),
    DocumentKind.WORKFLOW_DATA: lambda n, d, _k: old_key(
        n, "workflow-data", d["app_id"], d["owner_id"], d["name"]
    ),
    DocumentKind.RUNNER_CONTEXT: lambda n, d, _k: old_key(n, "runner-context", d["app_id"], d["runner_id"]),
    DocumentKind.WORKFLOW_RUN: lambda n, d, _k: old_key(n, "workflow-run", d["app_id"], d["workflow_id"]),
    DocumentKind.WORKFLOW_SUB_INVOCATION: lambda n, d, _k: old_key(
        n, "workflow-sub-invocation", d["app_id"], d["workflow_id"], d["sub_invocation_id"]
    ),
    "orchestrator-invocation": lambda n, d, _k: old_key(
        n, "orchestrator-invocation", d["app_id"], d["invocation_id"]
    ),
    "orchestrator-wait": lambda n, d, _k: old_key(
        n, "orchestrator-wait", d["app_id"], d["waiter_id"], d["waited_id"]
    ),
    "runner-heartbeat": lambda n, d, _k: old_key(n, "runner-heartbeat", d["app_id"], d["runner_id"]),
    "atomic-service-execution": lambda n, d, _k: old_key(
        n, "atomic-service-execution", d["app_id"], d["run_id"]
    ),
    "trigger-event": lambda n, d, _k: old_key(n, "trigger-event", d["app_id"], d["event_id"]),
    "trigger-run": lambda n, d, _k: old_key(n, "trigger-run", d["app_id"], d["trigger_run_id"]),
    "trigger-definition": lambda n, d, _k: old_key(n, "trigger-definition", d["app_id"], d["trigger_id"]),
    "trigger-condition": lambda n, d, _k: old_key(n, "trigger-condition", d["app_id"], d["condition_id"]),
}
"""The untagged key of each kind of document, from its fields (and its tagged key)."""


def to_untagged_layout(client: redis.Redis, namespace: Namespace, app_id: str) -> dict[str, str]:
    """Rewrite ``app_id`` into the untagged layout, key for key as its writes left it:
    documents and per-app structures under ``<ns>:<entity>:<app>:<id>...``, the running
    holders (one hash per app, field ``<task>:<slot>``) and atomic-service lease naming untagged
    documents, and the two global counters.
    Return each untagged key moved, by its tagged key."""
    keys = namespace.for_app(app_id)
    moved: dict[str, str] = {}
    escaped_ns = re.sub(r"([*?\[\]\\])", r"\\\1", namespace.namespace)
    for entity, untagged in UNTAGGED.items():
        for key in list(client.scan_iter(f"{escaped_ns}:{entity}:*{{*")):
            raw = client.execute_command("JSON.GET", key)
            document = orjson.loads(raw)
            if document["app_id"] != app_id:
                continue
            old = untagged(namespace, document, key)
            if old != key:
                client.rename(key, old)
                moved[key] = old
    for entity, per_app_key in tagged_layout.PER_APP.items():
        key = per_app_key(keys)
        if client.exists(key):
            old = old_key(namespace, entity, app_id)
            client.rename(key, old)
            moved[key] = old
    key = keys.atomic_service_lease()
    if client.exists(key):
        holder = str(client.get(key))
        document = orjson.loads(client.execute_command("JSON.GET", moved.get(holder, holder)))
        old = old_key(namespace, tagged_layout.LEASE, app_id)
        client.set(old, old_key(namespace, "atomic-service-execution", app_id, document["run_id"]))
        client.unlink(key)
        moved[key] = old
    holders = old_key(namespace, tagged_layout.HOLDERS, app_id)
    for lease in list(client.scan_iter(match=keys.running_holder_pattern())):
        held = str(client.hget(lease, "invocation"))
        slot = decode_segment(lease[lease.index("{") + 1 : lease.rindex("}")])
        client.hset(holders, slot, moved.get(held, held))
        client.unlink(lease)
        moved[lease] = holders
    for name in tagged_layout.COUNTERS:
        client.set(f"{namespace.namespace}:{name}", "1000")
    return moved
