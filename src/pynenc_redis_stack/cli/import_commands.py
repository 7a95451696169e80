"""
``pynenc-redis-stack import-redis``: copy one app's pynenc-redis 0.3.0 state into Redis Stack.

The target (server, namespace) comes from the configuration the way pynenc resolves it
(``--app module.path:variable``, ``--config-file``, ``PYNENC__...`` environment variables) with
``--url`` and ``--namespace`` overrides; the source is ``--source-url``, else where
pynenc-redis would read with that configuration (``redis_url``, else host/port/db). The app
is ``--app-id``, else the ``--app``'s id, else the configured ``app_id``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pynenc_redis_stack import admin
from pynenc_redis_stack.admin.importer import DEFAULT_BATCH_SIZE, KINDS, ImportReport
from pynenc_redis_stack.cli import EXIT_FAILURE, EXIT_OK, SubParsers, format_table, guarded
from pynenc_redis_stack.cli.options import (
    add_batch_size,
    app_id_from_args,
    config_from_args,
    connection_options,
)
from pynenc_redis_stack.cli.progress import ProgressBar

MAX_LISTED = 20
"""Unrecognized keys and errors printed one per line; the rest are counted."""


def format_import(report: ImportReport) -> list[str]:
    """Return the table ``import-redis`` prints: one line per kind."""
    header = ("KIND", "FOUND") if report.dry_run else ("KIND", "FOUND", "WRITTEN")
    rows = [header]
    for kind in KINDS:
        row = (kind, str(report.found[kind]))
        rows.append(row if report.dry_run else (*row, str(report.written[kind])))
    lines = format_table(rows, right_aligned=range(1, len(header)))
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
    source = admin.describe_source(conf, args.source_url)
    target_app = args.target_app_id or app_id
    mode = "dry run, nothing written" if args.dry_run else "writing"
    print(
        f"import-redis: app {app_id!r} from {source} -> app {target_app!r} in namespace "
        f"{conf.redis_stack_namespace!r} ({mode})"
    )
    with ProgressBar(sys.stderr).counting("import-redis") as progress:
        report = admin.import_redis(
            conf,
            args.source_url,
            app_id=app_id,
            target_app_id=args.target_app_id,
            dry_run=args.dry_run,
            batch_size=args.batch_size,
            progress=progress,
        )
    print("\n".join(format_import(report)))
    if report.unrecognized:
        print("\n".join(_listed("keys of no known pynenc-redis shape, not copied", report.unrecognized)))
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
        parents=[connection_options(app_id=True)],
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
    add_batch_size(command, DEFAULT_BATCH_SIZE, "source keys")
    command.set_defaults(handler=_import)
