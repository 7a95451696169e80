"""Connections: one pool per connection settings, the retry policy, and the one-time server check.

Retry policy: redis-py connections here never re-send a command by themselves (their own
``Retry`` has no retries). :class:`Client` retries a command, with ``ExponentialBackoff``, up to
``max_connection_attempts`` times only when sending it twice leaves the same state and
answer as sending it once (:func:`is_repeatable`). ``FT.CURSOR READ`` is never repeated: the
server may have consumed the batch already, and the retry would silently return the next
one (see :func:`pynenc_redis_stack.search.iter_cursor` for what happens instead).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from pynenc_redis_stack.conf import ConfigRedisStack, ConfigRedisStackKeyspace
from pynenc_redis_stack.errors import ServerOutOfMemoryError

_POOLS: dict[tuple[object, ...], redis.ConnectionPool] = {}
_CHECKED: set[tuple[object, ...]] = set()
_LOCK = threading.Lock()


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
    (:func:`~pynenc_redis_stack.search.iter_cursor`) knows whether restarting is safe.
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
        if any(name.lower() == "password" for name, _ in pairs):
            masked = [(name, MASK if name.lower() == "password" else value) for name, value in pairs]
            query = urlencode(masked, safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def run(target: redis.Redis | redis.client.Pipeline, *args: str | int) -> Any:
    """Send one raw command (on a client, or queued on a pipeline); typed wrapper of
    redis-py's untyped ``execute_command``."""
    return target.execute_command(*args)  # type: ignore[no-untyped-call]


NO_RETRY = Retry(NoBackoff(), 0)
"""One attempt: what a plain redis-py client (not a :class:`Client`) gets."""


def command_retry(client: redis.Redis) -> Retry:
    """Return the retry policy of ``client`` (one attempt for a plain redis-py client)."""
    return client.command_retry if isinstance(client, Client) else NO_RETRY


