"""Deployments beyond one server: which one a connection URL names, and its redis-py client.

- ``redis://`` / ``rediss://`` / ``unix://``: one server (:class:`~pynenc_redis_stack.core.client.Client`).
- ``redis+sentinel://`` / ``rediss+sentinel://``: a master found through Sentinel
  (``redis.sentinel.Sentinel.master_for``), so the client follows a failover.
- ``redis+cluster://`` / ``rediss+cluster://``: an open-source cluster (``redis.RedisCluster``).

The retry and healing policy is the same for all three (:class:`~pynenc_redis_stack.core.client.
RetryingCommands`); docs/scale-out.md says what each deployment supports today.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedSSLConnection

from pynenc_redis_stack.core.client import Client, QueueKeeping, RetryingCommands, RetryingPipeline
from pynenc_redis_stack.core.errors import ReplicaAcknowledgementError

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_PORT = 6379

SENTINEL_URL_FORM = "redis+sentinel://[user:password@]host:port[,host:port...]/<service name>"
CLUSTER_URL_FORM = "redis+cluster://[user:password@]host:port[,host:port...]"


@dataclass(frozen=True)
class Topology:
    """What a connection URL names.

    :ivar kind: ``server``, ``sentinel`` or ``cluster``.
    :ivar nodes: The sentinels (``sentinel``) or the cluster's startup nodes (``cluster``).
    :ivar service_name: The Sentinel service (master group) name.
    :ivar username: ACL user of the data nodes (the master and its replicas, or the cluster).
    :ivar password: Password of the data nodes.
    :ivar sentinel_username: ACL user of the sentinels (``?sentinel_username=``).
    :ivar sentinel_password: Password of the sentinels (``?sentinel_password=``).
    :ivar tls: Whether the scheme asks for TLS (``rediss+...``).
    """

    kind: Literal["server", "sentinel", "cluster"]
    nodes: tuple[tuple[str, int], ...] = ()
    service_name: str = ""
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls: bool = False


def parse_topology(url: str) -> Topology:
    """Tell which deployment ``url`` names.

    :raises ValueError: If a Sentinel URL names no service, or has no host, or a cluster URL
        names a database other than 0, or an unknown query parameter.
    """
    if not url:
        return Topology("server")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SENTINEL_SCHEMES + CLUSTER_SCHEMES:
        return Topology("server")
    sentinel = scheme in SENTINEL_SCHEMES
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    default_port = DEFAULT_SENTINEL_PORT if sentinel else DEFAULT_PORT
    nodes = tuple(_node(entry, default_port, url) for entry in hostlist.split(",") if entry)
    if not nodes:
        form = SENTINEL_URL_FORM if sentinel else CLUSTER_URL_FORM
        raise ValueError(f"the URL names no host; expected {form}")
    path = [unquote(segment) for segment in parts.path.split("/") if segment]
    query = dict(parse_qsl(parts.query))
    allowed = {"sentinel_username", "sentinel_password"} if sentinel else set()
    if unknown := sorted(set(query) - allowed):
        raise ValueError(
            f"unknown URL parameter(s) {', '.join(unknown)}; "
            + (
                f"a Sentinel URL takes {', '.join(sorted(allowed))}"
                if sentinel
                else "a cluster URL takes none"
            )
        )
    if sentinel:
        if not path:
            raise ValueError(
                f"the Sentinel URL names no service (master group): expected {SENTINEL_URL_FORM}, "
                "e.g. redis+sentinel://sentinel-1:26379,sentinel-2:26379/mymaster"
            )
        _check_database(path[1:], "/<service name>/0")
    else:
        _check_database(path, "")
    return Topology(
        kind="sentinel" if sentinel else "cluster",
        nodes=nodes,
        service_name=path[0] if sentinel else "",
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
        tls=scheme.startswith("rediss"),
    )


def _node(entry: str, default_port: int, url: str) -> tuple[str, int]:
    host, colon, port = entry.rpartition(":") if not entry.endswith("]") else (entry, "", "")
    if not colon:
        host, port = entry, str(default_port)
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ValueError(f"the URL's host {entry!r} has no valid port number") from None


def _check_database(path: Sequence[str], form: str) -> None:
    if not path:
        return
    if path != ["0"]:
        raise ValueError(
            f"the URL names database {'/'.join(path)!r}, but RediSearch indexes exist only in "
            f"database 0 (and a cluster has no other): drop it or end the URL with {form or '/0'}"
        )


def check_combination(target: Topology, conf_db: int, wait_replicas: int) -> None:
    """Refuse settings that cannot work with ``target``.

    :raises ValueError: If ``redis_stack_wait_replicas`` is set for a cluster, or ``redis_db``
        is not 0 for a Sentinel or cluster URL.
    """
    if target.kind == "cluster" and wait_replicas:
        raise ValueError(
            "redis_stack_wait_replicas is not supported with a cluster URL: the WAIT must run on "
            "the connection that wrote, which redis-py's RedisCluster does not expose. Set it to 0, "
            "or use one server or Sentinel (docs/scale-out.md)."
        )
    if target.kind != "server" and int(conf_db) != 0:
        raise ValueError(
            f"redis_db is {conf_db} with a {target.kind} URL; only database 0 exists there for "
            "RediSearch. Remove redis_db (or set it to 0)."
        )


class ClusterClient(RetryingCommands, redis.RedisCluster):
    """``redis.RedisCluster`` with this package's retry and healing policy.

    redis-py internals relied on (tests/integration/test_scale_out_cluster.py checks them):
    ``RedisCluster(retry=...)`` is the cluster-level retry of a command after a connection
    error; it is built here with no retries, so only :class:`RetryingCommands` decides what is
    sent again (as on one server). ``MOVED``/``ASK`` redirections are followed by
    ``RedisCluster._execute_command`` apart from that retry. ``FT.CURSOR`` is routed to the
    node of the client's last ``FT.AGGREGATE`` (``_aggregate_nodes``, one per client object):
    each :func:`~pynenc_redis_stack.core.connection.get_client` call builds its own client.
    ``FT._LIST`` has no routing record in redis-py (it would be refused as "Missing key"):
    it goes to the default node, which with Redis 8's coordinator knows every index.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in KEYLESS_SEARCH_COMMANDS:
            self.command_flags[command] = redis.RedisCluster.DEFAULT_NODE

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        pipe: ClusterPipeline = super().pipeline(transaction, shard_hint)  # type: ignore[no-untyped-call]
        # the same object, through the subclass that keeps its queue (class docstring)
        pipe.__class__ = ClusterPipeline
        pipe.from_client = self
        return pipe


