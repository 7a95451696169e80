"""``index migrate``'s conversion of the trigger's earlier layout into documents.

Before trigger definitions and conditions were documents, each app kept them in two hashes,
``<ns>:trigger-conditions:<app>`` (condition id -> pynenc's JSON) and
``<ns>:trigger-definitions:<app>`` (trigger id -> JSON of the definition), with lookup sets
beside them: ``trigger-condition-triggers:<app>:<condition>`` (trigger ids),
``trigger-source-task:<app>:<task>`` (condition ids) and ``trigger-sets:<app>`` (the names
of those sets). :func:`migrate_trigger_layout` writes one document per hash entry, folds each
source-task set into its conditions' documents, then deletes the old keys.

Every write is idempotent, and an app's hashes go only once every entry is a document (a
source-task set goes once it is folded), so a second run, or one after an interrupted run,
finishes the work and changes nothing else. The old keys are found with ``SCAN``: this runs
once per store, under ``index migrate``'s lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson
import redis
from pynenc.identifiers.task_id import TaskId
from pynenc.models.trigger_definition_dto import TriggerDefinitionDTO
from pynenc.trigger.conditions import CompositeLogic

from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.codec import dumps
from pynenc_redis_stack.core.keys import Namespace, decode_segment, glob_escape
from pynenc_redis_stack.core.schema import TriggerSchemas, load_schema_set
from pynenc_redis_stack.core.store import unlink
from pynenc_redis_stack.trigger.registry import add_source_task, definition_document, store_condition

logger = logging.getLogger(__name__)

LEGACY_CONDITIONS = "trigger-conditions"
LEGACY_DEFINITIONS = "trigger-definitions"
LEGACY_CONDITION_TRIGGERS = "trigger-condition-triggers"
LEGACY_SOURCE_TASK = "trigger-source-task"
LEGACY_SETS = "trigger-sets"
"""Entity segments of the earlier layout's keys (``<ns>:<entity>:<app>[:<id>]``)."""

SCAN_COUNT = 1000
"""Keys (and hash or set entries) asked of one ``SCAN`` / ``HSCAN`` / ``SSCAN`` step."""


@dataclass
class LegacyKeys:
    """One app's keys of the earlier layout (those that exist)."""

    conditions: str | None = None
    definitions: str | None = None
    source_sets: list[str] = field(default_factory=list)
    condition_trigger_sets: list[str] = field(default_factory=list)
    set_names: str | None = None

    def all(self) -> list[str]:
        """Every key, in the order they are deleted."""
        singles = [self.conditions, self.definitions, self.set_names]
        return [*self.source_sets, *(key for key in singles if key), *self.condition_trigger_sets]


@dataclass
class AppConversion:
    """What converting one app did (a dry run: would do).

    :ivar conditions: Condition documents written.
    :ivar definitions: Trigger definition documents written.
    :ivar source_links: (task, condition) pairs folded into condition documents.
    :ivar deleted: Keys of the earlier layout deleted.
    """

    conditions: int = 0
    definitions: int = 0
    source_links: int = 0
    deleted: list[str] = field(default_factory=list)


@dataclass
class TriggerLayoutReport:
    """What :func:`migrate_trigger_layout` did (a dry run: would do), per app."""

    dry_run: bool = False
    per_app: dict[str, AppConversion] = field(default_factory=dict)


def find_legacy_keys(client: redis.Redis, namespace: Namespace) -> dict[str, LegacyKeys]:
    """Return every app's keys of the earlier layout, found by ``SCAN``."""
    found: dict[str, LegacyKeys] = {}

    def scan(entity: str, key_type: str) -> Iterator[tuple[LegacyKeys, str, list[str]]]:
        pattern = f"{glob_escape(namespace.namespace)}:{entity}:*"
        for key in client.scan_iter(match=pattern, count=SCAN_COUNT, _type=key_type):
            segments = str(key).split(":")[2:]  # the namespace holds no ':' (Namespace checks)
            legacy = found.setdefault(decode_segment(segments[0]), LegacyKeys())
            yield legacy, str(key), segments[1:]

    for legacy, key, ids in scan(LEGACY_CONDITIONS, "hash"):
        if not ids:
            legacy.conditions = key
    for legacy, key, ids in scan(LEGACY_DEFINITIONS, "hash"):
        if not ids:
            legacy.definitions = key
    for legacy, key, ids in scan(LEGACY_SETS, "set"):
        if not ids:
            legacy.set_names = key
    for legacy, key, ids in scan(LEGACY_SOURCE_TASK, "set"):
        if len(ids) == 1:
            legacy.source_sets.append(key)
    for legacy, key, ids in scan(LEGACY_CONDITION_TRIGGERS, "set"):
        if len(ids) == 1:
            legacy.condition_trigger_sets.append(key)
    return {app_id: found[app_id] for app_id in sorted(found)}


