"""One app's documents of one component's indexes: keys, the first-use index check, and
every read (the state backend's, the orchestrator's and the trigger's), through :mod:`.reads`."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from redis.crc import key_slot

from pynenc_redis_stack.core import query, reads
from pynenc_redis_stack.core.client import Client, run
from pynenc_redis_stack.core.codec import Document, loads
from pynenc_redis_stack.core.conf import MAX_PAGE
from pynenc_redis_stack.core.indexes import connect
from pynenc_redis_stack.core.keys import AppKeys, Namespace, group_by_slot
from pynenc_redis_stack.core.reads import (
    Row,
    fetch_all,
    iter_cursor,
    iter_seek,
    result_cap,
    search_documents,
    search_keys,
    sorted_page,
)
from pynenc_redis_stack.core.schema import IndexSpec, SchemaSet

if TYPE_CHECKING:
    import redis

    from pynenc_redis_stack.core.conf import ConfigRedisStackKeyspace


class DocumentStore[S: SchemaSet]:
    """One app's documents of one component's indexes on one server: keys, indexes, complete
    reads. Shared by the state backend, the orchestrator and the trigger.

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

    def matching_keys(
        self, spec: IndexSpec, request_filter: query.Filter, *, first_page: int = MAX_PAGE
    ) -> list[str]:
        """Return the key of every document matching ``request_filter`` (unordered; see
        :meth:`stream_keys`)."""
        return list(self.stream_keys(spec, request_filter, first_page=first_page))

    def stream_keys(
        self, spec: IndexSpec, request_filter: query.Filter, *, first_page: int = MAX_PAGE
    ) -> Iterator[str]:
        """Stream the key of every document matching ``request_filter`` (unordered).

        One ``FT.SEARCH NOCONTENT`` of ``first_page`` matches, sent now; a second one sized to
        the total when it exceeds ``first_page`` and fits one reply; otherwise every key
        streams through a cursor as it is iterated (no answer is cut at ``MAXSEARCHRESULTS``).
        """
        if request_filter.matches_nothing:
            return iter(())
        keys = search_keys(
            self.client, query.Search(self.alias(spec), request_filter, first_page, keys_only=True)
        )
        if keys is not None:
            return iter([str(key) for key in keys])
        return (row["__key"] for row in self.rows(spec, request_filter, *query.LOAD_KEY))

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

    def rows(
        self, spec: IndexSpec, request_filter: query.Filter, *steps: str, batch_size: int | None = None
    ) -> Iterator[Row]:
        """Stream every row of ``FT.AGGREGATE`` over ``spec`` with ``request_filter`` and
        ``steps`` (unordered, through a cursor of ``batch_size`` rows, default :attr:`batch_size`)."""
        if request_filter.matches_nothing:
            return
        request = query.Aggregate(self.alias(spec), request_filter, steps)
        yield from fetch_all(self.client, request, batch_size or self.batch_size)

    def documents(self, spec: IndexSpec, request_filter: query.Filter, *steps: str) -> Iterator[Document]:
        """Stream every document matching ``request_filter`` and ``steps`` (unordered, through a cursor)."""
        for row in self.rows(spec, request_filter, *steps, *query.LOAD_DOCUMENT):
            yield loads(row["doc"])

    def ordered_documents(
        self,
        spec: IndexSpec,
        request_filter: query.Filter,
        order: tuple[str, str],
        bounds: tuple[int, int],
        *,
        first_page: int,
    ) -> list[Document]:
        """Return every document matching ``request_filter`` ascending on ``order``, for
        answers expected small: one ``FT.SEARCH`` of ``first_page`` matches (sorted here) when
        they fit one reply, else :meth:`seek_pages` (a missing secondary field sorts as 0)."""
        found = search_documents(self.client, query.Search(self.alias(spec), request_filter, first_page))
        if found is None:
            return [
                document for page in self.seek_pages(spec, request_filter, order, bounds) for document in page
            ]
        primary, secondary = order
        return sorted(found, key=lambda document: (document[primary], document.get(secondary, 0)))

    def seek_pages(
        self,
        spec: IndexSpec,
        request_filter: query.Filter,
        order: tuple[str, str],
        bounds: tuple[int, int],
        page_size: int | None = None,
    ) -> Iterator[list[Document]]:
        """Stream every document matching ``request_filter`` ascending on ``order`` within
        ``bounds``, a page of ``page_size`` (default :attr:`batch_size`) at a time
        (:func:`~pynenc_redis_stack.core.reads.iter_seek`)."""
        request = query.Aggregate(self.alias(spec), request_filter)
        return iter_seek(self.client, request, order, bounds, page_size or self.batch_size)

    def read(self, key: str) -> Document | None:
        """Return the document at ``key``, or None."""
        raw = run(self.client, "JSON.GET", key)
        if raw is None:
            return None
        document: Document = loads(raw)
        return document

    def read_path(self, key: str, path: str) -> Any:
        """Return the value at JSONPath ``path`` of the document at ``key`` (None if either is missing)."""
        raw = run(self.client, "JSON.GET", key, path)
        values = None if raw is None else loads(raw)
        return values[0] if values else None

    def read_many(self, keys: list[str]) -> list[Document | None]:
        """Return the documents at ``keys`` (None where there is none), in batches of ``batch_size``."""
        found: list[Document | None] = []
        for batch in itertools.batched(keys, self.batch_size):
            for raw in json_mget(self.client, batch, "$"):
                found.append(None if raw is None else dict(loads(raw)[0]))
        return found

    def unlink(self, keys: list[str]) -> None:
        for batch in itertools.batched(keys, self.batch_size):
            unlink(self.client, batch)


def json_mget(client: redis.Redis, keys: Sequence[str], path: str) -> list[Any]:
    """``JSON.MGET`` of ``keys`` at ``path``, one command per hash slot, all in one pipeline
    (a cluster refuses a multi-key command across slots); the replies in the order of ``keys``."""
    groups: dict[int, list[int]] = {}
    for position, key in enumerate(keys):
        groups.setdefault(key_slot(key.encode()), []).append(position)
    if len(groups) <= 1:
        return list(run(client, "JSON.MGET", *keys, path)) if keys else []
    pipe = client.pipeline(transaction=False)
    for positions in groups.values():
        run(pipe, "JSON.MGET", *(keys[i] for i in positions), path)
    found: list[Any] = [None] * len(keys)
    for positions, replies in zip(groups.values(), pipe.execute(), strict=True):
        for position, reply in zip(positions, replies, strict=True):
            found[position] = reply
    return found


def unlink(client: redis.Redis, keys: Iterable[str]) -> None:
    """``UNLINK`` ``keys``, one command per hash slot, all in one pipeline."""
    groups = group_by_slot(keys)
    if len(groups) == 1:
        run(client, "UNLINK", *groups[0])
    elif groups:
        pipe = client.pipeline(transaction=False)
        for group in groups:
            run(pipe, "UNLINK", *group)
        pipe.execute()


def unlink_app_documents(
    client: redis.Redis, namespace: Namespace, specs: Iterable[IndexSpec], app_id: str, batch_size: int
) -> None:
    """Delete every document of ``app_id`` in the indexes ``specs``, and nothing of any other
    app: found through the indexes, a cursor page at a time, each page one ``UNLINK`` per slot."""
    for spec in specs:
        request = query.Aggregate(namespace.alias(spec), query.where(spec, app_id), tuple(query.LOAD_KEY))
        for rows in iter_cursor(client, request, batch_size):
            unlink(client, (row["__key"] for row in rows))
