"""
``pynenc-redis-stack index ...``: see, migrate and drop the RediSearch indexes.

Verbs: ``status [--json]``, ``migrate [--dry-run] [--rebuild-drifted] [--timeout S]``,
``drop [NAME ...] [--yes] [--delete-documents] [--dry-run]``. Every verb takes the
connection the way pynenc does: ``--app module.path[:variable]`` (the app's configuration),
``--config-file`` (a pynenc config file), ``PYNENC__...`` environment variables, plus
``--url`` and ``--namespace`` overrides.

The verbs are plain functions (:func:`index_status`, :func:`index_migrate`,
:func:`index_drop`) returning result objects; the handlers here only format them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import redis

from pynenc_redis_stack.cli import EXIT_FAILURE, EXIT_OK, SubParsers, fail, guarded, usage_handler
from pynenc_redis_stack.client import get_client
from pynenc_redis_stack.conf import ConfigStateBackendRedisStack
from pynenc_redis_stack.errors import AppImportError
from pynenc_redis_stack.executor import DEFAULT_POLL_INTERVAL, Executor, LiveExecutor, PrintingExecutor
from pynenc_redis_stack.keys import Namespace
from pynenc_redis_stack.lifecycle import (
    Action,
    DropReport,
    IndexState,
    IndexStatus,
    MigrationReport,
    drop,
    inspect_indexes,
    migrate,
)
from pynenc_redis_stack.schema import IndexSpec, load_schemas

# -- configuration -------------------------------------------------------------------------


def import_app(spec: str) -> Any:
    """Import the pynenc app named by ``module.path:variable`` (or pynenc's ``--app`` forms).

    With ``:variable`` the module is imported and the variable returned. Without it, pynenc's
    own resolution is used (``tasks.app``, ``mypackage.tasks``, ``path/to/tasks.py``), as in
    ``pynenc --app``. The current directory is importable, as with ``python -m``.

    :raises AppImportError: If the module or variable cannot be found.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, variable = spec.partition(":")
    try:
        if variable:
            return getattr(importlib.import_module(module_name), variable)
        from pynenc.util.import_app import find_app_instance

        return find_app_instance(spec)
    except (ImportError, AttributeError, ValueError) as exc:
        raise AppImportError(f"--app {spec}: {exc}") from exc


def load_config(
    *,
    url: str | None = None,
    app: str | None = None,
    config_file: str | None = None,
    namespace: str | None = None,
) -> ConfigStateBackendRedisStack:
    """Build the backend configuration the way pynenc resolves it, then apply the overrides.

    :param url: Server URL; overrides every configured one (set as ``redis_stack_url``).
    :param app: ``module.path[:variable]`` of a pynenc app whose configuration is used.
    :param config_file: A pynenc config file (YAML, TOML, JSON); with ``app``, replaces the
        app's own file.
    :param namespace: Overrides ``redis_stack_namespace``.
    """
    config_values = None
    config_filepath = config_file
    if app:
        instance = import_app(app)
        config_values = instance.config_values
        config_filepath = config_file or instance.config_filepath
    conf = ConfigStateBackendRedisStack(config_values=config_values, config_filepath=config_filepath)
    # Direct assignment outranks environment variables in cistell, so the flags always win.
    if url:
        conf.redis_stack_url = url
    if namespace:
        conf.redis_stack_namespace = namespace
    return conf


def _specs(specs: Sequence[IndexSpec] | None) -> list[IndexSpec]:
    return list(specs) if specs is not None else list(load_schemas().all())


def _connect(conf: ConfigStateBackendRedisStack) -> tuple[redis.Redis, Namespace]:
    return get_client(conf), Namespace(str(conf.redis_stack_namespace))


# -- verbs ---------------------------------------------------------------------------------


def index_status(
    conf: ConfigStateBackendRedisStack, *, specs: Sequence[IndexSpec] | None = None
) -> list[IndexStatus]:
    """Return the status of every index (reads only; never creates anything).

    :param specs: Index specs to check; the schema files by default.
    """
    client, namespace = _connect(conf)
    return inspect_indexes(client, namespace, _specs(specs))


def index_migrate(
    conf: ConfigStateBackendRedisStack,
    *,
    specs: Sequence[IndexSpec] | None = None,
    dry_run: bool = False,
    rebuild_drifted: bool = False,
    timeout: float = 3600.0,
    drain_timeout: float = 60.0,
    lock_timeout: float | None = None,
    lock_ttl: float = 30.0,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    out: TextIO | None = None,
    progress: TextIO | None = None,
    notify: Callable[[str], None] | None = None,
) -> MigrationReport:
    """Bring every index to its schema file's version with zero downtime (see
    :func:`pynenc_redis_stack.lifecycle.migrate`).

    :param specs: Index specs to migrate to; the schema files by default.
    :param dry_run: Print the ``redis-cli`` commands to ``out`` instead of sending them.
    :param rebuild_drifted: Rebuild drifted indexes as fresh physical indexes and swap them in.
    :param timeout: Seconds each backfill may take.
    :param drain_timeout: Seconds to wait for cursors open on an old index before keeping it.
    :param lock_timeout: Seconds to wait for another run's lock; ``timeout`` by default.
    :param lock_ttl: Lease of the lock (how long a killed run blocks the next one).
    :param poll_interval: Seconds between two ``FT.INFO`` polls.
    :param out: Where a dry run prints; stdout by default.
    :param progress: Where the backfill progress bar goes; None for none.
    :param notify: Receives notices (waiting for the lock).
    """
    client, namespace = _connect(conf)
    executor: Executor
    if dry_run:
        executor = PrintingExecutor(out or sys.stdout)
    else:
        executor = LiveExecutor(
            client,
            timeout=timeout,
            drain_timeout=drain_timeout,
            poll_interval=poll_interval,
            progress=ProgressBar(progress) if progress is not None else None,
        )
    return migrate(
        client,
        namespace,
        _specs(specs),
        executor,
        rebuild_drifted=rebuild_drifted,
        lock_timeout=timeout if lock_timeout is None else lock_timeout,
        lock_ttl=lock_ttl,
        notify=notify,
    )


def index_drop(
    conf: ConfigStateBackendRedisStack,
    *,
    specs: Sequence[IndexSpec] | None = None,
    names: Sequence[str] = (),
    delete_documents: bool = False,
    dry_run: bool = False,
    confirm: Callable[[dict[str, list[str]]], bool] | None = None,
    lock_timeout: float = 60.0,
    out: TextIO | None = None,
) -> DropReport:
    """Drop indexes: each alias's physical index and every other version of that name.

    :param names: Index names (``invocations``, ``history``...) to drop; all by default.
    :param delete_documents: Also delete the documents (``DD``).
    :param dry_run: Print the commands to ``out`` instead of sending them.
    :param confirm: Asked with what would be dropped; False cancels. None: no question.
    :raises ValueError: If a name is not an index of the schema files.
    """
    client, namespace = _connect(conf)
    selected = _specs(specs)
    if names:
        known = {spec.name for spec in selected}
        unknown = sorted(set(names) - known)
        if unknown:
            raise ValueError(f"unknown index {', '.join(unknown)}; indexes: {', '.join(sorted(known))}")
        selected = [spec for spec in selected if spec.name in names]
    executor: Executor = PrintingExecutor(out or sys.stdout) if dry_run else LiveExecutor(client)
    return drop(
        client,
        namespace,
        selected,
        executor,
        delete_documents=delete_documents,
        confirm=confirm,
        lock_timeout=lock_timeout,
    )


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
    widths = [max(len(row[column]) for row in rows) for column in range(len(STATUS_HEADER))]
    numeric = {4, 5}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in numeric and row is not STATUS_HEADER else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


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
    return lines


class ProgressBar:
    """Backfill progress on a stream: a bar redrawn in place on a terminal, otherwise one line
    per 10 % so logs stay short.

    :param stream: Where to draw (stderr in the CLI).
    :param width: Characters of the bar.
    """

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self._last_step: dict[str, int] = {}
        self._started: dict[str, float] = {}

    def update(self, index: str, fraction: float, num_docs: int) -> None:
        """Draw ``index`` at ``fraction`` done."""
        fraction = min(max(fraction, 0.0), 1.0)
        filled = int(fraction * self.width)
        line = (
            f"{index} [{'#' * filled}{'.' * (self.width - filled)}] {int(fraction * 100):3d}% {num_docs} docs"
        )
        if self.tty:
            self.stream.write("\r" + line)
            self.stream.flush()
            self._last_step[index] = 0
            return
        # Quiet for waits under a second (empty indexes), then one line per 10 %.
        started = self._started.setdefault(index, time.monotonic())
        step = int(fraction * 10)
        if self._last_step.get(index) != step and (
            index in self._last_step or time.monotonic() - started >= 1.0
        ):
            self._last_step[index] = step
            print(line, file=self.stream, flush=True)

    def done(self, index: str) -> None:
        """End the bar of ``index`` (a newline on a terminal)."""
        if self.tty and index in self._last_step:
            self.stream.write("\n")
            self.stream.flush()
        self._last_step.pop(index, None)
        self._started.pop(index, None)


# -- argument parsing and handlers ------------------------------------------------------------


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return number


def _connection_options() -> argparse.ArgumentParser:
    """The options every ``index`` verb shares (argparse parent)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection and configuration (as pynenc resolves them)")
    group.add_argument(
        "--url", help="server URL, e.g. redis://localhost:6379/0 (overrides the configuration)"
    )
    group.add_argument(
        "--app",
        help="pynenc app whose configuration is used: module.path:variable, or pynenc's --app forms",
    )
    group.add_argument("--config-file", help="pynenc config file (YAML, TOML or JSON)")
    group.add_argument("--namespace", help="redis_stack_namespace (overrides the configuration)")
    group.add_argument(
        "--schema-dir",
        type=Path,
        default=None,
        help="folder of schema files to compare with (default: the installed schemas/)",
    )
    return common


def add_parser(subparsers: SubParsers) -> None:
    """
    Register the ``index`` verb group.

    :param subparsers: The top-level subparsers of the CLI.
    """
    common = _connection_options()
    group = subparsers.add_parser("index", help="see, migrate and drop the RediSearch indexes")
    group.set_defaults(handler=usage_handler(group))
    verbs = group.add_subparsers(dest="verb", metavar="<verb>")

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
        "--timeout", type=_positive, default=3600.0, help="seconds a backfill (and the lock wait) may take"
    )
    migrate_parser.add_argument(
        "--lock-ttl",
        type=_positive,
        default=30.0,
        help="seconds the lock outlives a killed run (default 30)",
    )
    migrate_parser.set_defaults(handler=_migrate)

    drop_parser = verbs.add_parser(
        "drop", parents=[common], help="drop indexes (documents are kept unless --delete-documents)"
    )
    drop_parser.add_argument("names", nargs="*", metavar="NAME", help="index names (default: all)")
    drop_parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    drop_parser.add_argument(
        "--delete-documents", action="store_true", help="also delete the indexed documents (FT.DROPINDEX DD)"
    )
    drop_parser.add_argument(
        "--dry-run", action="store_true", help="print the redis-cli commands instead of running them"
    )
    drop_parser.set_defaults(handler=_drop)


def _conf(args: argparse.Namespace) -> ConfigStateBackendRedisStack:
    return load_config(url=args.url, app=args.app, config_file=args.config_file, namespace=args.namespace)


def _args_specs(args: argparse.Namespace) -> list[IndexSpec] | None:
    return list(load_schemas(args.schema_dir).all()) if args.schema_dir is not None else None


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
    statuses = index_status(_conf(args), specs=_args_specs(args))
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
        report = index_migrate(
            _conf(args),
            specs=_args_specs(args),
            dry_run=args.dry_run,
            rebuild_drifted=args.rebuild_drifted,
            timeout=args.timeout,
            lock_ttl=args.lock_ttl,
            out=sys.stdout,
            progress=sys.stderr,
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
    conf = _conf(args)
    namespace = str(conf.redis_stack_namespace)
    if args.delete_documents:
        _notice(
            "--delete-documents sends DD: the server deletes every document these indexes hold. "
            "All versions of an index share its key prefixes, so this deletes the documents every "
            f"version serves, for every app in namespace {namespace!r}."
        )
    confirm = None if args.yes or args.dry_run else _ask(args.delete_documents, namespace)
    with _terminate_as_exit():
        report = index_drop(
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
