"""What this package needs of a Redis server, checked once per connection settings: database 0,
the search and JSON modules, and (for an ACL user) every command it sends, on the namespace's
keys. :func:`acl_rule` is the least-privilege rule an operator grants."""

from __future__ import annotations

from typing import Any

import redis

from pynenc_redis_stack.core.client import command_retry, no_cleanup, run
from pynenc_redis_stack.core.errors import MissingPermissionError, ServerNotSupportedError

SUPPORTED_SERVERS = "Redis Stack >= 7.2 (RediSearch >= 2.8, RedisJSON >= 2.6) or Redis 8.x"

# Every command this package sends (prune's pending-workflow set and index migrate's cleanup of
# the earlier layout included), with the arguments the ACL check needs (key
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
    ("JSON.NUMINCRBY", "{key}", "$", "1"),
    ("JSON.DEL", "{key}", "$.x"),  # index migrate: the earlier layout's marks
    ("EVAL", "return 1", "0"),
    ("EVALSHA", "0", "0"),
    ("SCRIPT", "LOAD", "return 1"),
    ("GET", "{key}"),
    ("SET", "{key}", "1"),
    ("DEL", "{key}"),
    ("UNLINK", "{key}"),
    ("EXISTS", "{key}"),
    ("INCR", "{key}"),
    ("LRANGE", "{key}", "0", "-1"),
    ("SADD", "{key}", "1"),
    ("SMEMBERS", "{key}"),
    ("SSCAN", "{key}", "0"),
    ("SREM", "{key}", "1"),
    ("PEXPIRE", "{key}", "1"),
    ("PTTL", "{key}"),  # health: heartbeat documents without expiry
    ("HLEN", "{key}"),  # health: client data values
    # index migrate: the earlier layout's keys (the trigger's too), found by SCAN ... MATCH <namespace>:...
    ("SCAN", "0"),
    ("TYPE", "{key}"),
    # sorted sets: the broker (its scripts included); the client data store
    ("ZADD", "{key}", "1", "1"),
    ("ZPOPMIN", "{key}"),
    ("ZREM", "{key}", "1"),
    ("ZRANGE", "{key}", "0", "1"),
    ("ZCARD", "{key}"),
    ("ZSCAN", "{key}", "0"),  # prune: the broker entries of pruned invocations
    ("INCRBY", "{key}", "1"),
    ("WATCH", "{key}"),
    ("UNWATCH",),
    ("HSET", "{key}", "1", "1"),
    ("HGET", "{key}", "1"),
    ("HMGET", "{key}", "1"),  # the orchestrator's running-slot leases (its scripts)
    # the trigger (its scripts included)
    ("HGETALL", "{key}"),
    ("HDEL", "{key}", "1"),
    ("ZSCORE", "{key}", "1"),
    ("ZREMRANGEBYSCORE", "{key}", "0", "1"),
    ("JSON.ARRINDEX", "{key}", "$", "1"),
    ("JSON.ARRAPPEND", "{key}", "$", "1"),
    ("MULTI",),
    ("EXEC",),
    ("DISCARD",),
    ("PING",),
    ("TIME",),
    ("WAIT", "0", "0"),  # after each write when redis_stack_wait_replicas is set (docs/scale-out.md)
    ("HSCAN", "{key}", "0"),  # index migrate: reading the trigger's earlier hashes
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


