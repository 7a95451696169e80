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

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson
import redis

from pynenc_redis_stack import query
from pynenc_redis_stack.client import run
from pynenc_redis_stack.executor import index_info
from pynenc_redis_stack.keys import AppKeys, Namespace
from pynenc_redis_stack.schema import Schemas
from pynenc_redis_stack.scripts import BACKFILL_RELATIONS, Script
from pynenc_redis_stack.search import iter_cursor

logger = logging.getLogger(__name__)

BACKFILL_BATCH = 500
"""Invocations per backfill script call (each call blocks the server for its duration)."""

_backfill = Script(BACKFILL_RELATIONS, repeatable=True)


def sets_complete(client: redis.Redis, keys: AppKeys, schemas: Schemas, namespace: Namespace) -> bool:
    """Tell whether the app's relation sets hold every invocation; say so for a new app.

    An app without any invocation is complete by definition: every invocation it gets is
    written by the upsert script, which keeps the sets. One ``EXISTS`` when the key is there.
    """
    if run(client, "EXISTS", keys.relation_sets_complete()):
        return True
    request = query.Search(
        namespace.alias(schemas.invocations),
        query.where(schemas.invocations, keys.app_id),
        limit=0,
        keys_only=True,
    )
    if int(run(client, *request.args())[0]) == 0:
        run(client, "SET", keys.relation_sets_complete(), "1")
        return True
    logger.warning(
        "App %r has invocations stored before relation sets existed (pynenc-redis-stack < 0.3): "
        "children, parent-event and workflow lookups go through the index until "
        "'pynenc-redis-stack index migrate' has filled the sets.",
        keys.app_id,
    )
    return False


@dataclass
class BackfillReport:
    """What :func:`backfill` did: invocations put in their sets, per app."""

    invocations: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.invocations.values())


def _apps_to_fill(client: redis.Redis, namespace: Namespace, schemas: Schemas) -> Iterator[str]:
    request = query.Aggregate(
        namespace.alias(schemas.invocations), query.Filter(schemas.invocations), query.group_by("app_id")
    )
    for rows in iter_cursor(client, request, 1000):
        for row in rows:
            app_id = str(row["app_id"])
            if not run(client, "EXISTS", namespace.for_app(app_id).relation_sets_complete()):
                yield app_id


def backfill(
    client: redis.Redis,
    namespace: Namespace,
    schemas: Schemas,
    dry_run: bool = False,
    heartbeat: Callable[[], None] | None = None,
) -> BackfillReport:
    """Put every invocation of every app without complete relation sets in its sets, then mark
    the app complete. Safe to run again and alongside writers (the script reads each document
    when it adds it). With ``dry_run``, only count what would be added.

    :param heartbeat: Called after every batch (``index migrate`` keeps its lock alive).
    """
    report = BackfillReport()
    spec = schemas.invocations
    if index_info(client, namespace.alias(spec)) is None:
        return report  # no index yet (a dry run before creating it): no invocation to find
    for app_id in list(_apps_to_fill(client, namespace, schemas)):
        keys = namespace.for_app(app_id)
        request = query.Aggregate(
            namespace.alias(spec), query.where(spec, app_id), query.load_fields("invocation_id")
        )
        prefixes = orjson.dumps(keys.relation_prefixes()).decode()
        count = 0
        for rows in iter_cursor(client, request, BACKFILL_BATCH):
            ids = [str(row["invocation_id"]) for row in rows]
            if dry_run:
                count += len(ids)
                continue
            invocation_keys = [keys.invocation(invocation_id) for invocation_id in ids]
            replies = _backfill.run_in(client.pipeline(transaction=False), invocation_keys, [prefixes, *ids])
            count += int(replies[-1])
            if heartbeat is not None:
                heartbeat()
        if not dry_run:
            run(client, "SET", keys.relation_sets_complete(), "1")
        report.invocations[app_id] = count
    return report