class ClusterPipeline(QueueKeeping, redis.cluster.ClusterPipeline):  # type: ignore[misc]  # as RetryingPipeline
    """redis-py's cluster pipeline, keeping its queued commands (:class:`QueueKeeping`) for
    ``Script.run_in``, which sends them again after loading a script the server lacked."""


KEYLESS_SEARCH_COMMANDS = ("FT._LIST",)
"""Search commands redis-py's cluster client has no route for (checked on redis-py 8.2)."""


class AcknowledgedClient(Client):
    """A :class:`Client` whose every write waits (``WAIT``) until ``wait_replicas`` replicas
    have it, on the connection that sent it.

    redis-py internals relied on: ``Redis._send_command_parse_response(conn, name, *args)``
    sends one command on the connection the pool lent; ``Pipeline._execute_pipeline`` and
    ``Pipeline._execute_transaction`` send a whole pipeline on one connection.
    """

    wait_replicas: int = 0
    wait_timeout_ms: int = 1000

    def _send_command_parse_response(self, conn: Any, command_name: str, *args: Any, **options: Any) -> Any:
        reply = super()._send_command_parse_response(conn, command_name, *args, **options)  # type: ignore[no-untyped-call]
        if is_write(args):
            wait_for_replicas(conn, self.wait_replicas, self.wait_timeout_ms)
        return reply

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> redis.client.Pipeline:
        pipe = AcknowledgedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.command_retry = self.command_retry
        pipe.from_client = self
        pipe.wait_replicas, pipe.wait_timeout_ms = self.wait_replicas, self.wait_timeout_ms
        return pipe


