"""
``pynenc-redis-stack prune``: delete finished invocations whose latest status is older than a
duration.

``--older-than 30d`` (units ``s m h d``, combinable: ``1d12h``) selects the invocations in a
final status (success, failed, concurrency-controlled final) whose latest history entry is
before now minus that duration; unfinished ones are never deleted. They go with their history,
result, exception and workflow links, and the runs and data of workflows nothing refers to any
more (see :mod:`pynenc_redis_stack.admin.retention`). ``--dry-run`` counts and deletes nothing. A
duration of 0 (or ``--all`` alone) selects everything and is refused unless ``--all`` is given.
The app and connection are resolved like ``import-redis``'s (``--app``/``--app-id``,
``--url``, ``--config-file``, ``PYNENC__...``).
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta

from pynenc_redis_stack import admin
from pynenc_redis_stack.admin.retention import DEFAULT_BATCH_SIZE, FINAL_STATUSES, PruneReport, check_cutoff
from pynenc_redis_stack.cli import EXIT_OK, EXIT_USAGE, SubParsers, fail, format_table, guarded
from pynenc_redis_stack.cli.options import (
    add_batch_size,
    app_id_from_args,
    config_from_args,
    connection_options,
)
from pynenc_redis_stack.cli.progress import ProgressBar
from pynenc_redis_stack.core.errors import PruneRefusedError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_DURATION = re.compile(r"(\d+)([smhd])")


def parse_duration(value: str) -> timedelta:
    """Parse ``30d``, ``12h``, ``90m``, ``45s`` or combinations (``1d12h``); ``0`` is zero.

    :raises argparse.ArgumentTypeError: For anything else (a number needs a unit).
    """
    text = value.strip()
    if text == "0":
        return timedelta(0)
    if not text or _DURATION.sub("", text):
        raise argparse.ArgumentTypeError(
            f"not a duration: {value!r} (use a number and a unit s, m, h or d, e.g. 30d or 1d12h)"
        )
    return sum(
        (timedelta(**{_UNITS[unit]: int(amount)}) for amount, unit in _DURATION.findall(text)),
        timedelta(0),
    )


FINISHED = ", ".join(FINAL_STATUSES)


def format_prune(report: PruneReport) -> list[str]:
    """Return the table ``prune`` prints: documents per kind (the orchestrator's documents and
    the broker's entries last), then what was kept."""
    header = ("KIND", "WOULD DELETE" if report.dry_run else "DELETED")
    counts = {str(kind): count for kind, count in report.counts().items()} | report.other_counts()
    rows = [header, *((kind, str(count)) for kind, count in counts.items())]
    lines = format_table(rows, right_aligned={1})
    lines.append(f"workflow runs kept (still referenced by newer invocations): {report.workflows_kept}")
    if report.skipped:
        lines.append(f"invocations kept because they got a newer status meanwhile: {report.skipped}")
    return lines


@guarded
def _prune(args: argparse.Namespace) -> int:
    if args.older_than is None and not args.all:
        return fail("give --older-than DURATION (e.g. 30d), or --all to delete every invocation", EXIT_USAGE)
    conf = config_from_args(args)
    app_id = app_id_from_args(args)
    now = datetime.now(UTC)
    cutoff = admin.prune_cutoff(args.older_than, now)
    if args.older_than is None:
        selection = f"every finished invocation (status {FINISHED})"
    else:
        selection = (
            f"finished invocations (status {FINISHED}) whose latest status is before "
            f"{cutoff.isoformat(timespec='seconds')}"
        )
    try:
        # the same now: "--older-than 0" is a cutoff of now, refused; checked before connecting
        check_cutoff(cutoff, allow_all=args.all, now=now)
    except PruneRefusedError:
        return fail(
            "refused: --older-than 0 selects every finished invocation of the app (its cutoff is "
            "now); add --all to delete them all on purpose",
            EXIT_USAGE,
        )
    mode = "dry run, nothing deleted" if args.dry_run else "deleting"
    print(f"prune: app {app_id!r} in namespace {conf.redis_stack_namespace!r}: {selection} ({mode})")
    with ProgressBar(sys.stderr).counting("prune") as progress:
        report = admin.prune(
            conf,
            args.older_than,
            app_id=app_id,
            dry_run=args.dry_run,
            allow_all=args.all,
            batch_size=args.batch_size,
            now=now,
            progress=progress,
            keep_client_data=args.keep_client_data,
        )
    print("\n".join(format_prune(report)))
    return EXIT_OK


def add_parser(subparsers: SubParsers) -> None:
    """
    Register the ``prune`` command.

    :param subparsers: The top-level subparsers of the CLI.
    """
    command = subparsers.add_parser(
        "prune",
        parents=[connection_options(app_id=True)],
        help="delete finished invocations whose latest status is older than a duration (retention)",
        description="Delete the app's finished invocations (final status: "
        f"{FINISHED}) whose latest status is older than --older-than, with their history, result, exception and workflow links, their orchestrator "
        "documents and broker entries; workflow runs and data go once no remaining invocation refers to the workflow, and client data store "
        "values once no document refers to them (and they were last stored over an hour ago). Runner contexts are kept.",
    )
    command.add_argument(
        "--older-than",
        type=parse_duration,
        metavar="DURATION",
        help="age of the latest status, e.g. 30d, 12h, 90m, 45s, 1d12h",
    )
    command.add_argument(
        "--all",
        action="store_true",
        help="allow a duration of 0 (everything up to now); alone, delete every finished invocation",
    )
    command.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
    command.add_argument(
        "--keep-client-data",
        action="store_true",
        help="leave the client data store as it is (when components of other packages, such as pynenc's SQLite "
        "trigger, may refer to its values)",
    )
    add_batch_size(command, DEFAULT_BATCH_SIZE, "invocations")
    command.set_defaults(handler=_prune)
