"""The operations API: what the ``pynenc-redis-stack`` command runs, as plain functions that
return reports (the command only parses arguments, prints the reports and maps errors to exit
codes).

- :func:`index_status`, :func:`index_migrate`, :func:`index_drop`: the RediSearch indexes;
- :func:`prune`: delete finished invocations older than a duration (retention);
- :func:`import_redis`: copy one app's pynenc-redis 0.3.0 state into Redis Stack.

Every function takes the backend configuration; :func:`load_config` builds it the way pynenc
resolves it (an app, a config file, ``PYNENC__...`` environment variables) plus overrides::

    from pynenc_redis_stack import admin

    conf = admin.load_config(url="redis://localhost:6379/0")
    for status in admin.index_status(conf):
        print(status.alias, status.label)
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import redis

from pynenc_redis_stack.admin.import_source import source_app_ids
from pynenc_redis_stack.admin.importer import DEFAULT_BATCH_SIZE as IMPORT_BATCH_SIZE
from pynenc_redis_stack.admin.importer import ImportReport, import_from_redis
from pynenc_redis_stack.admin.legacy import clean_legacy
from pynenc_redis_stack.admin.lifecycle import (
    DataFill,
    DropReport,
    MigrationReport,
    drop,
    inspect_indexes,
    migrate,
)
from pynenc_redis_stack.admin.retention import DEFAULT_BATCH_SIZE as PRUNE_BATCH_SIZE
from pynenc_redis_stack.admin.retention import PruneReport, check_cutoff, prune_invocations
from pynenc_redis_stack.admin.tagged_layout import move_to_tagged_layout
from pynenc_redis_stack.core import codec
from pynenc_redis_stack.core.client import redacted_url
from pynenc_redis_stack.core.conf import ConfigStateBackendRedisStack
from pynenc_redis_stack.core.connection import address_options, get_client
from pynenc_redis_stack.core.errors import AppImportError, UnknownAppError
from pynenc_redis_stack.core.indexes import IndexStatus, connect
from pynenc_redis_stack.core.indexes.executor import (
    DEFAULT_POLL_INTERVAL,
    Executor,
    LiveExecutor,
    PrintingExecutor,
    Progress,
)
from pynenc_redis_stack.core.keys import Namespace
from pynenc_redis_stack.core.schema import IndexSpec, all_specs, load_schemas
from pynenc_redis_stack.trigger.migration import migrate_trigger_layout

type Counter = Callable[[int, int], None]
"""Receives ``(done, total)`` while a prune or an import runs."""

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


def resolve_app_id(app_id: str | None = None, app: str | None = None, config_file: str | None = None) -> str:
    """Return ``app_id``, else the ``app``'s id, else the configured ``app_id`` (pynenc's
    resolution: config file, ``PYNENC__APP_ID``, default ``pynenc``)."""
    if app_id:
        return app_id
    if app:
        return str(import_app(app).app_id)
    from pynenc.conf.config_pynenc import ConfigPynenc

    return str(ConfigPynenc(config_filepath=config_file).app_id)


def _specs(specs: Sequence[IndexSpec] | None) -> list[IndexSpec]:
    return list(specs) if specs is not None else list(all_specs())


def _connect(conf: ConfigStateBackendRedisStack) -> tuple[redis.Redis, Namespace]:
    """Connect and check the server only: the ``index`` verbs must not create any index first."""
    return get_client(conf), Namespace(str(conf.redis_stack_namespace))


def connect_app(conf: ConfigStateBackendRedisStack, app_id: str) -> redis.Redis:
    """Connect to the state backend's indexes, refusing an app that has no data there.

    :raises UnknownAppError: If no invocation or app info of ``app_id`` is in the namespace,
        listing the apps that are.
    """
    from pynenc_redis_stack.admin.explore import app_ids, has_data

    schemas = load_schemas()
    client = connect(conf, schemas, recheck=True)
    namespace = Namespace(str(conf.redis_stack_namespace))
    if not has_data(client, namespace, schemas, app_id):
        existing = app_ids(client, namespace, schemas)  # every app: read only to explain the error
        where = f"in namespace {namespace.namespace!r} at {describe_target(conf)}"
        raise UnknownAppError(app_id, where, existing)
    return client


def describe_target(conf: ConfigStateBackendRedisStack) -> str:
    """Return the server this package's components connect to, printable (password masked)."""
    url = str(conf.redis_stack_url or conf.redis_url or "")
    return redacted_url(url) if url else f"redis://{conf.redis_host}:{conf.redis_port}/{conf.redis_db}"