class Client(redis.Redis):
    """A redis-py client that retries repeatable commands and heals missing indexes.

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
        send = redis.Redis.execute_command
        try:
            # The first attempt outside the retry loop: most calls succeed, and the loop's
            # frames cost a few percent of a sub-millisecond read.
            return send(self, *args, **options)  # type: ignore[no-untyped-call]
        except (redis.ConnectionError, redis.TimeoutError) as error:
            if not is_repeatable(args):
                raise
            first_failure: list[Exception] = [error]

        def attempt() -> Any:
            if first_failure:
                raise first_failure.pop()  # counted and backed off as the loop's own first failure
            return send(self, *args, **options)  # type: ignore[no-untyped-call]

        return self.command_retry.call_with_retry(attempt, no_cleanup)  # redis-py dropped the connection

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> redis.client.Pipeline:
        pipe = RetryingPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.command_retry = self.command_retry
        return pipe


class RetryingPipeline(redis.client.Pipeline):
    """A pipeline (or MULTI/EXEC) sent again whole when every queued command is repeatable."""

    command_retry: Retry = NO_RETRY

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = list(self.command_stack)
        send = redis.client.Pipeline.execute
        repeatable = all(is_repeatable(args) for args, _options in stack)

        def attempt() -> list[Any]:
            self.command_stack = list(stack)  # a failed execute() has emptied it
            return send(self, raise_on_error)

        try:
            if not repeatable:
                return send(self, raise_on_error)
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
    from pynenc_redis_stack.executor import is_missing_index_error  # executor imports this module

    name = str(args[0]).upper()
    return name in ("FT.AGGREGATE", "FT.SEARCH") and is_missing_index_error(error)


def connection_url(conf: ConfigRedisStack) -> str:
    """Return the URL this backend connects to (``redis_stack_url``, else ``redis_url``)."""
    return str(conf.redis_stack_url or conf.redis_url)


def _pool_key(conf: ConfigRedisStack) -> tuple[object, ...]:
    return (
        connection_url(conf),
        conf.redis_host,
        conf.redis_port,
        conf.redis_db,
        conf.redis_username,
        conf.redis_password,
        conf.socket_timeout,
        conf.socket_connect_timeout,
        conf.health_check_interval,
        conf.redis_pool_health_check_interval,
        conf.redis_pool_max_connections,
        *_tls_options(conf).items(),
    )


def new_command_retry(conf: ConfigRedisStack) -> Retry:
    """The retry policy for ``conf``: ``max_connection_attempts`` attempts in all, with backoff."""
    attempts = max(1, int(conf.max_connection_attempts))
    return Retry(ExponentialBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE), attempts - 1)


def _health_check_interval(conf: ConfigRedisStack) -> float:
    """Seconds a pooled connection may idle before it is PINGed on its next use.

    redis-py has one such setting; both of ours (pynenc-redis's names) are honoured: the
    shorter positive one wins, 0 for both turns the check off.
    """
    intervals = [
        float(value)
        for value in (conf.health_check_interval, conf.redis_pool_health_check_interval)
        if float(value) > 0
    ]
    return min(intervals, default=0.0)


CERT_REQS = ("required", "optional", "none")


def _tls_options(conf: ConfigRedisStack) -> dict[str, object]:
    """The redis-py TLS options the ``redis_ssl*`` settings ask for (none when TLS is off).

    :raises ValueError: If a TLS file or setting is given while TLS is off, or
        ``redis_ssl_cert_reqs`` is not one of :data:`CERT_REQS`.
    """
    url = connection_url(conf)
    tls = bool(conf.redis_ssl) or urlsplit(url).scheme == "rediss"
    files = {
        "ssl_ca_certs": str(conf.redis_ssl_ca_certs or ""),
        "ssl_certfile": str(conf.redis_ssl_certfile or ""),
        "ssl_keyfile": str(conf.redis_ssl_keyfile or ""),
    }
    given = [f"redis_{name}" for name, path in files.items() if path]
    if not tls:
        if given:
            raise ValueError(
                f"{', '.join(given)} set but TLS is off: set redis_ssl to true or use a rediss:// URL"
            )
        return {}
    cert_reqs = str(conf.redis_ssl_cert_reqs).lower()
    if cert_reqs not in CERT_REQS:
        raise ValueError(
            f"redis_ssl_cert_reqs is {conf.redis_ssl_cert_reqs!r}; expected one of {', '.join(CERT_REQS)}"
        )
    return {
        "connection_class": redis.SSLConnection,
        **{name: path for name, path in files.items() if path},
        "ssl_cert_reqs": cert_reqs,
        # Python's ssl refuses hostname checks without certificate verification.
        "ssl_check_hostname": bool(conf.redis_ssl_check_hostname) and cert_reqs != "none",
    }


def _new_pool(conf: ConfigRedisStack) -> redis.ConnectionPool:
    # RESP2 is what our reply parsing expects; redis-py 8 would default to RESP3.
    options: dict[str, object] = {
        "protocol": 2,
        "decode_responses": True,
        "max_connections": conf.redis_pool_max_connections,
        "socket_timeout": conf.socket_timeout,
        "socket_connect_timeout": conf.socket_connect_timeout,
        "health_check_interval": _health_check_interval(conf),
        # Connections never re-send by themselves; Client decides per command (module docstring).
        "retry": NO_RETRY,
        "retry_on_timeout": False,
        **_tls_options(conf),
    }
    url = connection_url(conf)
    if url:
        if urlsplit(url).scheme != "unix":  # a unix socket has no TCP keepalive
            options["socket_keepalive"] = True
        return redis.ConnectionPool.from_url(url, **options)
    return redis.ConnectionPool(socket_keepalive=True, **address_options(conf), **options)  # type: ignore[arg-type]


def address_options(conf: ConfigRedisStack) -> dict[str, Any]:
    """The redis-py options of a server given by ``redis_host``/``port``/``db`` and credentials
    (pynenc-redis's settings, used when no URL is configured)."""
    return {
        "host": conf.redis_host,
        "port": conf.redis_port,
        "db": conf.redis_db,
        "username": conf.redis_username or None,
        "password": conf.redis_password or None,
    }


def get_client(conf: ConfigRedisStackKeyspace) -> Client:
    """Return a client on the pool for ``conf``, checking the server on first use.

    Each call returns a new :class:`Client` (sharing the pool), so each caller may set its
    own :attr:`Client.on_missing_index`.

    :raises ServerNotSupportedError: If the database is not 0 or the server lacks the
        search or JSON module.
    :raises MissingPermissionError: If the connected ACL user may not run a command this
        package needs, or not on the namespace's keys.
    """
    key = _pool_key(conf)
    namespace = str(conf.redis_stack_namespace)
    with _LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = _new_pool(conf)
    client = Client(connection_pool=pool)
    client.command_retry = new_command_retry(conf)
    # Checked per namespace too: ACL key patterns may allow one namespace and not another.
    checked = (*key, namespace)
    if checked not in _CHECKED:
        # imported here, not at the top: server_check imports run() from this module
        from pynenc_redis_stack.server_check import check_server

        check_server(client, namespace)
        with _LOCK:
            _CHECKED.add(checked)
    return client
