"""The orchestrator's connection, indexes and complete reads, shared by its parts."""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from pynenc_redis_stack import documents as docs
from pynenc_redis_stack import query
from pynenc_redis_stack.client import Client, connection_url, get_client, run
from pynenc_redis_stack.keys import AppKeys, Namespace
from pynenc_redis_stack.lifecycle import ensure_indexes
from pynenc_redis_stack.orchestrator.scripts import Scripts, call
from pynenc_redis_stack.schema import IndexSpec, load_spec, schema_dir
from pynenc_redis_stack.search import fetch_all

if TYPE_CHECKING:
    from pynenc_redis_stack.conf import ConfigRedisStackKeyspace

logger = logging.getLogger(__name__)

MAX_PAGE = 10_000
"""Largest reply asked of one ``FT.SEARCH`` (Redis Stack's ``MAXSEARCHRESULTS``; a server with
a lower cap is detected from its refusal and followed)."""

_CAP_MESSAGE = re.compile(r"LIMIT exceeds maximum of (\d+)")

_prepared: set[tuple[str, str, tuple[str, ...]]] = set()
_prepared_lock = threading.Lock()


@dataclass(frozen=True)
class OrchestratorSchemas:
    """The orchestrator's indexes (``schemas/``), by role."""

    invocations: IndexSpec
    waits: IndexSpec
    heartbeats: IndexSpec
    executions: IndexSpec

    @classmethod
    def load(cls, directory: Path | None = None) -> OrchestratorSchemas:
        """Load the four schema files (from ``directory``, default the installed ones).

        :raises SchemaError: If a file is invalid.
        """
        folder = directory or schema_dir()
        return cls(
            invocations=load_spec(folder / "orchestrator_invocations.yaml"),
            waits=load_spec(folder / "orchestrator_waits.yaml"),
            heartbeats=load_spec(folder / "runner_heartbeats.yaml"),
            executions=load_spec(folder / "atomic_service_executions.yaml"),
        )

    def all(self) -> tuple[IndexSpec, ...]:
        return (self.invocations, self.waits, self.heartbeats, self.executions)


class DocumentStore:
    """One app's documents of some indexes on one server: keys, indexes, complete reads.

    Shared by the orchestrator and the trigger; each passes the specs it owns, which are
    checked (and created if missing) on the first use per process.

    :param conf: Connection and keyspace settings.
    :param app_id: The app whose documents these are.
    :param specs: The indexes this store queries.
    """

    def __init__(self, conf: ConfigRedisStackKeyspace, app_id: str, specs: tuple[IndexSpec, ...]) -> None:
        self.conf = conf
        self.app_id = app_id
        self.namespace = Namespace(conf.redis_stack_namespace)
        self.keys: AppKeys = self.namespace.for_app(app_id)
        self.specs = specs
        self._client: Client | None = None
        self._page_cap = MAX_PAGE

    @property
    def client(self) -> Client:
        """The Redis client; the first use per process checks the server and the indexes, and
        a query that later finds an index missing (``FLUSHALL``) recreates it and runs again."""
        if self._client is None:
            client = get_client(self.conf)
            client.on_missing_index = self._ensure_indexes
            marker = (
                connection_url(self.conf) or f"{self.conf.redis_host}:{self.conf.redis_port}",
                self.namespace.namespace,
                tuple(spec.name for spec in self.specs),
            )
            with _prepared_lock:
                if marker not in _prepared:
                    self._ensure_indexes()
                    _prepared.add(marker)
            self._client = client
            return client
        return self._client

    def _ensure_indexes(self) -> None:
        client = self._client or get_client(self.conf)
        created = ensure_indexes(
            client, self.namespace, self.specs, create_missing=self.conf.redis_stack_create_indexes
        )
        if created:
            logger.info("created RediSearch indexes %s", ", ".join(created))

    @property
    def batch_size(self) -> int:
        return max(1, min(int(self.conf.redis_stack_batch_size), MAX_PAGE))

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


class OrchestratorStore(DocumentStore):
    """The orchestrator's documents of one app (:class:`OrchestratorSchemas`) and its scripts."""

    def __init__(self, conf: ConfigRedisStackKeyspace, app_id: str) -> None:
        self.schemas = OrchestratorSchemas.load()
        super().__init__(conf, app_id, self.schemas.all())

    @cached_property
    def scripts(self) -> Scripts:
        return Scripts(self.client)

    def server_micros(self) -> int:
        """The server's clock, in epoch microseconds (one clock for every host)."""
        return int(call(self.scripts.server_time, self.client, [], []))