# -- indexes ---------------------------------------------------------------------------------


def index_status(
    conf: ConfigStateBackendRedisStack, *, specs: Sequence[IndexSpec] | None = None
) -> list[IndexStatus]:
    """Return the status of every index (reads only; never creates anything).

    :param specs: Index specs to check; by default every index of the package (each
        component's, :data:`pynenc_redis_stack.core.schema.SCHEMA_SETS`).
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
    progress: Progress | None = None,
    notify: Callable[[str], None] | None = None,
) -> MigrationReport:
    """Bring every index to its schema file's version with zero downtime (see
    :func:`pynenc_redis_stack.admin.lifecycle.migrate`).

    :param specs: Index specs to migrate to; by default every index of the package.
    :param dry_run: Print the ``redis-cli`` commands to ``out`` instead of sending them.
    :param rebuild_drifted: Rebuild drifted indexes as fresh physical indexes and swap them in.
    :param timeout: Seconds each backfill may take.
    :param drain_timeout: Seconds to wait for cursors open on an old index before keeping it.
    :param lock_timeout: Seconds to wait for another run's lock; ``timeout`` by default.
    :param lock_ttl: Lease of the lock (how long a killed run blocks the next one).
    :param poll_interval: Seconds between two ``FT.INFO`` polls.
    :param out: Where a dry run prints; stdout by default.
    :param progress: Receives backfill progress (the command's progress bar); None for none.
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
            progress=progress,
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
        # A store written by an earlier layout: its copies beside the documents go, the
        # trigger's definitions and conditions become documents, and untagged keys get their
        # hash tags.
        fill=lambda heartbeat: DataFill(
            legacy=clean_legacy(
                client,
                namespace,
                load_schemas(),
                dry_run=dry_run,
                print_line=lambda line: print(line, file=out or sys.stdout),
                heartbeat=heartbeat,
                progress=None if dry_run else progress,
            ),
            trigger_layout=migrate_trigger_layout(client, namespace, dry_run=dry_run, heartbeat=heartbeat),
            # last: the steps above read and write the earlier keys
            tagged_layout=move_to_tagged_layout(
                client,
                namespace,
                dry_run=dry_run,
                print_line=lambda line: print(line, file=out or sys.stdout),
                heartbeat=heartbeat,
                progress=None if dry_run else progress,
            ),
        ),
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

    :param specs: Index specs to choose from; by default every index of the package.
    :param names: Index names to drop, as ``index status`` prints them (``pynenc:invocations``)
        or without the namespace (``invocations``); all by default.
    :param delete_documents: Also delete the documents (``DD``).
    :param dry_run: Print the commands to ``out`` instead of sending them.
    :param confirm: Asked with what would be dropped; False cancels. None: no question.
    :raises ValueError: If a name is not an index of the schema files.
    """
    client, namespace = _connect(conf)
    selected = _specs(specs)
    if names:
        # the names `index status` prints (<namespace>:invocations), or without the namespace
        prefix = f"{namespace.namespace}:"
        wanted = {name.removeprefix(prefix) for name in names}
        known = {spec.name for spec in selected}
        unknown = sorted(name for name in names if name.removeprefix(prefix) not in known)
        if unknown:
            listed = ", ".join(namespace.alias(spec) for spec in sorted(selected, key=lambda spec: spec.name))
            raise ValueError(f"unknown index {', '.join(unknown)}; indexes: {listed}")
        selected = [spec for spec in selected if spec.name in wanted]
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


# -- retention -------------------------------------------------------------------------------


def prune_cutoff(older_than: timedelta | None, now: datetime) -> datetime:
    """Return the latest-status instant before which finished invocations are pruned; None
    (``--all`` alone) selects every invocation with a status."""
    return codec.from_micros(codec.MAX_MICROS) if older_than is None else now - older_than


def prune(
    conf: ConfigStateBackendRedisStack,
    older_than: timedelta | None,
    *,
    app_id: str,
    dry_run: bool = False,
    allow_all: bool = False,
    batch_size: int = PRUNE_BATCH_SIZE,
    now: datetime | None = None,
    progress: Counter | None = None,
    keep_client_data: bool = False,
) -> PruneReport:
    """Delete ``app_id``'s finished invocations whose latest status is older than
    ``older_than`` (see :func:`pynenc_redis_stack.admin.retention.prune_invocations`).

    :param older_than: Age of the latest status; None selects every finished invocation and
        needs ``allow_all``.
    :param now: The instant ``older_than`` counts back from; the current time by default.
    :raises PruneRefusedError: If the cutoff selects everything and ``allow_all`` is off
        (checked before connecting).
    :raises UnknownAppError: If ``app_id`` has no data in the namespace.
    """
    now = now or datetime.now(UTC)
    cutoff = prune_cutoff(older_than, now)
    check_cutoff(cutoff, allow_all=allow_all, now=now)
    client = connect_app(conf, app_id)
    return prune_invocations(
        client,
        Namespace(str(conf.redis_stack_namespace)),
        load_schemas(),
        app_id,
        cutoff,
        dry_run=dry_run,
        allow_all=allow_all,
        batch_size=batch_size,
        progress=progress,
        keep_client_data=keep_client_data,
    )


# -- import from pynenc-redis ------------------------------------------------------------------


def source_client(conf: ConfigStateBackendRedisStack, source_url: str | None) -> redis.Redis:
    """Return a client on the pynenc-redis server.

    Without ``source_url``: where pynenc-redis reads with this configuration (its
    ``redis_url``, else host, port and db); ``redis_stack_url`` is ours only.
    """
    url = source_url or str(conf.redis_url or "")
    if url:
        return redis.Redis.from_url(url, protocol=2, decode_responses=True)
    return redis.Redis(**address_options(conf), protocol=2, decode_responses=True)


def describe_source(conf: ConfigStateBackendRedisStack, source_url: str | None) -> str:
    """Return where :func:`source_client` connects, printable (the password masked)."""
    url = source_url or str(conf.redis_url or "")
    return redacted_url(url) if url else f"redis://{conf.redis_host}:{conf.redis_port}/{conf.redis_db}"


def import_redis(
    conf: ConfigStateBackendRedisStack,
    source_url: str | None = None,
    *,
    app_id: str,
    target_app_id: str | None = None,
    dry_run: bool = False,
    batch_size: int = IMPORT_BATCH_SIZE,
    progress: Counter | None = None,
) -> ImportReport:
    """Copy ``app_id``'s pynenc-redis 0.3.0 state into Redis Stack documents (see
    :func:`pynenc_redis_stack.admin.importer.import_from_redis`); the source is only read.

    :param source_url: The pynenc-redis server (see :func:`source_client` for the default).
    :param target_app_id: Write the documents for this app id instead.
    :raises UnknownAppError: If the source has no data of ``app_id``, listing its apps.
    """
    client = source_client(conf, source_url)
    try:
        report = import_from_redis(
            client,
            conf,
            app_id,
            dry_run=dry_run,
            progress=progress,
            target_app_id=target_app_id,
            batch_size=batch_size,
        )
        if report.keys_scanned == 0 and not any(report.found.values()):
            raise UnknownAppError(
                app_id,
                f"in the pynenc-redis store at {describe_source(conf, source_url)}",
                source_app_ids(client),
            )
        return report
    finally:
        client.close()