def legacy_definition(trigger_id: str, text: str) -> TriggerDefinitionDTO:
    """Read one entry of the earlier definitions hash, as the earlier trigger read it."""
    data = orjson.loads(text)
    return TriggerDefinitionDTO(
        trigger_id=trigger_id,
        task_id=TaskId.from_key(data["task_id_key"]),
        condition_ids=list(data["condition_ids"]),
        logic=CompositeLogic(data["logic"]),
        argument_provider_json=data["argument_provider_json"],
    )


def migrate_trigger_layout(
    client: redis.Redis,
    namespace: Namespace,
    *,
    dry_run: bool = False,
    heartbeat: Callable[[], None] | None = None,
) -> TriggerLayoutReport:
    """Convert every app's trigger definitions and conditions of the earlier layout into
    documents, then delete the earlier keys (see the module docstring). A dry run counts what
    it would convert and lists the keys it would delete, and writes nothing.

    :param heartbeat: Called after every app and every few hundred entries (``index
        migrate`` keeps its lock alive).
    """
    report = TriggerLayoutReport(dry_run=dry_run)
    beat = heartbeat or (lambda: None)
    for app_id, legacy in find_legacy_keys(client, namespace).items():
        if dry_run:
            report.per_app[app_id] = _count(client, legacy)
        else:
            report.per_app[app_id] = _convert(client, namespace, app_id, legacy, beat)
        beat()
    return report


def _count(client: redis.Redis, legacy: LegacyKeys) -> AppConversion:
    def entries(key: str | None) -> int:
        return sum(1 for _entry in client.hscan_iter(key, count=SCAN_COUNT)) if key else 0

    return AppConversion(
        conditions=entries(legacy.conditions),
        definitions=entries(legacy.definitions),
        source_links=sum(
            1 for key in legacy.source_sets for _member in client.sscan_iter(key, count=SCAN_COUNT)
        ),
        deleted=legacy.all(),
    )


def _convert(
    client: redis.Redis, namespace: Namespace, app_id: str, legacy: LegacyKeys, beat: Callable[[], None]
) -> AppConversion:
    keys = namespace.for_app(app_id)
    schemas = load_schema_set(TriggerSchemas)
    done = AppConversion()
    if legacy.conditions:
        for condition_id, text in client.hscan_iter(legacy.conditions, count=SCAN_COUNT):
            store_condition(client, keys, condition_id, text)
            done.conditions += 1
            if done.conditions % SCAN_COUNT == 0:
                beat()
    for source_set in legacy.source_sets:
        task_id_key = decode_segment(source_set.split(":")[3])
        for condition_id in client.sscan_iter(source_set, count=SCAN_COUNT):
            add_source_task(client, keys, condition_id, task_id_key)
            done.source_links += 1
        run(client, "UNLINK", source_set)  # folded: a rerun has nothing left to fold from it
        done.deleted.append(source_set)
        beat()
    if legacy.definitions:
        for trigger_id, text in client.hscan_iter(legacy.definitions, count=SCAN_COUNT):
            document = definition_document(schemas, app_id, legacy_definition(trigger_id, text))
            run(client, "JSON.SET", keys.trigger_definition(trigger_id), "$", dumps(document))
            done.definitions += 1
            if done.definitions % SCAN_COUNT == 0:
                beat()
    rest = [key for key in legacy.all() if key not in legacy.source_sets]
    if rest:
        unlink(client, rest)  # every entry is a document now
        done.deleted.extend(rest)
    logger.info(
        "App %r: %d trigger conditions, %d trigger definitions and %d source-task links are now documents.",
        app_id,
        done.conditions,
        done.definitions,
        done.source_links,
    )
    return done
