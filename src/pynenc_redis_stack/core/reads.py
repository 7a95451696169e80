"""Runs :mod:`pynenc_redis_stack.core.query` requests and streams their rows.

Every query is sent as a command (never from inside a script or ``MULTI``: a sharded Redis
refuses ``FT.*`` there). Answers are complete past ``MAXSEARCHRESULTS`` /
``MAXAGGREGATERESULTS``:

- :func:`search_keys` and :func:`search_documents` answer in one ``FT.SEARCH`` when the
  reported total fits the reply (the common case: children, workflows, one invocation's
  history), ask once more with a ``LIMIT`` of that total when it fits the server's cap, and
  otherwise return None so the caller streams instead;
- :func:`iter_cursor` streams unordered answers: ``WITHCURSOR`` + ``FT.CURSOR READ`` (cursor
  reads are not capped); the cursor is deleted if the caller stops early; a cursor read is
  never retried (a retried read skips a batch): it fails loudly, and :func:`fetch_complete`
  restarts the whole query for callers that need a whole answer;
- :func:`iter_seek` streams answers ordered by ``(ts, seq)``: each page asks for the rows
  strictly after the last row seen, within a time window sized from the previous page, so
  no offset ever grows and no page sorts more than about two pages of rows.

A page larger than the server's result cap is refused by the server with the cap in the
message; the cap is then remembered for the connection pool and the page retried at it.
"""

from __future__ import annotations

import copy
import re
import weakref
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
import redis

from pynenc_redis_stack.core.client import command_retry, no_cleanup, run
from pynenc_redis_stack.core.codec import Document
from pynenc_redis_stack.core.conf import MAX_PAGE
from pynenc_redis_stack.core.errors import CursorReadError
from pynenc_redis_stack.core.query import LOAD_DOCUMENT, Aggregate, Search, SortedSearch, sorted_top

if TYPE_CHECKING:
    from redis import Redis

    from pynenc_redis_stack.core.conf import ConfigRedisStackKeyspace

Row = dict[str, str]

_RESULT_CAPS: weakref.WeakKeyDictionary[redis.ConnectionPool, int] = weakref.WeakKeyDictionary()
_CAP_MESSAGE = re.compile(r"LIMIT exceeds maximum of (\d+)")


def batch_size(conf: ConfigRedisStackKeyspace) -> int:
    """Rows per page and keys per command: ``redis_stack_batch_size`` (its setting keeps it
    within 1..:data:`MAX_PAGE`)."""
    return int(conf.redis_stack_batch_size)


def result_cap(client: Redis) -> int:
    """The largest page this server answers: :data:`MAX_PAGE` until it refuses one."""
    return _RESULT_CAPS.get(client.connection_pool, MAX_PAGE)


def sorted_page(client: Redis, request: SortedSearch) -> list[Any] | None:
    """Return the keys of one ordered page, or None if the page reaches past the server's
    result cap (which is then remembered; the caller streams instead)."""
    try:
        return list(run(client, *request.args()))[1:]
    except redis.ResponseError as exc:
        _learn_cap(client, exc, request.offset + request.limit)
        return None


def _learn_cap(client: Redis, refusal: redis.ResponseError, limit: int) -> int:
    """Return the result cap the server named when it refused a page of ``limit`` rows, and
    remember it for the client's pool.

    :raises redis.ResponseError: ``refusal`` itself, if it is anything else.
    """
    match = _CAP_MESSAGE.search(str(refusal))
    if match is None or not 0 < int(match.group(1)) < limit:
        raise refusal
    cap = int(match.group(1))
    _RESULT_CAPS[client.connection_pool] = cap
    return cap


def _search(client: Redis, request: Search) -> tuple[int, list[Any]]:
    """Run ``request`` until its reply holds every match it reports, or its total exceeds
    what one reply may hold: ``(total, reply without the total)``."""
    limit = request.limit
    for _attempt in range(3):  # the first page, an exact one, and one more if matches grew meanwhile
        reply = _capped(client, limit, lambda limit: run(client, *replace(request, limit=limit).args()))
        total = int(reply[0])
        cap = result_cap(client)
        if total <= min(limit, cap) or total > cap:
            break
        limit = total
    return total, reply[1:]


