"""The options every server command shares: where the configuration comes from (as pynenc
resolves it) and the overrides, parsed into the backend configuration."""

from __future__ import annotations

import argparse

from pynenc_redis_stack.admin import load_config, resolve_app_id
from pynenc_redis_stack.conf import ConfigStateBackendRedisStack


def connection_options(*, app_id: bool = False) -> argparse.ArgumentParser:
    """The configuration options (argparse parent) of ``index``, ``import-redis`` and ``prune``.

    :param app_id: Also take ``--app-id`` (commands that work on one app's documents).
    """
    common = argparse.ArgumentParser(add_help=False)
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


def config_from_args(args: argparse.Namespace) -> ConfigStateBackendRedisStack:
    """Return the backend configuration the options describe."""
    return load_config(url=args.url, app=args.app, config_file=args.config_file, namespace=args.namespace)


def app_id_from_args(args: argparse.Namespace) -> str:
    """Return ``--app-id``, else the ``--app``'s id, else the configured ``app_id``."""
    return resolve_app_id(args.app_id, args.app, args.config_file)


def positive_int(value: str) -> int:
    """Parse a positive integer for argparse."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return number


def positive_float(value: str) -> float:
    """Parse a positive number of seconds for argparse."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return number
