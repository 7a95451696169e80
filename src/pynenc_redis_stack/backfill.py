"""Structures kept beside the indexes (relation sets, the history timeline): when each app's is
complete, which apps ``index migrate`` must fill, and what the filling did.

Each structure is written by the same script that writes the documents it derives from, so
it is complete for an app from that app's first document on. A store written by a version
before the structure existed is not: a per-app completeness key says which apps are, the
backend reads through the index for the others, and ``index migrate`` fills them and writes
the key. Each structure is one :class:`DerivedStructure` (``relations.RELATION_SETS``,
``timeline.TIMELINE``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from pynenc_redis_stack import query
from pynenc_redis_stack.client import run
from pynenc_redis_stack.executor import index_info
from pynenc_redis_stack.keys import AppKeys, Namespace
from pynenc_redis_stack.schema import IndexSpec, Schemas
from pynenc_redis_stack.search import iter_cursor

type Rows = list[dict[str, Any]]

logger = logging.getLogger(__name__)


@dataclass
class BackfillReport:
    """What one backfill did: items added per app (a dry run counts what it would look at)."""

    per_app: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.per_app.values())


BATCH = 500
"""Documents per backfill script call (each call blocks the server for its duration)."""


def complete_or_empty(
    client: redis.Redis, namespace: Namespace, spec: IndexSpec, keys: AppKeys, complete_key: str, stale: str
) -> bool:
    """Tell whether ``complete_key`` is set; set it for an app without any document in
    ``spec``'s index (every document it gets is written by the script that keeps the
    structure). One ``EXISTS`` when the key is there. Otherwise log ``stale`` (what reads the
    index meanwhile) and return False.
    """
    if run(client, "EXISTS", complete_key):
        return True
    request = query.Search(namespace.alias(spec), query.where(spec, keys.app_id), limit=0, keys_only=True)
    if int(run(client, *request.args())[0]) == 0:
        run(client, "SET", complete_key, "1")
        return True
    logger.warning("App %r %s until 'pynenc-redis-stack index migrate' has filled it.", keys.app_id, stale)
    return False


def apps_to_fill(
    client: redis.Redis, namespace: Namespace, spec: IndexSpec, complete_key_of: Callable[[AppKeys], str]
) -> Iterator[str]:
    """Yield the apps with documents in ``spec``'s index whose completeness key is missing.

    :param complete_key_of: The app's completeness key, e.g. ``AppKeys.relation_sets_complete``.
    """
    request = query.Aggregate(namespace.alias(spec), query.Filter(spec), query.group_by("app_id"))
    for rows in iter_cursor(client, request, 1000):
        for row in rows:
            app_id = str(row["app_id"])
            if not run(client, "EXISTS", complete_key_of(namespace.for_app(app_id))):
                yield app_id


def fill_apps(
    client: redis.Redis,
    namespace: Namespace,
    spec: IndexSpec,
    complete_key_of: Callable[[AppKeys], str],
    steps: tuple[str, ...],
    add: Callable[[AppKeys, Rows], int],
    *,
    dry_run: bool = False,
    heartbeat: Callable[[], None] | None = None,
) -> BackfillReport:
    """For every app with documents in ``spec``'s index and no completeness key: stream its
    documents (``FT.AGGREGATE`` with ``steps``, a cursor of :data:`BATCH` rows), hand each
    page to ``add`` (which returns how many items it added), then write the key. With
    ``dry_run``, only count the documents.

    :param heartbeat: Called after every page (``index migrate`` keeps its lock alive).
    """
    report = BackfillReport()
    if index_info(client, namespace.alias(spec)) is None:
        return report  # no index yet (a dry run before creating it): nothing to find
    for app_id in list(apps_to_fill(client, namespace, spec, complete_key_of)):
        keys = namespace.for_app(app_id)
        request = query.Aggregate(namespace.alias(spec), query.where(spec, app_id), steps)
        count = 0
        for rows in iter_cursor(client, request, BATCH):
            if dry_run:
                count += len(rows)
                continue
            count += add(keys, rows)
            if heartbeat is not None:
                heartbeat()
        if not dry_run:
            run(client, "SET", complete_key_of(keys), "1")
        report.per_app[app_id] = count
    return report


@dataclass(frozen=True)
class DerivedStructure:
    """A structure kept beside one index by the script that writes the index's documents.

    :ivar spec_of: The index whose documents it derives from.
    :ivar complete_key_of: The app's completeness key.
    :ivar stale: What reads the index meanwhile (logged for an app that is not complete).
    :ivar steps: The ``FT.AGGREGATE`` steps loading what :attr:`add` needs of each document.
    :ivar add: Adds one page of an app's documents to the structure (one script call) and
        returns how many items it added.
    """

    spec_of: Callable[[Schemas], IndexSpec]
    complete_key_of: Callable[[AppKeys], str]
    stale: str
    steps: tuple[str, ...]
    add: Callable[[redis.Redis, AppKeys, Rows], int]

    def complete(self, client: redis.Redis, keys: AppKeys, schemas: Schemas, namespace: Namespace) -> bool:
        """Tell whether the app's structure is complete; say so for a new app (see
        :func:`complete_or_empty`)."""
        spec = self.spec_of(schemas)
        return complete_or_empty(client, namespace, spec, keys, self.complete_key_of(keys), self.stale)

    def backfill(
        self,
        client: redis.Redis,
        namespace: Namespace,
        schemas: Schemas,
        dry_run: bool = False,
        heartbeat: Callable[[], None] | None = None,
    ) -> BackfillReport:
        """Fill the structure of every app whose completeness key is missing, then write the
        key (:func:`fill_apps`). Safe to run again and alongside writers: :attr:`add` reads
        each document when it adds it."""
        return fill_apps(
            client,
            namespace,
            self.spec_of(schemas),
            self.complete_key_of,
            self.steps,
            lambda keys, rows: self.add(client, keys, rows),
            dry_run=dry_run,
            heartbeat=heartbeat,
        )