def check_server(client: redis.Redis, namespace: str) -> None:
    """Refuse a server this backend cannot use, naming what is missing and the fix.

    :param namespace: The ``redis_stack_namespace``: the probes touch only its keys, so a
        user limited to ``~<namespace>:*`` passes.
    :raises ServerNotSupportedError: If the database is not 0 or a module is missing.
    :raises MissingPermissionError: If the ACL user lacks a command or key pattern it needs.
    """
    pool = getattr(client, "connection_pool", None)  # a RedisCluster has none (and only db 0)
    db = int(pool.connection_kwargs.get("db") or 0) if pool is not None else 0
    if db != 0:
        raise ServerNotSupportedError(
            f"redis_db is {db}, but RediSearch indexes exist only in database 0 "
            "(FT.CREATE refuses other databases). Use database 0, and a distinct "
            "redis_stack_namespace to share a server between deployments."
        )

    def send_probes() -> list[Any]:
        # One round trip: the module probes and the ACL probe (read after the module check).
        pipe = client.pipeline(transaction=False)
        run(pipe, "FT._LIST")
        run(pipe, "JSON.TYPE", f"{namespace}:module-probe")
        run(pipe, "EVAL", _ACL_PROBE, 0, *_acl_probe_args(namespace))
        return pipe.execute(raise_on_error=False)

    # every probe only reads: the whole pipeline may be sent again (an EVAL alone is not)
    search_reply, json_reply, denied = command_retry(client).call_with_retry(send_probes, no_cleanup)
    missing = [
        name
        for name, reply in (
            ("search (RediSearch)", search_reply),
            ("JSON (RedisJSON)", json_reply),
        )
        if isinstance(reply, redis.ResponseError) and "unknown command" in str(reply).lower()
    ]
    if missing:
        raise ServerNotSupportedError(_missing_modules_message(client, missing))
    probes = (("FT._LIST", search_reply), (f"JSON.TYPE {namespace}:module-probe", json_reply))
    for probe, reply in probes:
        if isinstance(reply, redis.exceptions.NoPermissionError):
            raise _missing_permission(namespace, f"{probe}: {reply}")
        if isinstance(reply, Exception):
            raise ServerNotSupportedError(f"could not check the server's modules: {reply}")
    _check_permissions(namespace, denied)


def _missing_modules_message(client: redis.Redis, missing: list[str]) -> str:
    """Name what the server lacks and the fix for its version (asked only on this error path)."""
    try:
        version = str(client.info("server").get("redis_version", ""))
    except redis.RedisError:
        version = ""
    lacks = f"the {' and '.join(missing)} module{'s' if len(missing) > 1 else ''}"
    if version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 8:
        advice = (
            f"this Redis {version} was built or packaged without them: use the official redis:8 "
            "image or packages (modules included), or build with BUILD_WITH_MODULES=yes"
        )
    else:
        server = f"Redis {version}" if version else "this server"
        advice = f"{server} is not enough: this backend needs {SUPPORTED_SERVERS}"
    return f"the Redis server lacks {lacks}; {advice}. For development run `pynenc-redis-stack server start`."


def _acl_probe_args(namespace: str) -> list[str]:
    """The arguments of :data:`_ACL_PROBE`: every command of :data:`REQUIRED_COMMANDS` on a
    namespace key, each preceded by its length."""
    probe_key = _acl_probe_key(namespace)
    args: list[str] = []
    for command in REQUIRED_COMMANDS:
        args += [str(len(command)), *(probe_key if part == "{key}" else part for part in command)]
    return args


def _acl_probe_key(namespace: str) -> str:
    return f"{namespace}:acl-probe"


def _check_permissions(namespace: str, denied: Any) -> None:
    """Raise for what the ACL probe found refused (its reply, or the error refusing it)."""
    if isinstance(denied, redis.exceptions.NoPermissionError):
        raise _missing_permission(namespace, str(denied))
    if isinstance(denied, Exception):
        raise denied
    if denied:
        raise _missing_permission(
            namespace, f"refused {', '.join(denied)} on keys like {_acl_probe_key(namespace)!r}"
        )


def _missing_permission(namespace: str, refusal: str) -> MissingPermissionError:
    return MissingPermissionError(
        f"the Redis ACL user may not run what this backend needs ({refusal}). Grant it the "
        f"least-privilege rule for namespace {namespace!r}: "
        f"ACL SETUSER <user> on ><password> {acl_rule(namespace)}"
    )
