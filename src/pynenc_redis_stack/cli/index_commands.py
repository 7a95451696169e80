"""
``pynenc-redis-stack index ...``: see, migrate and drop the RediSearch indexes.

Verbs: ``status [--json]``, ``migrate [--dry-run] [--rebuild-drifted] [--timeout S]``,
``drop [NAME ...] [--yes] [--delete-documents] [--dry-run]``. Every verb takes the
connection the way pynenc does: ``--app module.path[:variable]`` (the app's configuration),
``--config-file`` (a pynenc config file), ``PYNENC__...`` environment variables, plus
``--url`` and ``--namespace`` overrides.

The verbs are plain functions of :mod:`pynenc_redis_stack.admin` (``index_status``,
``index_migrate``, ``index_drop``) returning reports; the handlers here only format them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

from pynenc_redis_stack import admin
from pynenc_redis_stack.admin.lifecycle import MigrationReport
from pynenc_redis_stack.cli import EXIT_FAILURE, EXIT_OK, SubParsers, add_group, fail, format_table, guarded
from pynenc_redis_stack.cli.options import config_from_args, connection_options, positive_float
from pynenc_redis_stack.cli.progress import ProgressBar
from pynenc_redis_stack.core.indexes import Action, IndexState, IndexStatus
from pynenc_redis_stack.core.schema import IndexSpec, all_specs

# -- formatting ----------------------------------------------------------------------------

STATUS_HEADER = ("ALIAS", "INDEX", "FILE", "STATE", "DOCS", "FAILURES", "DETAIL")


def format_status(statuses: Sequence[IndexStatus]) -> list[str]:
    """Return the ``index status`` table: a header, then one line per index."""
    rows = [STATUS_HEADER] + [
        (
            status.alias,
            status.live_index or "-",
            f"v{status.file_version}",
            status.label,
            "-" if status.num_docs is None else str(status.num_docs),
            "-" if status.failures is None else str(status.failures),
            status.detail,
        )
        for status in statuses
    ]
    return format_table(rows, right_aligned={4, 5})


def format_migration(report: MigrationReport) -> list[str]:
    """Return the summary a live ``index migrate`` prints: one line per index, or one line
    saying there is nothing to do."""
    if report.nothing_to_do:
        return ["nothing to do: every index is at its schema version"]
    lines = []
    for result in report.results:
        plan, alias = result.plan, result.alias
        reused = " (reusing the index an interrupted run started)" if plan.reused else ""
        dropped = f"; dropped {', '.join(result.dropped)}" if result.dropped else ""
        if result.error is not None:
            line = f"{alias}: FAILED: {result.error}"
        elif plan.action is Action.NONE:
            line = f"{alias}: up to date ({plan.target})"
        elif plan.action is Action.CREATE:
            line = f"{alias}: created {plan.target}{reused}{dropped}"
        elif plan.action is Action.MIGRATE:
            line = f"{alias}: migrated {plan.status.live_index} -> {plan.target}{reused}{dropped}"
        elif plan.action is Action.REBUILD:
            line = f"{alias}: rebuilt drifted {plan.status.live_index} as {plan.target}{reused}{dropped}"
        elif plan.action is Action.WAIT:
            line = f"{alias}: waited for the backfill of {plan.target}{dropped}"
        elif plan.action is Action.CLEANUP:
            line = f"{alias}: up to date ({plan.target}){dropped}"
        else:
            line = f"{alias}: {plan.note}"
        lines.append(line)
        if plan.note and plan.action is not Action.SKIP:
            lines.append(f"{alias}: note: {plan.note}")
        lines.extend(f"{alias}: warning: {warning}" for warning in result.warnings)
    if report.legacy is not None:
        lines.extend(report.legacy.lines(report.dry_run))
    for app_id, converted in (report.trigger_layout.per_app if report.trigger_layout else {}).items():
        verb = "would convert" if report.dry_run else "converted"
        lines.append(
            f"trigger layout of app {app_id!r}: {verb} {converted.conditions} conditions, "
            f"{converted.definitions} trigger definitions and {converted.source_links} "
            "source-task links to documents"
        )
        verb = "would delete" if report.dry_run else "deleted"
        lines.extend(f"trigger layout of app {app_id!r}: {verb} {key}" for key in converted.deleted)
    if report.tagged_layout is not None:
        lines.extend(report.tagged_layout.lines(report.dry_run))

    return lines


# -- argument parsing and handlers ------------------------------------------------------------


def add_parser(subparsers: SubParsers) -> None:
    """
    Register the ``index`` verb group.

    :param subparsers: The top-level subparsers of the CLI.
    """
    common = connection_options()
    common.add_argument(
        "--schema-dir",
        type=Path,
        default=None,
        help="folder of schema files to compare with (default: the installed schemas/)",
    )
    verbs = add_group(subparsers, "index", help="see, migrate and drop the RediSearch indexes")

    status = verbs.add_parser(
        "status", parents=[common], help="one line per index; exit 1 unless every index is ok"
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(handler=_status)

    migrate_parser = verbs.add_parser(
        "migrate", parents=[common], help="bring every index to its schema version (zero downtime)"
    )
    migrate_parser.add_argument(
        "--dry-run", action="store_true", help="print the redis-cli commands instead of running them"
    )
    migrate_parser.add_argument(
        "--rebuild-drifted",
        action="store_true",
        help="rebuild indexes whose definition differs from the file at the same version",
    )
    migrate_parser.add_argument(
        "--timeout",
        type=positive_float,
        default=3600.0,
        help="seconds a backfill (and the lock wait) may take",
    )
    migrate_parser.add_argument(
        "--lock-ttl",
        type=positive_float,
        default=30.0,
        help="seconds the lock outlives a killed run (default 30)",
    )
    migrate_parser.set_defaults(handler=_migrate)

    drop_parser = verbs.add_parser(
        "drop", parents=[common], help="drop indexes (documents are kept unless --delete-documents)"
    )
    drop_parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="index names as `index status` prints them (pynenc:invocations; the namespace may be left out); default: all",
    )
    drop_parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    drop_parser.add_argument(
        "--delete-documents", action="store_true", help="also delete the indexed documents (FT.DROPINDEX DD)"
    )
    drop_parser.add_argument(
        "--dry-run", action="store_true", help="print the redis-cli commands instead of running them"
    )
    drop_parser.set_defaults(handler=_drop)


def _args_specs(args: argparse.Namespace) -> list[IndexSpec] | None:
    return list(all_specs(args.schema_dir)) if args.schema_dir is not None else None


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so ``finally`` blocks (the lock release) run when a deploy
    tool stops the command; SIGKILL still leaves the lock to expire after its TTL."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@guarded
def _status(args: argparse.Namespace) -> int:
    statuses = admin.index_status(config_from_args(args), specs=_args_specs(args))
    if args.json:
        print(json.dumps([status.as_dict() for status in statuses], indent=2))
    else:
        print("\n".join(format_status(statuses)))
    return EXIT_OK if all(s.state is IndexState.OK for s in statuses) else EXIT_FAILURE


def _notice(message: str) -> None:
    print(f"pynenc-redis-stack: {message}", file=sys.stderr, flush=True)


@guarded
def _migrate(args: argparse.Namespace) -> int:
    with _terminate_as_exit():
        report = admin.index_migrate(
            config_from_args(args),
            specs=_args_specs(args),
            dry_run=args.dry_run,
            rebuild_drifted=args.rebuild_drifted,
            timeout=args.timeout,
            lock_ttl=args.lock_ttl,
            out=sys.stdout,
            progress=ProgressBar(sys.stderr, quiet_seconds=1.0),
            notify=_notice,
        )
    if report.dry_run:
        if report.nothing_to_do:
            _notice("nothing to do: every index is at its schema version")
        else:
            _notice(f"dry run: {len(report.sent)} commands printed, nothing changed")
        for result in report.results:
            if result.plan.action is Action.SKIP:
                _notice(f"{result.alias}: {result.plan.note}")
    else:
        print("\n".join(format_migration(report)))
    return EXIT_OK if report.ok else EXIT_FAILURE


def _ask(delete_documents: bool, namespace: str) -> Callable[[dict[str, list[str]]], bool]:
    def confirm(targets: dict[str, list[str]]) -> bool:
        kept = "the documents are DELETED" if delete_documents else "documents are kept"
        print(f"About to drop, in namespace {namespace!r} ({kept}):", file=sys.stderr)
        for alias, names in targets.items():
            print(f"  {alias}: {', '.join(names)}", file=sys.stderr)
        print("Drop these indexes? [y/N] ", end="", file=sys.stderr, flush=True)
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    return confirm


@guarded
def _drop(args: argparse.Namespace) -> int:
    conf = config_from_args(args)
    namespace = str(conf.redis_stack_namespace)
    if args.delete_documents:
        _notice(
            "--delete-documents sends DD: the server deletes every document these indexes hold. "
            "All versions of an index share its key prefixes, so this deletes the documents every "
            f"version serves, for every app in namespace {namespace!r}."
        )
    confirm = None if args.yes or args.dry_run else _ask(args.delete_documents, namespace)
    with _terminate_as_exit():
        report = admin.index_drop(
            conf,
            specs=_args_specs(args),
            names=args.names,
            delete_documents=args.delete_documents,
            dry_run=args.dry_run,
            confirm=confirm,
            out=sys.stdout,
        )
    if report.cancelled:
        return fail("cancelled; nothing was dropped")
    if not report.dropped:
        print("nothing to drop")
        return EXIT_OK
    if not report.dry_run:
        fate = "documents deleted" if report.delete_documents else "documents kept"
        for alias, names in report.dropped.items():
            print(f"{alias}: dropped {', '.join(names)} ({fate})")
    return EXIT_OK
