"""Connections: one pool per connection settings, and the one-time server check."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from pynenc_redis_stack.conf import ConfigRedisStack, ConfigStateBackendRedisStack
from pynenc_redis_stack.errors import MissingPermissionError, ServerNotSupportedError

_POOLS: dict[tuple[object, ...], redis.ConnectionPool] = {}
_CHECKED: set[tuple[object, ...]] = set()
_LOCK = threading.Lock()

SUPPORTED_SERVERS = "Redis Stack >= 7.2 (RediSearch >= 2.8, RedisJSON >= 2.6) or Redis 8.x"

MASK = "***"

# Every command this package sends (main's prepared FT.SEARCH scripts, history arrays and
# prune's pending-workflow set included), with the arguments the ACL check needs (key
# positions hold a key of the namespace). Redis Stack 7.x modules register no ACL category and Redis 8
# files them under @read/@write with everything else, so the least-privilege rule names them.
REQUIRED_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("FT._LIST",),
    ("FT.INFO", "{key}"),
    ("FT.CREATE", "{key}"),
    ("FT.DROPINDEX", "{key}"),
    ("FT.ALIASADD", "{key}", "{key}"),
    ("FT.ALIASUPDATE", "{key}", "{key}"),
    ("FT.AGGREGATE", "{key}", "*"),
    ("FT.SEARCH", "{key}", "*"),
    ("FT.CURSOR", "READ", "{key}", "0"),
    ("FT.CURSOR", "DEL", "{key}", "0"),
    ("JSON.SET", "{key}", "$", "1"),
    ("JSON.GET", "{key}"),
    ("JSON.MGET", "{key}", "$"),
    ("JSON.MERGE", "{key}", "$", "1"),
    ("JSON.TYPE", "{key}"),
    ("JSON.ARRAPPEND", "{key}", "$", "1"),
    ("EVAL", "return 1", "0"),
    ("EVALSHA", "0", "0"),
    ("SCRIPT", "LOAD", "return 1"),
    ("GET", "{key}"),
    ("SET", "{key}", "1"),
    ("DEL", "{key}"),
    ("UNLINK", "{key}"),
    ("EXISTS", "{key}"),
    ("INCR", "{key}"),
    ("SADD", "{key}", "1"),
    ("SSCAN", "{key}", "0"),
    ("SREM", "{key}", "1"),
    ("PEXPIRE", "{key}", "1"),
    ("MULTI",),
    ("EXEC",),
    ("DISCARD",),
    ("PING",),
)

# One round trip checks every command above as the connected user, without running any:
# redis.acl_check_cmd (Redis >= 7.0) answers false for a refused command or key.
_ACL_PROBE = """
local denied = {}
local i = 1
while i <= #ARGV do
  local count = tonumber(ARGV[i])
  local command = {unpack(ARGV, i + 1, i + count)}
  if not redis.acl_check_cmd(unpack(command)) then
    local named = (command[1] == 'FT.CURSOR' or command[1] == 'SCRIPT') and 2 or 1
    table.insert(denied, table.concat(command, ' ', 1, named))
  end
  i = i + count + 1
end
return denied
"""


def _acl_command_name(command: tuple[str, ...]) -> str:
    """``SCRIPT LOAD`` is granted as a subcommand (``script|load``, not all of ``SCRIPT``);
    ``FT.CURSOR`` as a whole (the search module declares no subcommands)."""
    if command[0] == "SCRIPT":
        return f"{command[0]}|{command[1]}".lower()
    return command[0].lower()


def acl_rule(namespace: str) -> str:
    """Return the least-privilege ACL rule for a user of ``namespace`` (keys, index names and
    aliases all start with ``<namespace>:``), for ``ACL SETUSER <user> on >password <rule>``."""
    commands = dict.fromkeys(_acl_command_name(command) for command in REQUIRED_COMMANDS)
    # CLIENT SETINFO: redis-py names itself on connect (refusal is ignored, but logged by ACL LOG).
    granted = " ".join(f"+{name}" for name in [*commands, "client|setinfo"])
    return f"resetkeys ~{namespace}:* resetchannels -@all {granted}"


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
        *_tls_options(conf).items(),
    )


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
        "socket_keepalive": True,
        "health_check_interval": conf.redis_pool_health_check_interval,
        "retry_on_timeout": True,
        **_tls_options(conf),
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


def get_client(conf: ConfigStateBackendRedisStack) -> redis.Redis:
    """Return a client on the pool for ``conf``, checking the server on first use.

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
    client = redis.Redis(connection_pool=pool)
    # Checked per namespace too: ACL key patterns may allow one namespace and not another.
    checked = (*key, namespace)
    if checked not in _CHECKED:
        check_server(client, namespace)
        with _LOCK:
            _CHECKED.add(checked)
    return client


def check_server(client: redis.Redis, namespace: str) -> None:
    """Refuse a server this backend cannot use, naming what is missing and the fix.

    :param namespace: The ``redis_stack_namespace``: the probes touch only its keys, so a
        user limited to ``~<namespace>:*`` passes.
    :raises ServerNotSupportedError: If the database is not 0 or a module is missing.
    :raises MissingPermissionError: If the ACL user lacks a command or key pattern it needs.
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
    run(pipe, "JSON.TYPE", f"{namespace}:module-probe")
    search_reply, json_reply = pipe.execute(raise_on_error=False)
    missing = [
        name
        for name, reply in (
            ("search (RediSearch)", search_reply),
            ("JSON (RedisJSON)", json_reply),
        )
        if isinstance(reply, redis.ResponseError) and "unknown command" in str(reply).lower()
    ]
    if missing:
        raise ServerNotSupportedError(
            f"the Redis server lacks the {' and '.join(missing)} module; "
            f"this backend needs {SUPPORTED_SERVERS}. For development run "
            "`pynenc-redis-stack server start`."
        )
    probes = (("FT._LIST", search_reply), (f"JSON.TYPE {namespace}:module-probe", json_reply))
    for probe, reply in probes:
        if isinstance(reply, redis.exceptions.NoPermissionError):
            raise _missing_permission(namespace, f"{probe}: {reply}")
        if isinstance(reply, Exception):
            raise ServerNotSupportedError(f"could not check the server's modules: {reply}")
    _check_permissions(client, namespace)


def _check_permissions(client: redis.Redis, namespace: str) -> None:
    """Check every command of :data:`REQUIRED_COMMANDS` on a namespace key as this user."""
    probe_key = f"{namespace}:acl-probe"
    args: list[str] = []
    for command in REQUIRED_COMMANDS:
        args += [str(len(command)), *(probe_key if part == "{key}" else part for part in command)]
    try:
        denied = run(client, "EVAL", _ACL_PROBE, 0, *args)
    except redis.exceptions.NoPermissionError as exc:
        raise _missing_permission(namespace, str(exc)) from exc
    if denied:
        raise _missing_permission(namespace, f"refused {', '.join(denied)} on keys like {probe_key!r}")


def _missing_permission(namespace: str, refusal: str) -> MissingPermissionError:
    return MissingPermissionError(
        f"the Redis ACL user may not run what this backend needs ({refusal}). Grant it the "
        f"least-privilege rule for namespace {namespace!r}: "
        f"ACL SETUSER <user> on ><password> {acl_rule(namespace)}"
    )
