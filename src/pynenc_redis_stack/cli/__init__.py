"""
Command line interface of pynenc-redis-stack (console script ``pynenc-redis-stack``).

Shared pieces for the verb group modules: exit codes, the subparsers type and
the handler of a group invoked without a verb.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

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
