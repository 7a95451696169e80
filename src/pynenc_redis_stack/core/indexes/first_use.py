"""Connect and check the indexes: what the backend, the orchestrator, ``import-redis`` and
``prune`` do before their first command (the ``index`` verbs only connect: ``status`` must not create anything).

The full check (``FT.INFO`` of every index, compared with ``schemas/``) runs once per server
and schema version: when every index matches, it writes the trusted marker
(:meth:`~pynenc_redis_stack.core.keys.Namespace.index_check`), and a new process then trusts the
indexes after one round trip that reads the marker and ``FT._LIST`` (docs/performance.md, start cost).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence

import orjson
import redis

from pynenc_redis_stack.core.client import Client, run
from pynenc_redis_stack.core.conf import ConfigRedisStackKeyspace
from pynenc_redis_stack.core.connection import connection_url, get_client
from pynenc_redis_stack.core.errors import BackfillError, IndexDefinitionMismatchError
from pynenc_redis_stack.core.indexes.executor import AwaitBackfill, LiveExecutor
from pynenc_redis_stack.core.indexes.plan import plan_index
from pynenc_redis_stack.core.indexes.snapshot import read_snapshot
from pynenc_redis_stack.core.indexes.status import IndexState, IndexStatus, index_status
from pynenc_redis_stack.core.keys import Namespace
from pynenc_redis_stack.core.schema import IndexSpec, SchemaSet, load_schemas

# Loaded with the plugins, not on first use: get_client imports it lazily (it imports client),
# and a ProcessRunner child must find every first-use module imported already (see
# tests/unit/test_import_laziness.py).
import pynenc_redis_stack.core.server_check  # noqa: E402, F401  isort: skip

logger = logging.getLogger(__name__)

_checked: set[tuple[str, str, tuple[str, ...]]] = set()
_checked_lock = threading.Lock()


def connect(
    conf: ConfigRedisStackKeyspace, schemas: SchemaSet | None = None, *, recheck: bool = False
) -> Client:
    """Return a client for ``conf`` whose server and ``schemas``' indexes are checked
    (:func:`ensure_indexes`). Every component with indexes connects through here (the state
    backend with :class:`~pynenc_redis_stack.core.schema.Schemas`, the orchestrator with
    :class:`~pynenc_redis_stack.core.schema.OrchestratorSchemas`).

    The indexes are checked once per process, server, namespace and schema set (checking on
    every call would cost round trips each time): the full check when the trusted marker does
    not vouch for them (:func:`is_trusted`), otherwise that one read. Later, a query that finds its index missing
    (``FLUSHALL``, a restart without persistence, a manual drop) has the set's indexes
    recreated from ``schemas/``, then is sent again once.

    :param schemas: The index specs; the state backend's by default.
    :param recheck: Check the indexes even if this process already did (one-off commands).
    :raises IndexDefinitionMismatchError: See :func:`ensure_indexes`.
    """
    schemas = schemas or load_schemas()
    namespace = Namespace(str(conf.redis_stack_namespace))
    client = get_client(conf)
    client.on_missing_index = lambda: _heal(client, conf, namespace, schemas)
    checked = (
        f"{connection_url(conf)}|{conf.redis_host}|{conf.redis_port}",
        namespace.namespace,
        tuple(spec.name for spec in schemas.all()),
    )
    with _checked_lock:
        if recheck or checked not in _checked:
            specs = schemas.all()
            if recheck or not is_trusted(client, namespace, specs):
                ensure_indexes(client, namespace, specs, create_missing=conf.redis_stack_create_indexes)
            _checked.add(checked)
    return client


def spec_digest(namespace: Namespace, spec: IndexSpec) -> str:
    """Return a digest of everything ``FT.CREATE`` is sent for ``spec`` (its alias, version,
    key prefixes and fields): a marker written for another definition never matches it."""
    definition = [namespace.alias(spec), spec.version, namespace.prefixes(spec), spec.schema_args()]
    return hashlib.sha256(orjson.dumps(definition)).hexdigest()[:32]


def is_trusted(client: redis.Redis, namespace: Namespace, specs: Sequence[IndexSpec]) -> bool:
    """Tell whether the full check may be skipped: one round trip reads the trusted marker and
    ``FT._LIST``; every spec's index must be marked with this definition and still listed.

    A flush or restart without persistence removes the marker with the indexes; a drop or a
    migration removes the marker before changing anything (:func:`forget_checked_indexes`).
    Any error (a missing permission, a server without the search module) answers False: the
    full check then reports it.
    """
    pipe = client.pipeline(transaction=False)
    run(pipe, "HGETALL", namespace.index_check())  # a few fields, one per alias of the namespace
    run(pipe, "FT._LIST")
    marked, listed = pipe.execute(raise_on_error=False)
    if isinstance(marked, Exception) or isinstance(listed, Exception):
        return False
    present = {str(name) for name in listed}
    for spec in specs:
        value = marked.get(namespace.alias(spec))
        if value is None:
            return False
        digest, _, live_index = str(value).partition(" ")
        parsed = namespace.parse_physical_index(spec, live_index)
        if digest != spec_digest(namespace, spec) or live_index not in present or parsed is None:
            return False
        if parsed[0] != spec.version:
            return False
    return True


def remember_checked_indexes(
    client: redis.Redis, namespace: Namespace, statuses: Sequence[IndexStatus]
) -> None:
    """Write the trusted marker for ``statuses`` that match their files (the others are left
    out, so a process needing them runs the full check)."""
    fields: list[str] = []
    for status in statuses:
        if status.state is IndexState.OK and status.live_index is not None:
            fields += [status.alias, f"{spec_digest(namespace, status.spec)} {status.live_index}"]
    if fields:
        run(client, "HSET", namespace.index_check(), *fields)


def forget_checked_indexes(client: redis.Redis, namespace: Namespace) -> None:
    """Delete the trusted marker: every process connecting from now on runs the full check
    (migrate and drop call this under the lifecycle lock, before they change an index)."""
    run(client, "DEL", namespace.index_check())


def _heal(client: Client, conf: ConfigRedisStackKeyspace, namespace: Namespace, schemas: SchemaSet) -> None:
    """Recreate missing indexes from ``schemas/`` (a query just found one missing).

    :raises IndexDefinitionMismatchError: If ``redis_stack_create_indexes`` is false (the
        message names ``pynenc-redis-stack index migrate``), or an index differs from its file.
    """
    with _checked_lock:  # one healer per process; others wait, then find the indexes there
        created = ensure_indexes(
            client, namespace, schemas.all(), create_missing=conf.redis_stack_create_indexes
        )
    if created:
        logger.warning(
            "RediSearch indexes %s were missing on %s and were recreated from schemas/. The "
            "database was flushed, the server restarted without persistence, or the indexes were "
            "dropped: state written before that may be lost.",
            ", ".join(created),
            namespace.namespace,
        )


def ensure_indexes(
    client: redis.Redis,
    namespace: Namespace,
    specs: Sequence[IndexSpec],
    create_missing: bool,
    *,
    backfill_timeout: float = 300.0,
) -> list[str]:
    """Make sure every index exists and matches its spec (the backend calls this on first use).

    A missing index is created with the same read, plan and executor as ``index migrate`` (no
    lock, nothing dropped), and the call waits for its backfill: querying a half-built index
    would return answers that are silently short.

    :param create_missing: Create missing indexes; when False a missing one is an error.
    :param backfill_timeout: Seconds to wait for a backfill.
    :return: The physical indexes this call created (empty when all were there).
    :raises IndexDefinitionMismatchError: If an index is missing (and may not be created),
        outdated, drifted or still backfilling at the deadline; the backend never queries
        such an index as if it were right.
    """
    snapshot = read_snapshot(client, namespace, specs)
    executor = LiveExecutor(client, timeout=backfill_timeout)
    failed: dict[str, str] = {}
    waited = False
    for spec in specs:
        plan = plan_index(snapshot, namespace, spec, cleanup=False)
        status = plan.status
        try:
            if status.live_index is None and create_missing:
                executor.run_all(plan.steps)
                waited = True
            elif status.state is IndexState.BACKFILLING and status.building_index is None:
                executor.run(AwaitBackfill(status.live_index or status.alias))
                waited = True
        except BackfillError as exc:
            failed[spec.name] = f"{status.alias}: {exc}"
    if waited:
        snapshot = read_snapshot(client, namespace, specs)
    problems = []
    statuses = [index_status(snapshot, namespace, spec) for spec in specs]
    for spec, status in zip(specs, statuses, strict=True):
        if spec.name in failed:
            problems.append(failed[spec.name])
        elif status.state is not IndexState.OK:
            problems.append(f"{status.alias}: {status.label} {status.detail}".rstrip())
    if problems:
        raise IndexDefinitionMismatchError(
            "RediSearch indexes do not match schemas/: "
            + "; ".join(problems)
            + ". Run `pynenc-redis-stack index status` to see each one and `pynenc-redis-stack "
            "index migrate` to create or migrate them (zero downtime; documents are kept). "
            "Missing indexes are also created on first use when redis_stack_create_indexes is true."
        )
    remember_checked_indexes(client, namespace, statuses)
    return executor.created
