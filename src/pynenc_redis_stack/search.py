"""Runs :mod:`pynenc_redis_stack.query` requests and streams their rows.

Two ways to get complete answers past ``MAXSEARCHRESULTS`` / ``MAXAGGREGATERESULTS``, both
batch by batch without holding the whole answer:

- :func:`iter_cursor` for unordered answers: ``WITHCURSOR`` + ``FT.CURSOR READ`` (cursor reads
  are not capped); the cursor is deleted if the caller stops early; a cursor read is never
  retried (a retried read skips a batch): it fails loudly, and :func:`fetch_complete`
  restarts the whole query for callers that need a whole answer;
- :func:`iter_seek` for answers ordered by ``(ts, seq)``: each page asks for the rows strictly
  after the last row seen, so no offset ever grows.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import redis

from pynenc_redis_stack.client import command_retry, no_cleanup, run
from pynenc_redis_stack.errors import CursorReadError
from pynenc_redis_stack.query import Aggregate, sorted_top

if TYPE_CHECKING:
    from redis import Redis

Row = dict[str, str]


def _rows(reply: list[Any]) -> list[Row]:
    """Turn ``[total, [k, v, ...], ...]`` into dicts (RESP2)."""
    return [dict(zip(raw[::2], raw[1::2], strict=True)) for raw in reply[1:]]


def iter_cursor(client: Redis, request: Aggregate, batch_size: int) -> Iterator[list[Row]]:
    """Yield every row of ``request`` in batches of at most ``batch_size``.

    A cursor read is never sent twice: after a timeout the server may have consumed that
    batch already, and the next read would return the one after it. The first request (no
    row handed out yet) is sent again with the client's backoff, up to
    ``max_connection_attempts`` in all; a failed cursor read ends the stream with an error.

    :raises CursorReadError: If the connection fails while reading a later batch.
    """
    if request.filter.matches_nothing:
        return
    # Restarting before the first batch is safe; an abandoned cursor the server may have
    # opened expires after its idle time.
    reply, cursor_id = command_retry(client).call_with_retry(
        lambda: run(client, *request.args(cursor_count=batch_size)), no_cleanup
    )
    try:
        while True:
            rows = _rows(reply)
            if rows:
                yield rows
            if not cursor_id:
                return
            try:
                reply, cursor_id = run(
                    client,
                    "FT.CURSOR",
                    "READ",
                    request.index,
                    cursor_id,
                    "COUNT",
                    str(batch_size),
                )
            except (redis.ConnectionError, redis.TimeoutError) as error:
                raise CursorReadError(
                    f"the connection failed while streaming FT.AGGREGATE on {request.index} ({error}); "
                    "the rows returned so far are not the whole answer. The batch was not read again "
                    "because the server may have consumed it already (a retry would silently skip "
                    "rows). Run the lookup again."
                ) from error
    finally:
        if cursor_id:
            # The caller stopped early or a read failed: free the server-side cursor (128 per
            # index at most).
            try:
                run(client, "FT.CURSOR", "DEL", request.index, cursor_id)
            except redis.RedisError:
                pass


def fetch_all(client: Redis, request: Aggregate, batch_size: int = 1000) -> Iterator[Row]:
    """Yield every row of ``request`` one at a time (see :func:`iter_cursor` on failures)."""
    for batch in iter_cursor(client, request, batch_size):
        yield from batch


def fetch_complete(client: Redis, request: Aggregate, batch_size: int = 1000) -> list[Row]:
    """Return every row of ``request``, for callers that act only on a whole answer.

    Nothing is handed out before the last batch arrived, so when a cursor read fails the
    whole query starts again (with the client's backoff, up to ``max_connection_attempts``
    in all) instead of failing.

    :raises CursorReadError: If every attempt was interrupted.
    """
    restart = copy.deepcopy(command_retry(client))
    restart.update_supported_errors([CursorReadError])
    return restart.call_with_retry(
        lambda: [row for batch in iter_cursor(client, request, batch_size) for row in batch],
        no_cleanup,
    )


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
