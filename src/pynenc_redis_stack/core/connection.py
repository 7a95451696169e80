"""Connections: one pool per connection settings, the deployment a URL names (one server,
Sentinel or cluster, :mod:`.topology`), and the one-time server check (:mod:`.server_check`)."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from pynenc_redis_stack.core import topology
from pynenc_redis_stack.core.client import BACKOFF_BASE, BACKOFF_CAP, NO_RETRY, Client
from pynenc_redis_stack.core.conf import ConfigRedisStack, ConfigRedisStackKeyspace
from pynenc_redis_stack.core.server_check import check_server

_POOLS: dict[tuple[object, ...], redis.ConnectionPool] = {}
_CHECKED: set[tuple[object, ...]] = set()
_LOCK = threading.Lock()


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
    tls = bool(conf.redis_ssl) or urlsplit(url).scheme.startswith("rediss")  # rediss+sentinel/cluster too
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


def _connection_options(conf: ConfigRedisStack) -> dict[str, Any]:
    # RESP2 is what our reply parsing expects; redis-py 8 would default to RESP3.
    return {
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


def _new_pool(conf: ConfigRedisStack) -> redis.ConnectionPool:
    options = _connection_options(conf)
    url = connection_url(conf)
    if (target := topology.parse_topology(url)).kind == "sentinel":  # the pool follows the master
        return topology.sentinel_pool(target, options)
    if url:
        if urlsplit(url).scheme != "unix":  # a unix socket has no TCP keepalive
            options["socket_keepalive"] = True
        return redis.ConnectionPool.from_url(url, **options)
    return redis.ConnectionPool(socket_keepalive=True, **address_options(conf), **options)


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
    own :attr:`Client.on_missing_index`. A cluster URL gives a ``topology.ClusterClient``
    (typed as :class:`Client`: the same commands and policy), each with its own connections.

    :raises ServerNotSupportedError: If the database is not 0 or the server lacks the
        search or JSON module.
    :raises MissingPermissionError: If the connected ACL user may not run a command this
        package needs, or not on the namespace's keys.
    """
    key = _pool_key(conf)
    namespace = str(conf.redis_stack_namespace)
    client = _new_client(conf, key)
    client.command_retry = new_command_retry(conf)
    # Checked per namespace too: ACL key patterns may allow one namespace and not another.
    checked = (*key, namespace)
    if checked not in _CHECKED:
        check_server(client, namespace)
        with _LOCK:
            _CHECKED.add(checked)
    return client


def _new_client(conf: ConfigRedisStack, key: tuple[object, ...]) -> Client:
    """The client for the deployment ``conf`` names: one server or a Sentinel master (on the
    shared pool; writes followed by ``WAIT`` when ``redis_stack_wait_replicas`` is set), or a
    cluster (topology.py)."""
    target = topology.parse_topology(connection_url(conf))
    wait_replicas = int(conf.redis_stack_wait_replicas)
    topology.check_combination(target, int(conf.redis_db), wait_replicas)
    if target.kind == "cluster":
        return topology.new_cluster_client(target, _connection_options(conf))  # type: ignore[return-value]
    with _LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = _new_pool(conf)
    if not wait_replicas:
        return Client(connection_pool=pool)
    client = topology.AcknowledgedClient(connection_pool=pool)
    client.wait_replicas = wait_replicas
    client.wait_timeout_ms = round(float(conf.redis_stack_wait_replicas_timeout) * 1000)
    return client
