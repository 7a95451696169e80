"""Purge: everything this package stores for one app (:func:`purge_app`), and nothing of any
other app; retention of old invocations is :mod:`pynenc_redis_stack.admin.retention`."""

from __future__ import annotations

import redis

from pynenc_redis_stack.admin.lifecycle import inspect_indexes
from pynenc_redis_stack.broker.broker import purge_broker_keys
from pynenc_redis_stack.core.indexes import IndexState, ensure_indexes
from pynenc_redis_stack.core.keys import Namespace
from pynenc_redis_stack.core.schema import (
    SCHEMA_SETS,
    OrchestratorSchemas,
    Schemas,
    SchemaSet,
    load_schema_set,
    load_schemas,
)
from pynenc_redis_stack.core.store import unlink, unlink_app_documents
from pynenc_redis_stack.orchestrator.orchestrator import running_slot_leases
from pynenc_redis_stack.state_backend.purge import purge_state
from pynenc_redis_stack.trigger.trigger import purge_trigger_keys

DEFAULT_PAGE_SIZE = 500
"""Keys per cursor page (each page one ``UNLINK``)."""


def schema_sets_in_use(client: redis.Redis, namespace: Namespace) -> list[SchemaSet]:
    """Return the schema sets of :data:`~pynenc_redis_stack.core.schema.SCHEMA_SETS` whose indexes
    are on the server: the state backend's (checked by the caller's connection), and each
    other component's whose first use (or ``index migrate``) created them. A component whose
    indexes are all missing never ran in this namespace, so none of its documents exist.

    :raises IndexDefinitionMismatchError: If a component's indexes are only partly there, or
        differ from their files (``index migrate`` brings them in line).
    """
    in_use: list[SchemaSet] = [load_schemas()]
    for schema_set in SCHEMA_SETS:
        if schema_set is Schemas:
            continue
        specs = load_schema_set(schema_set)
        statuses = inspect_indexes(client, namespace, specs.all())
        if all(status.state is IndexState.MISSING for status in statuses):
            continue
        ensure_indexes(client, namespace, specs.all(), create_missing=False)
        in_use.append(specs)
    return in_use


def purge_app(
    client: redis.Redis, namespace: Namespace, app_id: str, page_size: int = DEFAULT_PAGE_SIZE
) -> None:
    """Delete everything this package stores for ``app_id`` but its app info, and nothing of
    any other app: the state backend's documents (:func:`purge_state`), every other
    component's documents (each schema set of :func:`schema_sets_in_use`: the orchestrator's
    statuses, blocking edges, runner heartbeats and atomic-service executions, and the
    leases of the running slots they name; the trigger's definitions, conditions, events and runs), the broker's
    queues, taken entries and counter, the trigger's valid conditions, cron executions and
    claims, and the client data store's values.
    """
    keys = namespace.for_app(app_id)
    leases: set[str] = set()
    for schema_set in schema_sets_in_use(client, namespace):
        if isinstance(schema_set, Schemas):
            purge_state(client, namespace, schema_set, app_id, page_size)
            continue
        if isinstance(schema_set, OrchestratorSchemas):
            leases = running_slot_leases(client, namespace, schema_set.invocations, keys)
        unlink_app_documents(client, namespace, schema_set.all(), app_id, page_size)
    purge_broker_keys(client, keys)
    purge_trigger_keys(client, keys)
    unlink(client, [*leases, keys.client_data(), keys.atomic_service_lease()])
