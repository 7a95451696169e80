"""Connections: one pool per connection settings, and the one-time server check."""

from __future__ import annotations

import threading
from typing import Any

import redis

from pynenc_redis_stack.conf import ConfigRedisStack
from pynenc_redis_stack.errors import ServerNotSupportedError

_POOLS: dict[tuple[object, ...], redis.ConnectionPool] = {}
_CHECKED: set[tuple[object, ...]] = set()
_LOCK = threading.Lock()

SUPPORTED_SERVERS = "Redis Stack >= 7.2 (RediSearch >= 2.8, RedisJSON >= 2.6) or Redis 8.x"


def run(target: redis.Redis | redis.client.Pipeline, *args: str | int) -> Any:
    """Send one raw command (on a client, or queued on a pipeline); typed wrapper of
    redis-py's untyped ``execute_command``."""
    return target.execute_command(*args)  # type: ignore[no-untyped-call]


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
    )


def _new_pool(conf: ConfigRedisStack) -> redis.ConnectionPool:
    # RESP2 is what our reply parsing expects; redis-py 8 would default to RESP3.
    options: dict[str, object] = {
        "protocol": 2,
        "decode_responses": True,
        "max_connections": conf.redis_pool_max_connections,
        "socket_timeout": conf.socket_timeout,
        "socket_connect_timeout": conf.socket_connect_timeout,
        "socket_keepalive": True,
        "health_check_interval": conf.redis_pool_health_check_interval,
        "retry_on_timeout": True,
    }
    url = connection_url(conf)
    if url:
        return redis.ConnectionPool.from_url(url, **options)
    return redis.ConnectionPool(
        host=conf.redis_host,
        port=conf.redis_port,
        db=conf.redis_db,
        username=conf.redis_username or None,
        password=conf.redis_password or None,
        **options,  # type: ignore[arg-type]
    )


def get_client(conf: ConfigRedisStack) -> redis.Redis:
    """Return a client on the pool for ``conf``, checking the server on first use.

    :raises ServerNotSupportedError: If the database is not 0 or the server lacks the
        search or JSON module.
    """
    key = _pool_key(conf)
    with _LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = _new_pool(conf)
    client = redis.Redis(connection_pool=pool)
    if key not in _CHECKED:
        check_server(client)
        with _LOCK:
            _CHECKED.add(key)
    return client


def check_server(client: redis.Redis) -> None:
    """Refuse a server this backend cannot use, naming what is missing and the fix.

    :raises ServerNotSupportedError: If the database is not 0 or a module is missing.
    """
    db = int(client.connection_pool.connection_kwargs.get("db") or 0)
    if db != 0:
        raise ServerNotSupportedError(
            f"redis_db is {db}, but RediSearch indexes exist only in database 0 "
            "(FT.CREATE refuses other databases). Use database 0, and a distinct "
            "redis_stack_namespace to share a server between deployments."
        )
    pipe = client.pipeline(transaction=False)
    run(pipe, "FT._LIST")
    run(pipe, "JSON.TYPE", "pynenc-redis-stack:module-probe")
    search_reply, json_reply = pipe.execute(raise_on_error=False)
    missing = [
        name
        for name, reply in (
            ("search (RediSearch)", search_reply),
            ("JSON (RedisJSON)", json_reply),
        )
        if isinstance(reply, redis.ResponseError) and "unknown command" in str(reply).lower()
    ]
    for reply in (search_reply, json_reply):
        if isinstance(reply, Exception) and not missing:
            raise ServerNotSupportedError(f"could not check the server's modules: {reply}")
    if missing:
        raise ServerNotSupportedError(
            f"the Redis server lacks the {' and '.join(missing)} module; "
            f"this backend needs {SUPPORTED_SERVERS}. For development run "
            "`pynenc-redis-stack server start`."
        )