class AcknowledgedPipeline(RetryingPipeline):
    """A :class:`RetryingPipeline` followed by ``WAIT`` on its connection when it wrote."""

    wait_replicas: int = 0
    wait_timeout_ms: int = 1000

    def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        replies = super()._execute_transaction(connection, commands, raise_on_error)
        self._wait(connection, commands)
        return replies

    def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        replies = super()._execute_pipeline(connection, commands, raise_on_error)  # type: ignore[no-untyped-call]
        self._wait(connection, commands)
        return replies

    def _wait(self, connection: Any, commands: Any) -> None:
        if any(is_write(args) for args, _options in commands):
            wait_for_replicas(connection, self.wait_replicas, self.wait_timeout_ms)


READ_COMMANDS = frozenset(
    {
        "EXISTS", "FT.AGGREGATE", "FT.CURSOR", "FT.EXPLAIN", "FT.INFO", "FT.SEARCH", "FT._LIST",
        "GET", "HGET", "HGETALL", "HSCAN", "INFO", "JSON.GET", "JSON.MGET", "JSON.TYPE",
        "LRANGE", "MODULE", "PING", "SCAN", "SCRIPT", "SINTER", "SMEMBERS", "SSCAN", "TIME",
        "TTL", "PTTL", "TYPE", "WAIT", "ZCARD", "ZRANGE", "ZSCAN", "ZSCORE", "CLIENT", "ACL",
        "CONFIG", "CLUSTER", "COMMAND", "HELLO", "AUTH", "SELECT", "ROLE",
    }
)  # fmt: skip
"""Commands that change no data: no ``WAIT`` after them. Anything else counts as a write,
every script included (a ``WAIT`` after a script that wrote nothing returns at once)."""


def is_write(args: Sequence[object]) -> bool:
    """Tell whether the command ``args`` may change data (then it is followed by ``WAIT``)."""
    return str(args[0]).upper() not in READ_COMMANDS


def wait_for_replicas(connection: Any, replicas: int, timeout_ms: int) -> None:
    """Send ``WAIT replicas timeout_ms`` on ``connection`` (the one that wrote).

    :raises ReplicaAcknowledgementError: If fewer replicas acknowledged the write in time.
    """
    connection.send_command("WAIT", replicas, timeout_ms)
    acknowledged = int(connection.read_response())
    if acknowledged < replicas:
        raise ReplicaAcknowledgementError(
            f"the write was applied on the master, but only {acknowledged} of the "
            f"{replicas} replica(s) redis_stack_wait_replicas asks for acknowledged it within "
            f"{timeout_ms} ms: a failover now could lose it. Check the replicas (INFO "
            "replication on the master), or lower redis_stack_wait_replicas / raise "
            "redis_stack_wait_replicas_timeout."
        )


def sentinel_pool(target: Topology, options: dict[str, Any]) -> redis.ConnectionPool:
    """A pool on the master of ``target.service_name``, found through the sentinels
    (``Sentinel.master_for``): on a failover its connections move to the new master."""
    options = dict(options)
    if options.get("connection_class") is redis.SSLConnection:
        options["connection_class"] = SentinelManagedSSLConnection
    sentinel_kwargs = {
        name: value
        for name, value in options.items()
        if name.startswith("socket_") or name.startswith("ssl_") or name == "connection_class"
    }
    if "connection_class" in sentinel_kwargs:  # sentinels themselves are plain (TLS) servers
        sentinel_kwargs["connection_class"] = redis.SSLConnection
    sentinel_kwargs.update(
        username=target.sentinel_username, password=target.sentinel_password, retry=Retry(NoBackoff(), 0)
    )
    sentinel = Sentinel(list(target.nodes), sentinel_kwargs=sentinel_kwargs)
    options.update(username=target.username, password=target.password)
    master = sentinel.master_for(target.service_name, connection_pool_class=SentinelConnectionPool, **options)
    pool: redis.ConnectionPool = master.connection_pool
    return pool


def new_cluster_client(target: Topology, options: dict[str, Any]) -> ClusterClient:
    """A :class:`ClusterClient` on the cluster ``target`` names (its startup nodes)."""
    options = {name: value for name, value in options.items() if name not in ("retry", "retry_on_timeout")}
    if options.get("connection_class") is redis.SSLConnection:
        options["ssl"] = True
    return ClusterClient(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],  # type: ignore[no-untyped-call]
        username=target.username,
        password=target.password,
        retry=Retry(NoBackoff(), 0),  # RetryingCommands decides (class docstring)
        **options,
    )
