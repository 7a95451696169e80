"""The orchestrator's connection, indexes and complete reads, shared by its parts."""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

import redis

from pynenc_redis_stack import documents as docs
from pynenc_redis_stack import query
from pynenc_redis_stack.client import Client, run
from pynenc_redis_stack.keys import AppKeys, Namespace
from pynenc_redis_stack.lifecycle import connect
from pynenc_redis_stack.orchestrator.scripts import Scripts, call
from pynenc_redis_stack.schema import IndexSpec, OrchestratorSchemas, SchemaSet, load_schema_set
from pynenc_redis_stack.search import fetch_all

if TYPE_CHECKING:
    from pynenc_redis_stack.conf import ConfigRedisStackKeyspace

logger = logging.getLogger(__name__)

MAX_PAGE = 10_000
"""Largest reply asked of one ``FT.SEARCH`` (Redis Stack's ``MAXSEARCHRESULTS``; a server with
a lower cap is detected from its refusal and followed)."""

_CAP_MESSAGE = re.compile(r"LIMIT exceeds maximum of (\d+)")


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
        self._page_cap = MAX_PAGE

    @property
    def client(self) -> Client:
        """The Redis client; the first use per process checks the server and the indexes, and
        a query that later finds an index missing (``FLUSHALL``) recreates it and runs again
        (:func:`pynenc_redis_stack.lifecycle.connect`, as the state backend)."""
        if self._client is None:
            self._client = connect(self.conf, self.schemas)
        return self._client

    @property
    def batch_size(self) -> int:
        """Rows per page: ``redis_stack_batch_size``, which its setting keeps within 1..10000."""
        return int(self.conf.redis_stack_batch_size)

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
        reply = self._search(query.Search(self.alias(spec), request_filter, self._page_cap, keys_only=True))
        if reply is not None and len(reply) - 1 >= int(reply[0]):
            return [str(key) for key in reply[1:]]
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
        if offset + limit <= self._page_cap:
            page = query.SortedSearch(
                self.alias(spec), request_filter, sort_by, descending=descending, offset=offset, limit=limit
            )
            reply = self._search(page)
            if reply is not None:
                return [str(key) for key in reply[1:]]
        request = query.Aggregate(
            self.alias(spec), request_filter, (*query.LOAD_KEY, *query.load_fields(sort_by))
        )
        rows = sorted(
            fetch_all(self.client, request, self.batch_size),
            key=lambda row: float(row[sort_by]),
            reverse=descending,
        )
        return [row["__key"] for row in rows[offset : offset + limit]]

    def documents(self, spec: IndexSpec, request_filter: query.Filter) -> Iterator[docs.Document]:
        """Stream every document matching ``request_filter`` (unordered, through a cursor)."""
        if request_filter.matches_nothing:
            return
        request = query.Aggregate(self.alias(spec), request_filter, tuple(query.LOAD_DOCUMENT))
        for row in fetch_all(self.client, request, self.batch_size):
            yield docs.loads(row["doc"])

    def read(self, key: str) -> docs.Document | None:
        """Return the document at ``key``, or None."""
        raw = run(self.client, "JSON.GET", key)
        return None if raw is None else dict(docs.loads(raw))

    def read_many(self, keys: list[str]) -> list[docs.Document | None]:
        """Return the documents at ``keys`` (None where there is none), in batches of ``batch_size``."""
        found: list[docs.Document | None] = []
        for batch in itertools.batched(keys, self.batch_size):
            for raw in run(self.client, "JSON.MGET", *batch, "$"):
                found.append(None if raw is None else dict(docs.loads(raw)[0]))
        return found

    def unlink(self, keys: list[str]) -> None:
        for batch in itertools.batched(keys, self.batch_size):
            self.client.unlink(*batch)

    def _search(self, request: query.Search | query.SortedSearch) -> list[Any] | None:
        """Run ``request``; None if the server's result cap is below its limit (the cap is then
        remembered, and the caller streams instead)."""
        try:
            return list(run(self.client, *request.args()))
        except redis.ResponseError as exc:
            match = _CAP_MESSAGE.search(str(exc))
            if match is None:
                raise
            self._page_cap = int(match.group(1))
            return None


class OrchestratorStore(DocumentStore[OrchestratorSchemas]):
    """The orchestrator's documents of one app (:class:`OrchestratorSchemas`) and its scripts."""

    def __init__(self, conf: ConfigRedisStackKeyspace, app_id: str) -> None:
        super().__init__(conf, app_id, load_schema_set(OrchestratorSchemas))

    @cached_property
    def scripts(self) -> Scripts:
        return Scripts(self.client)

    def server_micros(self) -> int:
        """The server's clock, in epoch microseconds (one clock for every host)."""
        return int(call(self.scripts.server_time, self.client, [], []))
