"""Server-side scripts: how a Lua script is sent, loaded on demand, and marked safe to re-send.

Each component keeps its own Lua beside the code that calls it; this module only runs it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
import redis
from redis.crc import key_slot

from pynenc_redis_stack.core.client import raise_server_error, register_repeatable_script, run

if TYPE_CHECKING:
    from redis import Redis
    from redis.commands.core import Script as RegisteredScript


class Script:
    """A Lua script sent with ``EVALSHA``, loaded on demand.

    Unlike redis-py's ``Script`` on a pipeline, this adds no ``SCRIPT EXISTS`` round trip.

    :param repeatable: Running it twice with the same keys and arguments changes nothing, so
        the client may send it again when the reply was lost (see :mod:`pynenc_redis_stack.core.client`).
    """

    def __init__(self, source: str, *, repeatable: bool = False) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        if repeatable:
            register_repeatable_script(self.sha)

    def command(self, keys: list[str], args: list[str]) -> list[Any]:
        """Return the ``EVALSHA`` command for ``keys`` and ``args``."""
        return ["EVALSHA", self.sha, str(len(keys)), *keys, *args]

    def run_in(self, pipe: redis.client.Pipeline, keys: list[str], args: list[str]) -> list[Any]:
        """Execute ``pipe`` with this script appended; one round trip unless the server lost it.

        :return: The pipeline replies.
        """
        run(pipe, *self.command(keys, args))
        commands = list(pipe.command_stack)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        if not any(isinstance(reply, redis.exceptions.NoScriptError) for reply in replies):
            _raise_first_error(replies)
            return replies
        # First use on this server (or after a restart / SCRIPT FLUSH; on a cluster, on one of
        # the nodes the calls went to): load, then replay.
        run(pipe, "SCRIPT", "LOAD", self.source)
        pipe.execute()
        for command_args, _options in commands:
            run(pipe, *command_args)
        replies = pipe.execute(raise_on_error=False)
        _raise_first_error(replies)
        return replies


class SlotCalls:
    """Calls of one script, one per hash slot, sent in one pipeline: each call touches one
    slot (what a cluster allows), and what one call does stays atomic.

    :meth:`add` takes one unit of keys (all in one slot: the slot of its first key) and its
    arguments; units of the same slot join one call, in the order added.
    """

    def __init__(self, script: Script, shared_args: Sequence[str] = ()) -> None:
        self.script = script
        self.shared_args = list(shared_args)
        """The arguments every call starts with, before its units' own."""
        self.calls: dict[int, tuple[list[str], list[str]]] = {}
        self.units = 0

    def add(self, keys: Sequence[str], args: Sequence[str]) -> None:
        call_keys, call_args = self.calls.setdefault(key_slot(keys[0].encode()), ([], list(self.shared_args)))
        call_keys.extend(keys)
        call_args.extend(args)
        self.units += 1

    def __len__(self) -> int:
        return self.units

    def run_in(self, pipe: redis.client.Pipeline) -> list[Any]:
        """Execute ``pipe`` with one script call per slot appended (see :meth:`Script.run_in`).

        :return: The pipeline replies (the script calls' last, one per slot).
        """
        *first, (last_keys, last_args) = self.calls.values()
        for keys, args in first:
            run(pipe, *self.script.command(keys, args))
        return self.script.run_in(pipe, last_keys, last_args)


def _raise_first_error(replies: list[Any]) -> None:
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            raise_server_error(reply)
        if isinstance(reply, Exception):
            raise reply


def json_text(value: object) -> str:
    """Return ``value`` as JSON text, for values a script splices into documents."""
    return orjson.dumps(value).decode()


def call(script: RegisteredScript, client: Redis, keys: list[str], args: list[str]) -> Any:
    """Run ``script`` (``EVALSHA``, loading it first if the server does not have it)."""
    return script(keys=keys, args=args, client=client)
