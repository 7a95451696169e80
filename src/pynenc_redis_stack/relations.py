"""Relation sets: the ids of an app's invocations by parent, parent event, workflow run and
workflow type, for pynenc's hot lookups (``get_child_invocations``,
``get_invocations_by_parent_event``, ``get_invocation_ids_by_workflow``).

Why sets beside the index: pynenc and its monitor ask these questions all the time, about a
few ids each, and a ``SMEMBERS`` costs the server about 1 µs where the cheapest
``FT.SEARCH`` costs about 30 µs (docs/performance.md). The sets are never maintained by hand:
the script that writes an invocation (:data:`~pynenc_redis_stack.scripts.UPSERT_INVOCATIONS`)
moves its id between sets in the same atomic step, prune's delete script takes it out, and
purge drops the app's sets. The invocations index keeps every field, so operators still ask
the same questions with ``FT.SEARCH`` from ``redis-cli``.

A store written before the sets existed (versions before 0.3) has invocations in no set: until
:func:`backfill` (run by ``pynenc-redis-stack index migrate``) has put every invocation of an
app in its sets and written the app's completeness key, the backend answers through the index.
"""

from __future__ import annotations

import orjson
import redis

from pynenc_redis_stack import query
from pynenc_redis_stack.backfill import DerivedStructure, Rows
from pynenc_redis_stack.keys import AppKeys
from pynenc_redis_stack.scripts import BACKFILL_RELATIONS, Script

_backfill = Script(BACKFILL_RELATIONS, repeatable=True)


def _add(client: redis.Redis, keys: AppKeys, rows: Rows) -> int:
    """Put a page of an app's invocations in the sets their documents name now."""
    ids = [str(row["invocation_id"]) for row in rows]
    prefixes = orjson.dumps(keys.relation_prefixes()).decode()
    invocation_keys = [keys.invocation(invocation_id) for invocation_id in ids]
    return int(_backfill.run_in(client.pipeline(transaction=False), invocation_keys, [prefixes, *ids])[-1])


RELATION_SETS = DerivedStructure(
    spec_of=lambda schemas: schemas.invocations,
    complete_key_of=AppKeys.relation_sets_complete,
    stale="has invocations stored before relation sets existed (pynenc-redis-stack < 0.3): "
    "children, parent-event and workflow lookups go through the index",
    steps=query.load_fields("invocation_id"),
    add=_add,
)
"""The relation sets: complete for an app (``RELATION_SETS.complete``), filled by
``index migrate`` (``RELATION_SETS.backfill``)."""
