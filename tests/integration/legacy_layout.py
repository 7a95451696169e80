"""Rewrite a store into the previous layout, key for key as its write scripts left it.

The previous layout (before every lookup went through the indexes) kept beside the documents:
a call-text string per invocation holding the fields its document lacked, a ``history_list``
mark in the document, a history list per invocation, a history timeline per app, relation sets
by parent, parent event, workflow and workflow type, and two completeness keys per app. Key
names come from :mod:`pynenc_redis_stack.admin.legacy`, the one place naming them.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import redis

from pynenc_redis_stack.admin import legacy
from pynenc_redis_stack.core.keys import DocumentKind, encode_segment
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
