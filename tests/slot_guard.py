"""Slot guard: a pytest plugin that checks every command this package's clients send against
what a Redis cluster allows, on the ordinary single test server.

A cluster refuses (or, for some multi-key module commands, silently answers partially):

- a multi-key command, script or ``MULTI`` transaction whose keys span hash slots;
- a key a script touches without declaring it in ``KEYS`` (a single-node cluster does not
  catch this for scripts without a ``#!lua`` shebang, which run in compatibility mode, nor
  for undeclared keys of the declared slot: checked on Redis Stack 7.4's server);
- ``FT.*`` inside a script or ``MULTI`` (Redis 8's coordinator: "Cannot perform FT.SEARCH:
  Cannot block"; a search module without coordinator accepts it).

How: single commands and pipelines of :class:`~pynenc_redis_stack.core.client.Client` are checked
below the retry layer (redis-py's ``Redis.execute_command``/``Pipeline.execute`` for this
package's clients only). A script is sent instrumented, with ``redis.call``/``redis.pcall``
wrapped: each call's keys are compared with ``KEYS`` and ``FT.*`` is noted, and the script
returns ``{violations, its own reply}``, unwrapped here. ``EVALSHA``, ``EVAL`` and ``SCRIPT
LOAD`` stay what they were (of the instrumented source), so command counts and round trips are
those of an unguarded run. Index healing and retries still see the original command.

Use: loaded by tests/conftest.py, so every suite runs under it, strict (a violating command
fails). ``--slot-guard=record`` writes what violates to the terminal summary and
``--slot-guard-report`` (JSON) instead; ``--slot-guard=off`` sends commands unchecked. Runner
subprocesses the tests start are not guarded (only this process is).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.client
from redis.crc import key_slot

from pynenc_redis_stack.core.client import RetryingCommands, RetryingPipeline


class SlotGuardError(redis.ResponseError):
    """A command a cluster would refuse (strict mode)."""


@dataclass(frozen=True)
class Violation:
    kind: str
    operation: str
    command: str
    keys: tuple[str, ...]
    test: str


# -- keys of a command -------------------------------------------------------------------------

ALL_ARGS_ARE_KEYS = frozenset(
    {"DEL", "UNLINK", "EXISTS", "SINTER", "SUNION", "SDIFF", "MGET", "TOUCH", "WATCH"}
)
KEYLESS = frozenset(
    {"PING", "TIME", "INFO", "ECHO", "SCRIPT", "MULTI", "EXEC", "DISCARD", "UNWATCH", "CLIENT",
     "CONFIG", "COMMAND", "ACL", "MODULE", "DBSIZE", "FLUSHALL", "FLUSHDB", "SCAN", "WAIT", "HELLO"}
)  # fmt: skip


def command_keys(args: Sequence[Any]) -> list[str]:
    """The keys of one command, as a cluster routes it (FT.* counts as keyless: Redis 8's
    coordinator routes it to any node)."""
    name = str(args[0]).upper()
    if name in ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL"):
        return [str(key) for key in args[3 : 3 + int(args[2])]]
    if name.startswith("FT.") or name in KEYLESS or len(args) < 2:
        return []
    if name in ALL_ARGS_ARE_KEYS:
        return [str(key) for key in args[1:]]
    if name == "JSON.MGET":
        return [str(key) for key in args[1:-1]]
    if name == "JSON.MSET":
        return [str(key) for key in args[1::3]]
    return [str(args[1])]


def slots_of(keys: Iterable[str]) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


# -- scripts -----------------------------------------------------------------------------------

LUA_PRELUDE = r"""
local __declared = {}
for _, key in ipairs(KEYS) do __declared[key] = true end
local __violations = {}
local __all_keys = {DEL=1, UNLINK=1, EXISTS=1, SINTER=1, SUNION=1, SDIFF=1, MGET=1, TOUCH=1}
local __keyless = {TIME=1, PING=1, ECHO=1}
local function __check(command, ...)
  local name = string.upper(command)
  local args = {...}
  if string.sub(name, 1, 3) == 'FT.' then
    table.insert(__violations, 'FT:' .. name)
    return
  end
  if __keyless[name] or #args == 0 then return end
  local keys
  if __all_keys[name] then
    keys = args
  elseif name == 'JSON.MGET' then
    keys = {unpack(args, 1, #args - 1)}
  elseif name == 'JSON.MSET' then
    keys = {}
    for i = 1, #args, 3 do table.insert(keys, args[i]) end
  elseif name == 'RENAME' or name == 'SMOVE' or name == 'RPOPLPUSH' or name == 'LMOVE'
      or name == 'ZRANGESTORE' or name == 'COPY' then
    keys = {args[1], args[2]}
  else
    keys = {args[1]}
  end
  for _, key in ipairs(keys) do
    if not __declared[key] then table.insert(__violations, 'KEY:' .. name .. ' ' .. tostring(key)) end
  end
end
local function __guard_call(...) __check(...) return redis.call(...) end
local function __guard_pcall(...) __check(...) return redis.pcall(...) end
local function __body()
"""

LUA_EPILOGUE = """
end
local __result = __body()
return {__violations, __result}
"""


def instrumented(source: str) -> str:
    """``source`` with its redis calls checked (its shebang line kept first)."""
    shebang = ""
    if source.startswith("#!"):
        shebang, _, source = source.partition("\n")
        shebang += "\n"
    body = source.replace("redis.call(", "__guard_call(").replace("redis.pcall(", "__guard_pcall(")
    return shebang + LUA_PRELUDE + body + LUA_EPILOGUE


def script_loaded(args: Sequence[Any]) -> str | None:
    """The source of a ``SCRIPT LOAD`` (sent as ``SCRIPT``, ``LOAD``, source by this package,
    as ``SCRIPT LOAD``, source by redis-py), else None."""
    if len(args) not in (2, 3) or not str(args[0]).upper().startswith("SCRIPT"):
        return None
    words = " ".join(str(arg) for arg in args[:-1]).upper()
    return str(args[-1]) if words == "SCRIPT LOAD" else None


def _sha(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


# -- the guard ---------------------------------------------------------------------------------


class SlotGuard:
    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.violations: list[Violation] = []
        self.test = ""
        self.sources: dict[str, tuple[str, str]] = {}  # sha -> (name, source)
        self._scan_scripts()

    def _scan_scripts(self) -> None:
        """Learn the package's scripts (and redis-py's Lock scripts) by their module constants."""
        import redis.lock

        for module_name, module in list(sys.modules.items()):
            if not module_name.startswith("pynenc_redis_stack") or module is None:
                continue
            for name, value in vars(module).items():
                source = getattr(value, "source", value)  # a scripts.Script, or its text
                if isinstance(source, str) and "redis.call" in source:
                    self.sources.setdefault(_sha(source), (f"{module_name}.{name}", source))
        for name, value in vars(redis.lock.Lock).items():
            if isinstance(value, str) and "redis.call" in value:
                self.sources.setdefault(_sha(value), (f"redis.lock.Lock.{name}", value))

    def learn(self, source: str) -> None:
        self.sources.setdefault(_sha(source), (f"script {_sha(source)[:8]}", source))

    # -- recording

    def report(self, kind: str, args: Sequence[Any], keys: Sequence[str]) -> None:
        violation = Violation(kind, _operation(), self._command_name(args), tuple(keys[:6]), self.test)
        self.violations.append(violation)
        if self.strict:
            raise SlotGuardError(
                f"slot guard: {kind} in {violation.operation}: {violation.command} {list(keys)[:6]}"
            )

    def _command_name(self, args: Sequence[Any]) -> str:
        name = str(args[0]).upper()
        if name in ("EVALSHA", "EVAL"):
            source = str(args[1])
            sha = source if name == "EVALSHA" else _sha(source)
            return f"{name} {self.sources.get(sha, (f'unknown script {sha[:8]}', ''))[0]}"
        return name

    # -- checks

    def check(self, args: Sequence[Any], transaction: bool = False) -> None:
        keys = command_keys(args)
        if len(slots_of(keys)) > 1:
            self.report("keys span slots", args, keys)

    def check_transaction(self, stack: Sequence[Sequence[Any]]) -> None:
        keys = [key for args in stack for key in command_keys(args)]
        if len(slots_of(keys)) > 1:
            self.report("MULTI keys span slots", ["MULTI", *(str(args[0]) for args in stack)], keys)
        for args in stack:
            if str(args[0]).upper().startswith("FT."):
                self.report("FT.* inside MULTI", args, [])

    def rewrite_script(self, args: Sequence[Any]) -> tuple[Any, ...] | None:
        """The same command for the instrumented script: ``EVALSHA`` of its SHA for an
        ``EVALSHA``, ``EVAL`` of its source for an ``EVAL``, ``SCRIPT LOAD`` of its source for
        a ``SCRIPT LOAD``; None for any other command.

        The command stays the one sent, so ``INFO commandstats`` and round trips count as
        without the guard: the server caches an instrumented script exactly when the package
        loads the original (a ``NOSCRIPT`` reaches the package, which loads it through here).
        """
        name = str(args[0]).upper()
        loaded = script_loaded(args)
        if loaded is not None:
            self.learn(loaded)
            return (*args[:-1], instrumented(loaded))
        if name == "EVAL":
            self.learn(str(args[1]))
            sha = _sha(str(args[1]))
        elif name == "EVALSHA":
            sha = str(args[1])
        else:
            return None
        known = self.sources.get(sha)
        if known is None:
            self.report("script unknown to the guard (not checked inside)", args, command_keys(args))
            return None
        source = instrumented(known[1])
        return (name, source if name == "EVAL" else _sha(source), *args[2:])

    def unwrap(self, original: Sequence[Any], reply: Any) -> Any:
        if isinstance(reply, Exception):
            return reply
        violations, result = (reply[0], reply[1] if len(reply) > 1 else None)
        for entry in dict.fromkeys(violations):
            kind, _, detail = str(entry).partition(":")
            if kind == "FT":
                self.report("FT.* inside a script", original, [detail])
            else:
                self.report("undeclared key in a script", original, [detail])
        return result


HELPER_MODULES = ("pynenc_redis_stack.core.client",)


def _operation() -> str:
    """The package's frames that led to the command, outermost first (at most three)."""
    names: list[str] = []
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("pynenc_redis_stack") and module not in HELPER_MODULES:
            names.append(f"{module.removeprefix('pynenc_redis_stack.')}.{frame.f_code.co_name}")
        frame = frame.f_back  # type: ignore[assignment]
    return " > ".join(reversed(names[:3])) or "?"


# -- installation ------------------------------------------------------------------------------

GUARD: SlotGuard | None = None


def _guarded_execute_command(original: Callable[..., Any]) -> Callable[..., Any]:
    def execute_command(self: redis.Redis, *args: Any, **options: Any) -> Any:
        if GUARD is None or not isinstance(self, RetryingCommands):
            return original(self, *args, **options)
        GUARD.check(args)
        rewritten = GUARD.rewrite_script(args)
        if rewritten is None:
            return original(self, *args, **options)
        reply = original(self, *rewritten, **options)
        loaded = script_loaded(args)
        if loaded is not None:
            return _sha(loaded)  # the SHA the package asked to load
        result = GUARD.unwrap(args, reply)
        if isinstance(result, redis.ResponseError):
            raise result
        return result

    return execute_command


def _guarded_pipeline_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    def execute(self: redis.client.Pipeline, raise_on_error: bool = True) -> Any:
        if GUARD is None or not isinstance(self, RetryingPipeline):
            return original(self, raise_on_error)
        stack = [args for args, _options in self.command_stack]
        if self.transaction:  # type: ignore[truthy-function]  # the instance flag, not Redis.transaction()
            GUARD.check_transaction(stack)
        rewritten: dict[int, tuple[Any, ...]] = {}
        for index, (args, options) in enumerate(list(self.command_stack)):
            GUARD.check(args)
            new_args = GUARD.rewrite_script(args)
            if new_args is not None:
                rewritten[index] = args
                self.command_stack[index] = (new_args, options)
        replies = original(self, False)
        for index, args in rewritten.items():
            loaded = script_loaded(args)
            if loaded is not None:
                replies[index] = _sha(loaded)
            else:
                replies[index] = GUARD.unwrap(args, replies[index])
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies

    return execute


def _learn_scripts_made_later() -> None:
    """Scripts composed at run time (prepared reads, redis-py ``register_script``) are learnt
    when their object is made."""
    import redis.commands.core

    from pynenc_redis_stack.core import scripts

    for script_class, attribute in ((redis.commands.core.Script, "script"), (scripts.Script, "source")):
        made = script_class.__init__

        def init(
            self: Any, *args: Any, __made: Any = made, __attribute: str = attribute, **kwargs: Any
        ) -> None:
            __made(self, *args, **kwargs)
            if GUARD is not None:
                source = getattr(self, __attribute)
                GUARD.learn(source.decode() if isinstance(source, bytes) else str(source))

        script_class.__init__ = init  # type: ignore[method-assign]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("slot guard")
    group.addoption(
        "--slot-guard",
        choices=("off", "record", "strict"),
        default="strict",
        help="check every command of this package's clients against cluster rules (tests/slot_guard.py); "
        "strict (the default) fails the command, record lists what it finds, off sends commands unchecked",
    )
    group.addoption("--slot-guard-report", default="", help="write the violations found to this JSON file")


def pytest_configure(config: pytest.Config) -> None:
    global GUARD
    mode = config.getoption("--slot-guard")
    if mode == "off":
        return
    import pynenc_redis_stack.broker  # noqa: F401
    import pynenc_redis_stack.client_data_store  # noqa: F401
    import pynenc_redis_stack.orchestrator  # noqa: F401
    import pynenc_redis_stack.state_backend.backend  # noqa: F401  # load every script constant before scanning
    import pynenc_redis_stack.trigger  # noqa: F401

    GUARD = SlotGuard(strict=mode == "strict")
    _learn_scripts_made_later()
    redis.Redis.execute_command = _guarded_execute_command(redis.Redis.execute_command)  # type: ignore[method-assign]
    redis.client.Pipeline.execute = _guarded_pipeline_execute(redis.client.Pipeline.execute)  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    if GUARD is not None:
        GUARD.test = item.nodeid
    return (yield)


def summary(violations: Sequence[Violation]) -> list[dict[str, Any]]:
    """Violations grouped by (kind, operation, command), with a count and an example."""
    groups: dict[tuple[str, str, str], list[Violation]] = {}
    for violation in violations:
        groups.setdefault((violation.kind, violation.operation, violation.command), []).append(violation)
    return [
        {
            "kind": kind,
            "operation": operation,
            "command": command,
            "count": len(found),
            "example": asdict(found[0]),
        }
        for (kind, operation, command), found in sorted(groups.items())
    ]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if GUARD is None:
        return
    grouped = summary(GUARD.violations)
    terminalreporter.section(f"slot guard: {len(GUARD.violations)} violation(s), {len(grouped)} kind(s)")
    for group in grouped:
        terminalreporter.write_line(
            f"{group['count']:6d}  {group['kind']}: {group['operation']} -> {group['command']}"
            f"  e.g. {list(group['example']['keys'])[:3]}"
        )
    path = config.getoption("--slot-guard-report")
    if path:
        Path(path).write_text(json.dumps(grouped, indent=2))
