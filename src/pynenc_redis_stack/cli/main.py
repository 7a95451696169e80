"""
Entry point of the ``pynenc-redis-stack`` command.

Each verb group lives in its own module exposing ``add_parser(subparsers)``;
it registers the group and sets ``handler`` (``args -> exit code``) on every
verb. Add a group by appending its ``add_parser`` to ``GROUPS``.

Exit codes: 0 ok, 1 server or runtime failure, 2 bad input, 141 stdout closed by its reader
(``| head``: the output stops quietly). Errors print as one line;
``--traceback`` (after any verb, or before the group: ``pynenc-redis-stack --traceback index
migrate``) prints the full traceback instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version

from pynenc_redis_stack.cli import (
    EXIT_USAGE,
    TRACEBACK_HELP,
    Handler,
    SubParsers,
    import_commands,
    index_commands,
    prune_commands,
    query_commands,
    raw_commands,
    server_commands,
)

GROUPS: tuple[Callable[[SubParsers], None], ...] = (
    server_commands.add_parser,
    index_commands.add_parser,
    import_commands.add_parser,
    prune_commands.add_parser,
    query_commands.add_parser,
    raw_commands.add_parser,
)


def build_parser() -> argparse.ArgumentParser:
    """
    Build the argument parser with every verb group registered.

    :return: The top-level parser.
    """
    parser = argparse.ArgumentParser(
        prog="pynenc-redis-stack",
        description="Tools for pynenc-redis-stack: the embedded server, the indexes, ad-hoc "
        "queries, raw commands, retention and the import from pynenc-redis.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('pynenc-redis-stack')}")
    parser.add_argument("--traceback", action="store_true", help=TRACEBACK_HELP)
    subparsers = parser.add_subparsers(dest="group", metavar="<group>")
    for register in GROUPS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line.

    :param argv: Arguments without the program name; ``sys.argv[1:]`` if None.
    :return: The process exit code.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits on --help (0) and on usage errors (2); return instead
        # so that main() can be called in-process.
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code = handler(args)
        sys.stdout.flush()  # a pipe closed early fails here, not at interpreter exit
    except BrokenPipeError:
        return closed_output()
    return code


def closed_output() -> int:
    """The reader of stdout went away (``| head``): stop quietly, as a command killed by
    SIGPIPE would. stdout points at /dev/null afterwards, so the interpreter's last flush
    cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
