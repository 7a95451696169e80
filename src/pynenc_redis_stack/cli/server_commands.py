"""
``pynenc-redis-stack server ...``: manage the embedded Redis Stack.

Verbs: ``start [--port N] [--no-persist]``, ``stop``, ``status``, ``url``;
all accept ``--data-dir D`` (default ``$PYNENC_REDIS_STACK_HOME``, else the
user cache dir).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pynenc_redis_stack.cli import EXIT_FAILURE, EXIT_OK, SubParsers, add_group, fail, guarded, verb_options
from pynenc_redis_stack.cli.options import port_number
from pynenc_redis_stack.server import EmbeddedRedisStack, ServerStatus


def add_parser(subparsers: SubParsers) -> None:
    """
    Register the ``server`` verb group.

    :param subparsers: The top-level subparsers of the CLI.
    """
    common = argparse.ArgumentParser(add_help=False, parents=[verb_options()])
    common.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="server data directory (default: $PYNENC_REDIS_STACK_HOME or ~/.cache/pynenc-redis-stack)",
    )
    verbs = add_group(subparsers, "server", help="run a local Redis Stack (Redis + RediSearch + RedisJSON)")

    start = verbs.add_parser("start", parents=[common], help="start the server and print its URL")
    start.add_argument("--port", type=port_number, default=None, help="port on 127.0.0.1 (default: free)")
    start.add_argument(
        "--no-persist",
        dest="persist",
        action="store_false",
        help="keep data in memory only (lost on stop)",
    )
    start.set_defaults(handler=_start)

    verbs.add_parser("stop", parents=[common], help="stop the server").set_defaults(handler=_stop)
    verbs.add_parser(
        "status", parents=[common], help="show the server state (exit 1 if stopped)"
    ).set_defaults(handler=_status)
    verbs.add_parser("url", parents=[common], help="print the server URL (exit 1 if stopped)").set_defaults(
        handler=_url
    )


def _stack(args: argparse.Namespace, persistent: bool = True) -> EmbeddedRedisStack:
    """
    :param args: Parsed arguments.
    :param persistent: Whether a started server keeps its data.
    :return: The server bound to the requested data directory.
    """
    return EmbeddedRedisStack(args.data_dir, persistent=persistent)


@guarded
def _start(args: argparse.Namespace) -> int:
    """Start the server; print its URL."""
    print(_stack(args, persistent=args.persist).start(port=args.port))
    return EXIT_OK


@guarded
def _stop(args: argparse.Namespace) -> int:
    """Stop the server; not running is not an error (stop is idempotent)."""
    stopped = _stack(args).stop()
    print("stopped" if stopped else "not running")
    return EXIT_OK


def _format_status(status: ServerStatus) -> list[str]:
    """
    :param status: Server status.
    :return: One ``key: value`` line per fact.
    """
    lines = [
        f"running: {'yes' if status.running else 'no'}",
        f"data_dir: {status.data_dir}",
    ]
    if status.running:
        lines += [
            f"url: {status.url}",
            f"pid: {status.pid}",
            f"port: {status.port}",
            f"version: {status.version}",
        ]
        lines += [f"module: {name} {ver}" for name, ver in status.modules.items()]
    return lines


@guarded
def _status(args: argparse.Namespace) -> int:
    """Print the server status; exit 1 when it is not running."""
    status = _stack(args).status()
    print("\n".join(_format_status(status)))
    return EXIT_OK if status.running else EXIT_FAILURE


@guarded
def _url(args: argparse.Namespace) -> int:
    """Print just the URL; exit 1 when the server is not running."""
    url = _stack(args).url()
    if url is None:
        return fail("server not running (start it with: pynenc-redis-stack server start)")
    print(url)
    return EXIT_OK
