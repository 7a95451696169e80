"""Runs :mod:`pynenc_redis_stack.query` requests and streams their rows.

Two ways to get complete answers past ``MAXSEARCHRESULTS`` / ``MAXAGGREGATERESULTS``, both
batch by batch without holding the whole answer:

- :func:`iter_cursor` for unordered answers: ``WITHCURSOR`` + ``FT.CURSOR READ`` (cursor reads
  are not capped); the cursor is deleted if the caller stops early;
- :func:`iter_seek` for answers ordered by ``(ts, seq)``: each page asks for the rows strictly
  after the last row seen, so no offset ever grows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import redis

from pynenc_redis_stack.client import run
from pynenc_redis_stack.query import Aggregate, sorted_top

if TYPE_CHECKING:
    from redis import Redis

Row = dict[str, str]


def _rows(reply: list[Any]) -> list[Row]:
    """Turn ``[total, [k, v, ...], ...]`` into dicts (RESP2)."""
    return [dict(zip(raw[::2], raw[1::2], strict=True)) for raw in reply[1:]]


def iter_cursor(client: Redis, request: Aggregate, batch_size: int) -> Iterator[list[Row]]:
    """Yield every row of ``request`` in batches of at most ``batch_size``."""
    if request.filter.matches_nothing:
        return
    reply, cursor_id = run(client, *request.args(cursor_count=batch_size))
    try:
        while True:
            rows = _rows(reply)
            if rows:
                yield rows
            if not cursor_id:
                return
            reply, cursor_id = run(
                client,
                "FT.CURSOR",
                "READ",
                request.index,
                cursor_id,
                "COUNT",
                str(batch_size),
            )
    finally:
        if cursor_id:
            # The caller stopped early: free the server-side cursor (128 per index at most).
            try:
                run(client, "FT.CURSOR", "DEL", request.index, cursor_id)
            except redis.RedisError:
                pass


def fetch_all(client: Redis, request: Aggregate, batch_size: int = 1000) -> Iterator[Row]:
    """Yield every row of ``request`` one at a time."""
    for batch in iter_cursor(client, request, batch_size):
        yield from batch


def iter_seek(
    client: Redis,
    request: Aggregate,
    order: tuple[str, str],
    batch_size: int,
    load: tuple[str, ...],
) -> Iterator[list[Row]]:
    """Yield every row of ``request`` ascending on the two sortable fields in ``order``.

    :param order: ``(primary, secondary)``; together they must be unique per document.
    :param load: ``LOAD`` step applied after sorting, so only returned rows are loaded.
    """
    if request.filter.matches_nothing:
        return
    primary, secondary = order
    position: tuple[int, int] | None = None
    while True:
        page_filter = replace(
            request.filter,
            clauses=list(request.filter.clauses),
            params=dict(request.filter.params),
        )
        if position is not None:
            page_filter.after(primary, secondary, position)
        page = replace(
            request,
            filter=page_filter,
            steps=(*request.steps, *sorted_top(primary, secondary, batch_size), *load),
        )
        rows = _rows(run(client, *page.args()))
        if rows:
            yield rows
        if len(rows) < batch_size:
            return
        last = rows[-1]
        position = (int(last[primary]), int(last[secondary]))
