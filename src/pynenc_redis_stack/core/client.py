"""The client: which commands may be re-sent, and how (see :mod:`.connection` for pools).

Retry policy: redis-py connections here never re-send a command by themselves (their own
``Retry`` has no retries). :class:`Client` retries a command, with ``ExponentialBackoff``, up to
``max_connection_attempts`` times only when sending it twice leaves the same state and
answer as sending it once (:func:`is_repeatable`). ``FT.CURSOR READ`` is never repeated: the
server may have consumed the batch already, and the retry would silently return the next
one (see :func:`pynenc_redis_stack.core.reads.iter_cursor` for what happens instead).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pynenc_redis_stack.core.errors import ServerOutOfMemoryError, is_missing_index_error

BACKOFF_BASE = 0.05
"""Seconds before the first retry; doubled at each further one (0.1, 0.2, 0.4 ...)."""

BACKOFF_CAP = 2.0
"""Longest wait between two attempts, in seconds."""

REPEATABLE_COMMANDS = frozenset(
    {
        # reads
        "EXISTS", "FT.INFO", "FT.SEARCH", "FT._LIST", "GET", "HGET", "INFO", "JSON.GET", "JSON.MGET",
        "JSON.TYPE", "LRANGE", "PING", "SCRIPT", "SMEMBERS", "ZCARD", "ZRANGE",
        # writes of a value computed by the client (never derived from the stored one), and
        # deletions: a second send leaves the same state
        "DEL", "HSET", "JSON.MERGE", "JSON.SET", "UNLINK",
    }
)  # fmt: skip
"""Commands :class:`Client` may send again after a timeout or a lost connection."""

_REPEATABLE_SCRIPTS: set[str] = set()
"""SHA1 of the Lua scripts whose second run changes nothing (see :func:`register_repeatable_script`)."""


def register_repeatable_script(sha: str) -> None:
    """Declare that running the script ``sha`` twice with the same arguments changes nothing."""
    _REPEATABLE_SCRIPTS.add(sha)


def is_repeatable(args: Sequence[object]) -> bool:
    """Tell whether the command ``args`` may be sent again when its reply was lost.

    ``FT.AGGREGATE ... WITHCURSOR`` is not: it opens a server-side cursor, and only its reader
    (:func:`~pynenc_redis_stack.core.reads.iter_cursor`) knows whether restarting is safe.
    """
    name = str(args[0]).upper()
    if name == "FT.AGGREGATE":
        return "WITHCURSOR" not in args
    if name == "EVALSHA":
        return str(args[1]) in _REPEATABLE_SCRIPTS
    return name in REPEATABLE_COMMANDS


MASK = "***"


def redacted_url(url: str) -> str:
    """Return ``url`` with its password masked (the user info's and any ``password=`` query
    parameter), for messages, logs and errors. The user name and everything else stay."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK  # unparseable: show nothing of it rather than a secret
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:{MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        # "password", and a Sentinel URL's "sentinel_password"
        if any(name.lower().endswith("password") for name, _ in pairs):
            masked = [(name, MASK if name.lower().endswith("password") else value) for name, value in pairs]
            query = urlencode(masked, safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def run(target: redis.Redis | redis.RedisCluster | redis.client.Pipeline, *args: str | int) -> Any:
    """Send one raw command (on a client, or queued on a pipeline); typed wrapper of
    redis-py's untyped ``execute_command``."""
    return target.execute_command(*args)  # type: ignore[no-untyped-call]


NO_RETRY = Retry(NoBackoff(), 0)
"""One attempt: what a plain redis-py client (not a :class:`Client`) gets."""


def command_retry(client: redis.Redis | redis.RedisCluster) -> Retry:
    """Return the retry policy of ``client`` (one attempt for a plain redis-py client)."""
    return client.command_retry if isinstance(client, RetryingCommands) else NO_RETRY


class RetryingCommands:
    """The retry and healing policy of this package's clients, mixed into a redis-py client
    class (:class:`Client` on ``redis.Redis``, ``topology.ClusterClient`` on
    ``redis.RedisCluster``): it wraps the next class's ``execute_command``.

    :ivar command_retry: Backoff and attempts for commands :func:`is_repeatable` accepts
        (and whole pipelines made only of such commands).
    :ivar on_missing_index: Called once when a query (``FT.AGGREGATE``/``FT.SEARCH``) names an
        index that does not exist (the database was flushed, or the index dropped); the query is
        then sent again once. The backend sets it to recreate the indexes from ``schemas/``.
    """

    command_retry: Retry = NO_RETRY
    on_missing_index: Callable[[], None] | None = None

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return self._send(args, options)
        except redis.ResponseError as error:
            if self.on_missing_index is None or not _is_missing_index_on_query(args, error):
                raise_server_error(error)
            self.on_missing_index()
            return self._send(args, options)

    def _send(self, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        send = super().execute_command  # type: ignore[misc]  # the redis-py class mixed with
        try:
            # The first attempt outside the retry loop: most calls succeed, and the loop's
            # frames cost a few percent of a sub-millisecond read.
            return send(*args, **options)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            if not is_repeatable(args):
                raise
            first_failure: list[Exception] = [error]

        def attempt() -> Any:
            if first_failure:
                raise first_failure.pop()  # counted and backed off as the loop's own first failure
            return send(*args, **options)

        return self.command_retry.call_with_retry(attempt, no_cleanup)  # redis-py dropped the connection


class Client(RetryingCommands, redis.Redis):
    """A redis-py client on one server (or a Sentinel-managed master) with the policy of
    :class:`RetryingCommands`."""

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> redis.client.Pipeline:
        pipe = RetryingPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.command_retry = self.command_retry
        pipe.from_client = self
        return pipe


type QueuedCommand = tuple[tuple[Any, ...], dict[str, Any]]


class QueueKeeping:
    """Mixed into a redis-py pipeline class: :attr:`queued` lists the commands queued since the
    last ``execute``/``reset``, kept through the pipeline's public methods. redis-py's own queue
    is not public: ``Pipeline.command_stack`` on one server, a strategy's queue on a cluster
    (redis-py 8.2), emptied by a failed ``execute``."""

    from_client: redis.Redis | redis.RedisCluster | None = None
    """The client that made this pipeline (set by its ``pipeline()``): where a script the
    server lacks is loaded, outside the pipeline (a cluster pipeline refuses ``SCRIPT LOAD``
    before redis-py 8.2)."""

    @property
    def queued(self) -> list[QueuedCommand]:
        """``(args, options)`` of each queued command, in order (not those a watching pipeline
        sent at once)."""
        return self.__dict__.setdefault("_queued", [])  # type: ignore[no-any-return]

    def execute_command(self, *args: Any, **options: Any) -> Any:
        before = len(self)  # type: ignore[arg-type]  # the redis-py pipeline mixed with
        reply = super().execute_command(*args, **options)  # type: ignore[misc]
        if len(self) > before:  # type: ignore[arg-type]
            self.queued.append((args, options))
        return reply

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self.queued.clear()


# (ignore[misc]: redis-py types Redis.reset as the RESET command, which a pipeline's reset overrides)
class RetryingPipeline(QueueKeeping, redis.client.Pipeline):  # type: ignore[misc]
    """A pipeline (or MULTI/EXEC) sent again whole when every queued command is repeatable."""

    command_retry: Retry = NO_RETRY

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        queued = list(self.queued)
        send = super().execute
        attempts = 0

        def attempt() -> list[Any]:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                # queue it again on an empty pipeline: a failed execute() empties it, except
                # when no connection could be taken (a Sentinel between masters), which redis-py
                # raises before its reset; queued twice, every command would run twice
                self.reset()
                for args, options in queued:
                    self.execute_command(*args, **options)
            return send(raise_on_error)

        try:
            if not all(is_repeatable(args) for args, _options in queued):
                return send(raise_on_error)
            return self.command_retry.call_with_retry(attempt, no_cleanup)
        except redis.ResponseError as error:
            raise_server_error(error)


OUT_OF_MEMORY_FIX = (
    "Free memory (`pynenc-redis-stack prune --older-than ...` removes finished invocations), "
    "raise the server's maxmemory, or give it more RAM. Keep maxmemory-policy noeviction: an "
    "evicting policy would silently delete execution state."
)


def raise_server_error(error: redis.ResponseError) -> NoReturn:
    """Raise ``error``, as :class:`ServerOutOfMemoryError` when the server is out of memory.

    A refused write is refused whole: invocation and history batches are one script each, and
    the server refuses a script at its first write when over the limit (once a script has
    written, it runs to its end).
    """
    message = str(error)
    # redis-py maps the server's OOM code to OutOfMemoryError, not inside a script's error
    if isinstance(error, redis.exceptions.OutOfMemoryError) or "used memory > 'maxmemory'" in message:
        raise ServerOutOfMemoryError(
            f"the Redis server refused the write because it reached its maxmemory limit "
            f"(policy noeviction): {message}. Nothing of this write was stored. {OUT_OF_MEMORY_FIX}"
        ) from error
    raise error


def no_cleanup(_error: Exception) -> None:
    """Failure hook for ``Retry.call_with_retry`` here: redis-py has already disconnected the
    failed connection, and the next attempt takes another from the pool."""


def _is_missing_index_on_query(args: Sequence[object], error: redis.ResponseError) -> bool:
    # FT.INFO, FT.DROPINDEX ... are how the lifecycle asks whether an index exists: never healed.
    name = str(args[0]).upper()
    return name in ("FT.AGGREGATE", "FT.SEARCH") and is_missing_index_error(error)
