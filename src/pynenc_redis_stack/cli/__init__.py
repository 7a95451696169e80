"""
Command line interface of pynenc-redis-stack (console script ``pynenc-redis-stack``).

The commands only parse arguments, call :mod:`pynenc_redis_stack.admin`, print its reports
and map errors to exit codes. Shared pieces for the verb group modules: here the exit codes,
the subparsers type, the handler of a group invoked without a verb, and the one place that
turns errors into exit codes (:func:`guarded`, honouring ``--traceback``); in
:mod:`~pynenc_redis_stack.cli.options` the configuration options, in
:mod:`~pynenc_redis_stack.cli.progress` the progress bar.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable

import redis

from pynenc_redis_stack.errors import AppImportError, RedisStackError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

type SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
type Handler = Callable[[argparse.Namespace], int]


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


def guarded(body: Handler) -> Handler:
    """Report configuration, connection and server errors as one line and exit code 1
    (2 for a bad ``--app``); with ``--traceback``, as the full traceback instead."""

    def handler(args: argparse.Namespace) -> int:
        try:
            return body(args)
        except AppImportError as exc:
            return _report(args, exc, EXIT_USAGE)
        except (RedisStackError, redis.RedisError, ValueError, OSError) as exc:
            return _report(args, exc, EXIT_FAILURE)

    return handler


def _report(args: argparse.Namespace, error: Exception, code: int) -> int:
    if getattr(args, "traceback", False):
        traceback.print_exception(error, file=sys.stderr)
        return code
    return fail(str(error), code)
