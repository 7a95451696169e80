"""
Command line interface of pynenc-redis-stack (console script ``pynenc-redis-stack``).

The commands only parse arguments, call :mod:`pynenc_redis_stack.admin`, print its reports
and map errors to exit codes. Shared pieces for the verb group modules: here the exit codes,
the subparsers type, verb groups (:func:`add_group`), the ``--traceback`` option every verb
takes (:func:`verb_options`), the one place that turns errors into exit codes
(:func:`guarded`, honouring ``--traceback``) and the tables the reports print
(:func:`format_table`); in :mod:`~pynenc_redis_stack.cli.options` the configuration options,
in :mod:`~pynenc_redis_stack.cli.progress` the progress bar.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Collection, Sequence

import redis

from pynenc_redis_stack.core.errors import AppImportError, RedisStackError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

type SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
type Handler = Callable[[argparse.Namespace], int]


TRACEBACK_HELP = "on an error, print the traceback instead of one line"


def verb_options() -> argparse.ArgumentParser:
    """The options every verb takes (argparse parent): ``--traceback``, which may also stand
    before the group (``pynenc-redis-stack --traceback index migrate``)."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: absent after the verb, it leaves the value parsed before the group as it was.
    common.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS, help=TRACEBACK_HELP)
    return common


def add_group(subparsers: SubParsers, name: str, help: str) -> SubParsers:
    """
    Register the verb group ``name``, which prints its help when invoked without a verb.

    :param subparsers: The top-level subparsers of the CLI.
    :param name: The group's name on the command line.
    :param help: One line for the top-level help.
    :return: The subparsers to register the group's verbs on.
    """
    group = subparsers.add_parser(name, help=help)
    # Verb handlers override this one; it only runs for the bare group.
    group.set_defaults(handler=usage_handler(group))
    return group.add_subparsers(dest="verb", metavar="<verb>")


def format_table(rows: Sequence[Sequence[str]], right_aligned: Collection[int] = ()) -> list[str]:
    """
    Return ``rows`` as lines of columns two spaces apart, as wide as their widest cell.

    :param rows: The header, then the data rows (all of the same length).
    :param right_aligned: Indexes of the columns aligned right (numbers, and their header).
    :return: One line per row, without trailing spaces.
    """
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(widths[column]) if column in right_aligned else cell.ljust(widths[column])
            for column, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def usage_handler(parser: argparse.ArgumentParser) -> Handler:
    """
    Build the handler of a verb group invoked without a verb.

    :param parser: The group's parser.
    :return: A handler printing the group's help and returning ``EXIT_USAGE``.
    """

    def handler(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    return handler


def fail(message: str, code: int = EXIT_FAILURE) -> int:
    """Print ``message`` on stderr; return ``code``."""
    print(f"pynenc-redis-stack: {message}", file=sys.stderr)
    return code


CONNECTION_HINT = (
    "Give the server with --url or PYNENC__REDIS_STACK_URL (else PYNENC__REDIS_URL, or the "
    "settings of --app / --config-file are used); `pynenc-redis-stack server start` starts a local one"
)


def guarded(body: Handler) -> Handler:
    """Report configuration, connection and server errors as one line and exit code 1
    (2 for a bad ``--app``); with ``--traceback``, as the full traceback instead. A closed
    output pipe (``| head``) is not an error here: :func:`main` ends quietly."""

    def handler(args: argparse.Namespace) -> int:
        try:
            return body(args)
        except BrokenPipeError:
            raise
        except AppImportError as exc:
            return _report(args, exc, EXIT_USAGE)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            return _report(args, exc, EXIT_FAILURE, hint=CONNECTION_HINT)
        except (RedisStackError, redis.RedisError, ValueError, OSError) as exc:
            return _report(args, exc, EXIT_FAILURE)

    return handler


def _report(args: argparse.Namespace, error: Exception, code: int, hint: str = "") -> int:
    if getattr(args, "traceback", False):
        traceback.print_exception(error, file=sys.stderr)
        return code
    message = " ".join(str(error).split())  # one line, whatever the server or library sent
    return fail(f"cannot reach the server ({message.rstrip('.')}). {hint}." if hint else message, code)
