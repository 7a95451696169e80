"""
``pynenc-redis-stack cli <command> [args]``: send one raw command over the configured
connection and print the reply as ``redis-cli`` prints it at a terminal, so the README's
cookbook and the commands ``query --explain`` prints run where no ``redis-cli`` does.

Without a command, each line of stdin is one command, split as ``redis-cli`` splits what is
typed at its prompt (``query ... --explain | pynenc-redis-stack cli``).

The reply is read by :class:`TypedReplyParser`, which keeps what redis-py's parser forgets
(a status reply is not a string; an error reply keeps its code), so the output is
``redis-cli``'s byte for byte.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import redis
from redis._parsers.resp2 import _RESP2Parser
from redis._parsers.socket import SERVER_CLOSED_CONNECTION_ERROR
from redis.utils import SENTINEL

from pynenc_redis_stack.cli import EXIT_FAILURE, EXIT_OK, SubParsers, guarded
from pynenc_redis_stack.cli.options import config_from_args, connection_options
from pynenc_redis_stack.core.command_line import (
    ErrorReply,
    Status,
    format_raw_reply,
    format_reply,
    split_redis_cli_line,
)
from pynenc_redis_stack.core.connection import get_client


class TypedReplyParser(_RESP2Parser):
    """redis-py's RESP2 parser, except that replies keep their type: a status reply is a
    :class:`Status`, an error reply an :class:`ErrorReply` (returned, not raised), strings
    stay bytes."""

    def _read_response(self, disable_decoding: bool = False, timeout: float | object = SENTINEL) -> Any:
        buffer = self._buffer
        if buffer is None:  # the connection was closed
            raise redis.ConnectionError(SERVER_CLOSED_CONNECTION_ERROR)
        raw = buffer.readline(timeout=timeout)
        if not raw:
            raise redis.ConnectionError(SERVER_CLOSED_CONNECTION_ERROR)
        kind, rest = raw[:1], raw[1:]
        if kind == b"-":
            return ErrorReply(rest)
        if kind == b"+":
            return Status(rest)
        if kind == b":":
            return int(rest)
        if kind in (b"$", b"*") and rest == b"-1":
            return None
        if kind == b"$":
            return buffer.read(int(rest), timeout=timeout)
        if kind == b"*":
            return [self._read_response(timeout=timeout) for _ in range(int(rest))]
        raise redis.exceptions.InvalidResponse(f"Protocol Error: {raw!r}")


def raw_connection_pool(configured: redis.ConnectionPool) -> redis.ConnectionPool:
    """A pool with ``configured``'s address, credentials and TLS whose replies keep their type."""
    options = {**configured.connection_kwargs, "parser_class": TypedReplyParser, "decode_responses": False}
    return redis.ConnectionPool(connection_class=configured.connection_class, **options)


def send(client: redis.Redis, args: list[str]) -> Any:
    """Send ``args`` as one command on ``client``'s connection settings; return the typed reply."""
    pool = raw_connection_pool(client.connection_pool)
    connection = pool.get_connection()
    try:
        connection.send_command(*args)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        return connection.read_response()
    finally:
        pool.release(connection)
        pool.disconnect()


@guarded
def _cli(args: argparse.Namespace) -> int:
    client = get_client(config_from_args(args))
    if args.command:
        commands = [list(args.command)]
    else:
        commands = [split_redis_cli_line(line) for line in sys.stdin if line.strip()]
    failed = False
    for command in commands:
        reply = send(client, command)
        failed = failed or isinstance(reply, ErrorReply)
        if args.raw:  # bytes as the server sent them, whatever their encoding
            sys.stdout.flush()
            sys.stdout.buffer.write(format_raw_reply(reply))
        else:
            sys.stdout.write(format_reply(reply))
    return EXIT_FAILURE if failed else EXIT_OK


def add_parser(subparsers: SubParsers) -> None:
    """
    Register the ``cli`` command.

    :param subparsers: The top-level subparsers of the CLI.
    """
    command = subparsers.add_parser(
        "cli",
        parents=[connection_options()],
        help="send one raw command and print the reply as redis-cli does",
        description="Send one raw command (e.g. FT.INFO pynenc:invocations) over the configured "
        "connection and print the reply as redis-cli prints it at a terminal (with --raw, as "
        "redis-cli --raw does); exit 1 on an "
        "error reply. The options come before the command. Without a command, each line of "
        "stdin is a command, split as redis-cli splits a line typed at its prompt.",
    )
    command.add_argument(
        "--raw",
        action="store_true",
        help="print as redis-cli --raw does (strings bare, one element per line)",
    )
    command.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG ...]")
    command.set_defaults(handler=_cli)
