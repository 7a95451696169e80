r"""Quoting and splitting ``redis-cli`` lines: what ``--dry-run`` prints, and what a
``Request.redis_cli()`` shows, pasted into ``redis-cli`` gives back the exact arguments; and
printing a reply as ``redis-cli`` prints it at a terminal (:func:`format_reply`) or with
``--raw`` (:func:`format_raw_reply`), for the ``pynenc-redis-stack cli`` command.

Hand-written because redis-py only sends argument lists and Python's ``shlex`` follows POSIX
shell rules, not hiredis ``sdssplitargs`` (``\xHH`` and ``\n`` escapes inside double quotes,
``\'`` inside single quotes, a closing quote must be followed by a space).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pynenc_redis_stack.core.errors import QueryError

_CLI_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\a": "\\a", "\b": "\\b"}
_CLI_UNESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b"}


def redis_cli_quote(arg: str) -> str:
    r"""Quote one argument the way ``redis-cli`` splits lines (hiredis ``sdssplitargs``).

    Arguments without spaces, quotes, backslashes or control characters stay bare; others are
    double-quoted with ``\\``, ``\"``, ``\n``-style and ``\xHH`` escapes.
    """
    if arg and not any(c in " \"'\\" or ord(c) < 32 or ord(c) == 127 for c in arg):
        return arg
    out = []
    for char in arg:
        if char in _CLI_ESCAPES:
            out.append(_CLI_ESCAPES[char])
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def redis_cli_line(args: Sequence[str]) -> str:
    """Return a command as one ``redis-cli`` input line."""
    return " ".join(redis_cli_quote(arg) for arg in args)


def split_redis_cli_line(line: str) -> list[str]:
    """Split a line as ``redis-cli`` does (the inverse of :func:`redis_cli_line`).

    Used to replay printed commands where no ``redis-cli`` binary runs (tests).
    """
    args: list[str] = []
    position, length = 0, len(line)
    while True:
        while position < length and line[position].isspace():
            position += 1
        if position >= length:
            return args
        current: list[str] = []
        quote = line[position] if line[position] in "\"'" else ""
        position += 1 if quote else 0
        while True:
            if position >= length:
                if quote:
                    raise QueryError(f"unbalanced quotes in {line!r}")
                break
            char = line[position]
            if quote == '"' and char == "\\" and position + 1 < length:
                following = line[position + 1]
                if (
                    following == "x"
                    and position + 3 < length
                    and all(c in "0123456789abcdefABCDEF" for c in line[position + 2 : position + 4])
                ):
                    current.append(chr(int(line[position + 2 : position + 4], 16)))
                    position += 4
                    continue
                current.append(_CLI_UNESCAPES.get(following, following))
                position += 2
                continue
            if quote == "'" and char == "\\" and line[position + 1 : position + 2] == "'":
                current.append("'")
                position += 2
                continue
            if quote and char == quote:
                position += 1
                if position < length and not line[position].isspace():
                    raise QueryError(f"closing quote must be followed by a space in {line!r}")
                break
            if not quote and char.isspace():
                break
            current.append(char)
            position += 1
        args.append("".join(current))


class Status(bytes):
    """A status reply (``+OK``): ``redis-cli`` prints it without quotes."""


class ErrorReply(bytes):
    """An error reply (``-ERR ...``), kept whole (code included) to print as ``redis-cli`` does."""


def _repr_bytes(value: bytes) -> str:
    r"""``value`` quoted as hiredis ``sdscatrepr`` does: printable ASCII as is, ``\\`` ``\"``
    and control characters escaped, every other byte as ``\xHH``."""
    out = ['"']
    for byte in value:
        char = chr(byte)
        if char in _CLI_ESCAPES:
            out.append(_CLI_ESCAPES[char])
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    out.append('"')
    return "".join(out)


def format_reply(reply: Any, prefix: str = "") -> str:
    r"""Return ``reply`` (RESP2, bytes undecoded) as ``redis-cli`` prints it at a terminal
    (``cliFormatReplyTTY``), ending with a newline: ``(integer) 3``, ``(nil)``, quoted
    strings, ``(error) ...``, numbered and indented arrays."""
    if reply is None:
        return "(nil)\n"
    if isinstance(reply, ErrorReply):
        return f"(error) {reply.decode('utf-8', 'replace')}\n"
    if isinstance(reply, Status):
        return reply.decode("utf-8", "replace") + "\n"
    if isinstance(reply, int):
        return f"(integer) {reply}\n"
    if isinstance(reply, bytes):
        return _repr_bytes(reply) + "\n"
    if isinstance(reply, list):
        if not reply:
            return "(empty array)\n"
        width = len(str(len(reply)))
        nested = prefix + " " * (width + 2)
        parts = []
        for index, element in enumerate(reply, start=1):
            # the first element follows its parent's number on the same line
            parts.append(f"{'' if index == 1 else prefix}{index:>{width}}) ")
            parts.append(format_reply(element, nested))
        return "".join(parts)
    raise TypeError(f"not a RESP2 reply: {reply!r}")


def format_raw_reply(reply: Any) -> bytes:
    """Return ``reply`` as ``redis-cli --raw`` prints it (``cliFormatReplyRaw``, then a
    newline): strings and statuses as their bytes, integers as digits, nil as nothing, an
    error as its message, array elements one per line."""

    def raw(part: Any) -> bytes:
        if part is None:
            return b""
        if isinstance(part, ErrorReply):
            return bytes(part) + b"\n"
        if isinstance(part, bytes):
            return bytes(part)
        if isinstance(part, int):
            return str(part).encode()
        if isinstance(part, list):
            return b"\n".join(raw(element) for element in part)
        raise TypeError(f"not a RESP2 reply: {part!r}")

    return raw(reply) + b"\n"
