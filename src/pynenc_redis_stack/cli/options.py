"""The options every server command shares: where the configuration comes from (as pynenc
resolves it) and the overrides, parsed into the backend configuration; and the number types
of the options."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pynenc_redis_stack.admin import load_config, resolve_app_id
from pynenc_redis_stack.cli import verb_options
from pynenc_redis_stack.core.conf import ConfigStateBackendRedisStack


def connection_options(*, app_id: bool = False) -> argparse.ArgumentParser:
    """The configuration options (argparse parent) of ``index``, ``import-redis`` and ``prune``.

    :param app_id: Also take ``--app-id`` (commands that work on one app's documents).
    """
    common = argparse.ArgumentParser(add_help=False, parents=[verb_options()])
    group = common.add_argument_group("connection and configuration (as pynenc resolves them)")
    if app_id:
        group.add_argument(
            "--app-id", help="the pynenc app id (default: --app's id, else the configured app_id)"
        )
    group.add_argument(
        "--app",
        help="pynenc app whose configuration is used: module.path:variable, or pynenc's --app forms",
    )
    group.add_argument(
        "--url", help="Redis Stack URL, e.g. redis://localhost:6379/0 (overrides the configuration)"
    )
    group.add_argument("--config-file", help="pynenc config file (YAML, TOML or JSON)")
    group.add_argument("--namespace", help="redis_stack_namespace (overrides the configuration)")
    return common


def add_batch_size(command: argparse.ArgumentParser, default: int, unit: str) -> None:
    """Add ``--batch-size`` (a positive integer) to ``command``: ``unit`` per batch."""
    command.add_argument(
        "--batch-size", type=positive_int, default=default, help=f"{unit} per batch (default {default})"
    )


def config_from_args(args: argparse.Namespace) -> ConfigStateBackendRedisStack:
    """Return the backend configuration the options describe."""
    return load_config(url=args.url, app=args.app, config_file=args.config_file, namespace=args.namespace)


def app_id_from_args(args: argparse.Namespace) -> str:
    """Return ``--app-id``, else the ``--app``'s id, else the configured ``app_id``."""
    return resolve_app_id(args.app_id, args.app, args.config_file)


def _number[N: (int, float)](value: str, convert: Callable[[str], N], noun: str) -> N:
    try:
        return convert(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {noun}: {value!r}") from None


def positive_int(value: str) -> int:
    """Parse a positive integer for argparse."""
    number = _number(value, int, "an integer")
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return number


def positive_float(value: str) -> float:
    """Parse a positive number of seconds for argparse."""
    number = _number(value, float, "a number")
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return number


def port_number(value: str) -> int:
    """Parse a TCP port (1-65535) for argparse."""
    port = _number(value, int, "a port number")
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port out of range 1-65535: {port}")
    return port
