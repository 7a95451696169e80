"""One app's documents of one component's indexes: keys, the first-use index check, and
complete reads (every read that must see all matches goes through :mod:`.reads`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from pynenc_redis_stack.core import query, reads
from pynenc_redis_stack.core.client import Client, run
from pynenc_redis_stack.core.codec import Document, loads
from pynenc_redis_stack.core.conf import MAX_PAGE
from pynenc_redis_stack.core.indexes import connect
from pynenc_redis_stack.core.keys import AppKeys, Namespace
from pynenc_redis_stack.core.reads import (
    fetch_all,
    iter_cursor,
    result_cap,
    search_keys,
    sorted_page,
)
from pynenc_redis_stack.core.schema import IndexSpec, SchemaSet

if TYPE_CHECKING:
    import redis

    from pynenc_redis_stack.core.conf import ConfigRedisStackKeyspace


class DocumentStore[S: SchemaSet]:
    """One app's documents of one component's indexes on one server: keys, indexes, complete
    reads. Shared by the orchestrator and the trigger.

    :param conf: Connection and keyspace settings.
    :param app_id: The app whose documents these are.
    :param schemas: The component's indexes (checked, and created if missing, on first use).
    """

    def __init__(self, conf: ConfigRedisStackKeyspace, app_id: str, schemas: S) -> None:
        self.conf = conf
        self.app_id = app_id
        self.namespace = Namespace(conf.redis_stack_namespace)
        self.keys: AppKeys = self.namespace.for_app(app_id)
        self.schemas = schemas
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        """The Redis client; the first use per process checks the server and the indexes, and
        a query that later finds an index missing (``FLUSHALL``) recreates it and runs again
        (:func:`pynenc_redis_stack.core.indexes.connect`, as the state backend)."""
        if self._client is None:
            self._client = connect(self.conf, self.schemas)
        return self._client

    @property
    def batch_size(self) -> int:
        """Rows per page and keys per command: ``redis_stack_batch_size`` (see :func:`~pynenc_redis_stack.core.reads.batch_size`)."""
        return reads.batch_size(self.conf)

    def alias(self, spec: IndexSpec) -> str:
        return self.namespace.alias(spec)

    def where(self, spec: IndexSpec, **tags: str) -> query.Filter:
        """A filter on this app's documents of ``spec`` with exact ``tags``."""
        return query.where(spec, self.app_id, **tags)

    # -- complete reads --------------------------------------------------------------------

    def matching_keys(self, spec: IndexSpec, request_filter: query.Filter) -> list[str]:
        """Return the key of every document matching ``request_filter`` (unordered).

        One ``FT.SEARCH NOCONTENT`` when the reported total fits one reply; otherwise every
        key streams through a cursor (no answer is cut at ``MAXSEARCHRESULTS``).
        """
        if request_filter.matches_nothing:
            return []
        keys = search_keys(
            self.client, query.Search(self.alias(spec), request_filter, MAX_PAGE, keys_only=True)
        )
        if keys is not None:
            return [str(key) for key in keys]
        request = query.Aggregate(self.alias(spec), request_filter, tuple(query.LOAD_KEY))
        return [row["__key"] for row in fetch_all(self.client, request, self.batch_size)]

    def count(self, spec: IndexSpec, request_filter: query.Filter) -> int:
        """Return the number of documents matching ``request_filter`` (the exact total the server reports)."""
        if request_filter.matches_nothing:
            return 0
        return int(
            run(self.client, *query.Search(self.alias(spec), request_filter, 0, keys_only=True).args())[0]
        )

    def sorted_keys(
        self,
        spec: IndexSpec,
        request_filter: query.Filter,
        sort_by: str,
        *,
        descending: bool,
        offset: int,
        limit: int,
    ) -> list[str]:
        """Return ``limit`` keys after ``offset`` in the order of ``sort_by`` (a unique sortable field).

        Pages within ``MAXSEARCHRESULTS`` are one ``FT.SEARCH``; deeper ones stream every
        match with its sort value and sort here, since the server returns no rows past its cap.
        """
        if request_filter.matches_nothing or limit <= 0:
            return []
        if offset + limit <= result_cap(self.client):
            page = query.SortedSearch(
                self.alias(spec), request_filter, sort_by, descending=descending, offset=offset, limit=limit
            )
            reply = sorted_page(self.client, page)
            if reply is not None:
                return [str(key) for key in reply]
        request = query.Aggregate(
            self.alias(spec), request_filter, (*query.LOAD_KEY, *query.load_fields(sort_by))
        )
        rows = sorted(
            fetch_all(self.client, request, self.batch_size),
            key=lambda row: float(row[sort_by]),
            reverse=descending,
        )
        return [row["__key"] for row in rows[offset : offset + limit]]

    def documents(self, spec: IndexSpec, request_filter: query.Filter) -> Iterator[Document]:
        """Stream every document matching ``request_filter`` (unordered, through a cursor)."""
        if request_filter.matches_nothing:
            return
        request = query.Aggregate(self.alias(spec), request_filter, tuple(query.LOAD_DOCUMENT))
        for row in fetch_all(self.client, request, self.batch_size):
            yield loads(row["doc"])

    def read(self, key: str) -> Document | None:
        """Return the document at ``key``, or None."""
        raw = run(self.client, "JSON.GET", key)
        return None if raw is None else dict(loads(raw))

    def read_many(self, keys: list[str]) -> list[Document | None]:
        """Return the documents at ``keys`` (None where there is none), in batches of ``batch_size``."""
        found: list[Document | None] = []
        for batch in itertools.batched(keys, self.batch_size):
            for raw in run(self.client, "JSON.MGET", *batch, "$"):
                found.append(None if raw is None else dict(loads(raw)[0]))
        return found

    def unlink(self, keys: list[str]) -> None:
        for batch in itertools.batched(keys, self.batch_size):
            self.client.unlink(*batch)


def unlink_app_documents(
    client: redis.Redis, namespace: Namespace, specs: Iterable[IndexSpec], app_id: str, batch_size: int
) -> None:
    """Delete every document of ``app_id`` in the indexes ``specs``, and nothing of any other
    app: found through the indexes, a cursor page at a time, each page one ``UNLINK``."""
    for spec in specs:
        request = query.Aggregate(namespace.alias(spec), query.where(spec, app_id), tuple(query.LOAD_KEY))
        for rows in iter_cursor(client, request, batch_size):
            client.unlink(*(row["__key"] for row in rows))