def search_keys(client: Redis, request: Search) -> list[str] | None:
    """Return the keys of every match of a ``NOCONTENT`` search, or None if they do not fit
    one reply (stream them instead)."""
    if request.filter.matches_nothing:
        return []
    total, keys = _search(client, request)
    return keys if len(keys) >= total else None


def search_documents(client: Redis, request: Search) -> list[Document] | None:
    """Return the documents of every match of a search (documents deleted while it ran left
    out), or None if they do not fit one reply (stream them instead)."""
    if request.filter.matches_nothing:
        return []
    total, reply = _search(client, request)
    if len(reply) // 2 < total:
        return None
    # [key, [name, value, ...], key, ...]: the value of "$" (the whole document) is the last
    return [orjson.loads(fields[-1]) for fields in reply[1::2] if fields]


def _capped[T](client: Redis, wanted: int, attempt: Callable[[int], T]) -> T:
    """Run ``attempt(limit)``; if the server refuses the limit, learn its cap and retry once."""
    limit = min(wanted, result_cap(client))
    try:
        return attempt(limit)
    except redis.ResponseError as exc:
        return attempt(_learn_cap(client, exc, limit))


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


def next_seek_window(
    window: tuple[int, int], high: int, full_page: tuple[int, int] | None
) -> tuple[int, int] | None:
    """Return the primary-field window of the page after one read in ``window``, or None
    when the answer is complete.

    :param window: The inclusive window the page was read in.
    :param high: The inclusive upper bound of the whole answer.
    :param full_page: ``(first, last)`` primary values of the page when it was full, None when
        it held fewer rows than asked (its window is exhausted).

    After a full page the window starts at its last value (rows tied there but not yet read
    come next) and spans twice the range the page covered, at least 2, so while the density
    holds the next page sorts about two pages of rows. After an exhausted window nothing is
    known of what lies beyond it, so the next window is all the rest, as the first one was.
    """
    if full_page is not None:
        first, last = full_page
        return last, min(high, last + 2 * max(1, last - first))
    if window[1] >= high:
        return None
    return window[1] + 1, high


def iter_seek(
    client: Redis,
    request: Aggregate,
    order: tuple[str, str],
    bounds: tuple[int, int],
    batch_size: int,
) -> Iterator[list[Document]]:
    """Yield every document of ``request`` ascending on two integer sortable fields in ``order``.

    Each page is the first ``batch_size`` rows after the last row seen and inside a window of
    the primary field. The first window is all of ``bounds``; after a full page the next
    window spans twice the primary range that page covered, so while the density holds a page
    sorts about two pages of rows rather than everything left in ``bounds``. A window that
    yields less than a page is exhausted, and the next page looks at all the rest.

    :param order: ``(primary, secondary)``; together they must be unique per row.
    :param bounds: Inclusive range of the primary field that ``request`` already selects.
    """
    if request.filter.matches_nothing or bounds[0] > bounds[1]:
        return
    primary, secondary = order
    low, high = bounds
    window = (low, high)
    position: tuple[int, int] | None = None
    while True:
        page_filter = request.filter.copy().between(primary, *window)
        if position is not None:
            page_filter.after(primary, secondary, position)

        def attempt(limit: int, page_filter: Any = page_filter) -> tuple[int, list[Row]]:
            page = replace(
                request,
                filter=page_filter,
                steps=(*request.steps, *sorted_top(primary, secondary, limit), *LOAD_DOCUMENT),
            )
            return limit, _rows(run(client, *page.args()))

        page_size, rows = _capped(client, batch_size, attempt)
        # A row whose document was deleted after it was indexed has no "doc"; its sort values
        # (returned with every sorted row) still place the next page.
        documents = [orjson.loads(row["doc"]) for row in rows if "doc" in row]
        if documents:
            yield documents
        full_page: tuple[int, int] | None = None
        if len(rows) >= page_size:
            full_page = (int(rows[0][primary]), int(rows[-1][primary]))
            position = (full_page[1], int(rows[-1][secondary]))
        else:
            position = None
        next_window = next_seek_window(window, high, full_page)
        if next_window is None:
            return
        window = next_window
