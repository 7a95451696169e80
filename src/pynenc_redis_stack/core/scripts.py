"""Server-side scripts: how a Lua script is sent, loaded on demand, and marked safe to re-send.

Each component keeps its Lua beside the code that calls it, as module-level constants whose
header comment describes ``KEYS`` and ``ARGV``, and one :class:`Script` per constant; this
module only runs them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
import redis
from redis.crc import key_slot

from pynenc_redis_stack.core.client import QueueKeeping, raise_server_error, register_repeatable_script, run

if TYPE_CHECKING:
    from redis import Redis


class Script:
    """A Lua script sent with ``EVALSHA``, loaded (``SCRIPT LOAD``) only when the server lacks it.

    Not redis-py's ``Script`` (``register_script``): that one needs a client to be made, and
    in a pipeline it sends ``SCRIPT EXISTS`` before every ``execute``, one more round trip on
    every pipelined write here (measured on redis-py 8.2: 2 round trips instead of 1,
    tests/integration/test_script_sending.py). Outside a pipeline both send the same commands.

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

    def run(self, client: Redis, keys: list[str], args: list[str]) -> Any:
        """Run the script on ``client``: one round trip unless the server lacks it.

        :return: The script's reply.
        """
        try:
            return run(client, *self.command(keys, args))
        except redis.exceptions.NoScriptError:
            # First use on this server (or after a restart / SCRIPT FLUSH).
            run(client, "SCRIPT", "LOAD", self.source)
            return run(client, *self.command(keys, args))

    def run_in(self, pipe: redis.client.Pipeline, keys: list[str], args: list[str]) -> list[Any]:
        """Execute ``pipe`` with this script appended; one round trip.

        On a pipeline of this package's clients (:class:`~pynenc_redis_stack.core.client.QueueKeeping`),
        a server that lacks the script costs a ``SCRIPT LOAD`` on the client that made the
        pipeline and a replay of the pipeline; on any other pipeline the source goes with every
        call (``SCRIPT LOAD`` queued before it), so calls queued earlier with :meth:`command`
        need this package's client.

        :return: The pipeline replies.
        """
        if not isinstance(pipe, QueueKeeping) or pipe.from_client is None:
            run(pipe, "SCRIPT", "LOAD", self.source)
            run(pipe, *self.command(keys, args))
            replies = pipe.execute(raise_on_error=False)
            del replies[-2]  # the SCRIPT LOAD's
            _raise_first_error(replies)
            return replies
        run(pipe, *self.command(keys, args))
        commands = list(pipe.queued)
        replies = pipe.execute(raise_on_error=False)
        if not any(isinstance(reply, redis.exceptions.NoScriptError) for reply in replies):
            _raise_first_error(replies)
            return replies
        # First use on this server (or after a restart / SCRIPT FLUSH; on a cluster, on one of
        # the nodes the calls went to): load, then replay.
        run(pipe.from_client, "SCRIPT", "LOAD", self.source)
        for command_args, options in commands:
            pipe.execute_command(*command_args, **options)  # type: ignore[no-untyped-call]
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
