"""
``pynenc-redis-stack import-redis``: copy one app's pynenc-redis 0.3.0 state into Redis Stack.

The target (server, namespace) comes from the configuration the way pynenc resolves it
(``--app module.path:variable``, ``--config-file``, ``PYNENC__...`` environment variables) with
``--url`` and ``--namespace`` overrides; the source is ``--source-url``, else where
pynenc-redis would read with that configuration (``redis_url``, else host/port/db). The app
is ``--app-id``, else the ``--app``'s id, else the configured ``app_id``.

Also home of what the ``import-redis`` and ``prune`` commands share: those options, the app
id resolution and the progress bar.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

import redis

from pynenc_redis_stack.cli import EXIT_FAILURE, EXIT_OK, SubParsers, fail, guarded
from pynenc_redis_stack.cli.index_commands import import_app, load_config
from pynenc_redis_stack.client import redacted_url
from pynenc_redis_stack.conf import ConfigStateBackendRedisStack
from pynenc_redis_stack.importer import DEFAULT_BATCH_SIZE, KINDS, ImportReport, import_from_redis

MAX_LISTED = 20
"""Unrecognized keys and errors printed one per line; the rest are counted."""


class ProgressBar:
    """A progress bar on a stream: redrawn in place on a terminal, otherwise one line each
    time another tenth is done (so logs stay short).

    :param stream: Where to draw (stderr in the CLI).
    :param label: Text before the bar.
    :param width: Characters of the bar.
    """

    def __init__(self, stream: TextIO, label: str, width: int = 30) -> None:
        self.stream = stream
        self.label = label
        self.width = width
        self.tty = stream.isatty()
        self._last_step: int | None = None
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        """Draw ``done`` out of ``total``."""
        fraction = min(done / total, 1.0) if total else 1.0
        filled = int(fraction * self.width)
        line = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {int(fraction * 100):3d}% {done}/{total}"
        if self.tty:
            self.stream.write("\r" + line)
            self.stream.flush()
            self._drawn = True
            return
        step = int(fraction * 10)
        if step != self._last_step:
            self._last_step = step
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """End the bar (a newline on a terminal)."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = False


def connection_options() -> argparse.ArgumentParser:
    """The configuration options of ``import-redis`` and ``prune`` (argparse parent)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("app, connection and configuration (as pynenc resolves them)")
    group.add_argument("--app-id", help="the pynenc app id (default: --app's id, else the configured app_id)")
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


def positive_int(value: str) -> int:
    """Parse a positive integer for argparse."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return number


def config_from_args(args: argparse.Namespace) -> ConfigStateBackendRedisStack:
    """Return the backend configuration the options describe."""
    return load_config(url=args.url, app=args.app, config_file=args.config_file, namespace=args.namespace)


def app_id_from_args(args: argparse.Namespace) -> str:
    """Return ``--app-id``, else the ``--app``'s id, else the configured ``app_id`` (pynenc's
    resolution: config file, ``PYNENC__APP_ID``, default ``pynenc``)."""
    if args.app_id:
        return str(args.app_id)
    if args.app:
        return str(import_app(args.app).app_id)
    from pynenc.conf.config_pynenc import ConfigPynenc

    return str(ConfigPynenc(config_filepath=args.config_file).app_id)


def source_client(conf: ConfigStateBackendRedisStack, source_url: str | None) -> tuple[redis.Redis, str]:
    """Return a client on the pynenc-redis server and a printable description of it (its URL
    with the password masked).

    Without ``source_url``: where pynenc-redis reads with this configuration (its
    ``redis_url``, else host, port and db); ``redis_stack_url`` is ours only.
    """
    url = source_url or str(conf.redis_url or "")
    if url:
        return redis.Redis.from_url(url, protocol=2, decode_responses=True), redacted_url(url)
    client = redis.Redis(
        host=conf.redis_host,
        port=conf.redis_port,
        db=conf.redis_db,
        username=conf.redis_username or None,
        password=conf.redis_password or None,
        protocol=2,
        decode_responses=True,
    )
    return client, f"redis://{conf.redis_host}:{conf.redis_port}/{conf.redis_db}"


def format_import(report: ImportReport) -> list[str]:
    """Return the table ``import-redis`` prints: one line per kind."""
    header = ("KIND", "FOUND") if report.dry_run else ("KIND", "FOUND", "WRITTEN")
    rows = [header]
    for kind in KINDS:
        row = (kind, str(report.found[kind]))
        rows.append(row if report.dry_run else (*row, str(report.written[kind])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    if report.unchanged:
        lines.append(f"history entries already imported, left as they were: {report.unchanged}")
    lines.append(f"derived keys (sets rebuilt by the indexes, not copied): {report.derived_keys}")
    return lines


def _listed(title: str, items: Sequence[str]) -> list[str]:
    lines = [f"{title}: {len(items)}"]
    lines.extend(f"  {item}" for item in items[:MAX_LISTED])
    if len(items) > MAX_LISTED:
        lines.append(f"  ... and {len(items) - MAX_LISTED} more")
    return lines


@guarded
def _import(args: argparse.Namespace) -> int:
    conf = config_from_args(args)
    app_id = app_id_from_args(args)
    client, source = source_client(conf, args.source_url)
    target_app = args.target_app_id or app_id
    mode = "dry run, nothing written" if args.dry_run else "writing"
    print(
        f"import-redis: app {app_id!r} from {source} -> app {target_app!r} in namespace "
        f"{conf.redis_stack_namespace!r} ({mode})"
    )
    bar = ProgressBar(sys.stderr, "import-redis")
    try:
        report = import_from_redis(
            client,
            conf,
            app_id,
            dry_run=args.dry_run,
            progress=bar,
            target_app_id=args.target_app_id,
            batch_size=args.batch_size,
        )
    finally:
        bar.close()
        client.close()
    print("\n".join(format_import(report)))
    if report.unrecognized:
        print("\n".join(_listed("keys of no known pynenc-redis shape, not copied", report.unrecognized)))
    if report.keys_scanned == 0 and not report.found:
        return fail(f"no pynenc-redis data found for app {app_id!r} at {source}")
    if report.errors:
        print(
            "\n".join(_listed("items not imported", [f"{key}: {why}" for key, why in report.errors])),
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK


def add_parser(subparsers: SubParsers) -> None:
    """
    Register the ``import-redis`` command.

    :param subparsers: The top-level subparsers of the CLI.
    """
    command = subparsers.add_parser(
        "import-redis",
        parents=[connection_options()],
        help="copy one app's pynenc-redis 0.3.0 state into Redis Stack documents (idempotent)",
        description="Copy one app's pynenc-redis 0.3.0 state (invocations, history, results, "
        "exceptions, runner contexts, workflow runs, sub-invocations and data, app info) into "
        "Redis Stack documents. The source keys are only read; running it again creates no "
        "duplicate.",
    )
    command.add_argument(
        "--source-url",
        help="the pynenc-redis server (default: the configured redis_url, else redis_host/port/db)",
    )
    command.add_argument("--target-app-id", help="write the documents for this app id instead")
    command.add_argument("--dry-run", action="store_true", help="count what would be copied; write nothing")
    command.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"source keys per batch (default {DEFAULT_BATCH_SIZE})",
    )
    command.set_defaults(handler=_import)
