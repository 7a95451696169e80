"""Trigger definitions and trigger conditions: one RedisJSON document each.

A definition's document holds the whole ``TriggerDefinitionDTO``; a condition's holds
pynenc's JSON of the condition and the keys of the tasks it is sourced from. The trigger
(:mod:`.trigger`) and ``index migrate`` (:mod:`.migration`) build and read them here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import orjson
import redis
from pynenc.identifiers.task_id import TaskId
from pynenc.models.trigger_definition_dto import TriggerDefinitionDTO
from pynenc.trigger.conditions import CompositeLogic

from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.codec import Document, dumps, validated
from pynenc_redis_stack.core.errors import InvalidDocumentError
from pynenc_redis_stack.trigger.scripts import add_source_task_script

if TYPE_CHECKING:
    from pynenc_redis_stack.core.keys import AppKeys
    from pynenc_redis_stack.core.schema import TriggerSchemas


def _tag_values(what: str, values: Iterable[str]) -> list[str]:
    """Return ``values`` as a list, refusing NUL (RediSearch cuts a tag there, so a lookup
    of the whole value would find another's)."""
    listed = list(values)
    for value in listed:
        if "\x00" in value:
            raise InvalidDocumentError(f"{what} {value!r} holds NUL, which RediSearch cannot index")
    return listed


def definition_document(schemas: TriggerSchemas, app_id: str, trigger: TriggerDefinitionDTO) -> Document:
    """Return the document of ``trigger``."""
    return validated(
        schemas.definitions,
        {
            "app_id": app_id,
            "trigger_id": trigger.trigger_id,
            "task_id_key": trigger.task_id.key,
            "task_module": trigger.task_id.module,
            "task_func": trigger.task_id.func_name,
            "condition_ids": _tag_values("condition id", trigger.condition_ids),
            "logic": trigger.logic.value,
            "argument_provider_json": trigger.argument_provider_json,
        },
    )


def definition_of(document: Document) -> TriggerDefinitionDTO:
    """Return the trigger definition a document holds."""
    return TriggerDefinitionDTO(
        trigger_id=document["trigger_id"],
        task_id=TaskId(document["task_module"], document["task_func"]),
        condition_ids=list(document["condition_ids"]),
        logic=CompositeLogic(document["logic"]),
        argument_provider_json=document["argument_provider_json"],
    )


def condition_document(app_id: str, condition_id: str, condition_json: str) -> Document:
    """Return the fields of a condition's document that registering the condition sets; its
    source tasks are added one by one (:func:`add_source_task`) and kept."""
    return {"app_id": app_id, "condition_id": condition_id, "condition": condition_json}


def store_condition(client: redis.Redis, keys: AppKeys, condition_id: str, condition_json: str) -> None:
    """Store a condition (one ``JSON.MERGE``: it creates the document, or replaces the
    condition of one whose source tasks were recorded first and keeps them)."""
    document = condition_document(keys.app_id, condition_id, condition_json)
    run(client, "JSON.MERGE", keys.trigger_condition(condition_id), "$", dumps(document))


def add_source_task(client: redis.Redis, keys: AppKeys, condition_id: str, task_id_key: str) -> None:
    """Record that ``condition_id`` is sourced from the task ``task_id_key`` (one script:
    atomic, and a second call changes nothing)."""
    (task_key,) = _tag_values("task id key", [task_id_key])
    stub = {"app_id": keys.app_id, "condition_id": condition_id, "source_task_keys": [task_key]}
    add_source_task_script.run_in(
        client.pipeline(transaction=False),
        [keys.trigger_condition(condition_id)],
        [dumps(stub), orjson.dumps(task_key).decode()],
    )


def condition_text(document: Document | None) -> str | None:
    """Return pynenc's JSON of the condition a document holds; None for no document, or one
    holding only source tasks (recorded before the condition itself)."""
    if document is None:
        return None
    text = document.get("condition")
    return text if isinstance(text, str) else None
