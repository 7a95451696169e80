"""The trusted marker (``<ns>:index-check``): the full index check runs once per server and
schema version; a new process then trusts the indexes after one round trip (the marker and
``FT._LIST``), and still finds a missing, outdated or flushed index before querying it.

A new process is a real one (``python -c``), counted with ``INFO commandstats``: tests run
one at a time, so nothing else talks to the session's server during a count.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pynenc_redis_stack.admin.lifecycle import drop, migrate
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.indexes.executor import LiveExecutor
from pynenc_redis_stack.core.indexes.first_use import is_trusted, spec_digest
from pynenc_redis_stack.core.keys import Namespace
from pynenc_redis_stack.core.schema import all_specs, load_schemas
from pynenc_redis_stack.server import EmbeddedRedisStack
from tests.integration.conftest import commandstats, delta

FIRST_USE = """
from pynenc import PynencBuilder
app = PynencBuilder().app_id("trusted-marker").memory().redis_stack(url={url!r}).build()
app.state_backend  # first use: connects, checks, stores the app info
"""


@pytest.fixture
def namespace(redis_client: redis.Redis) -> Iterator[Namespace]:
    namespace = Namespace(f"t-trust-{uuid.uuid4().hex[:8]}")
    yield namespace
    for index in run(redis_client, "FT._LIST"):
        if str(index).startswith(f"{namespace.namespace}:"):
            run(redis_client, "FT.DROPINDEX", index)
    run(redis_client, "DEL", namespace.index_check())


def first_use_in_a_new_process(url: str, namespace: Namespace, client: redis.Redis) -> dict[str, int]:
    """Run a state backend's first use in a new process; return the commands it sent."""
    env = {**os.environ, "PYNENC__REDIS_STACK_NAMESPACE": namespace.namespace}
    before = commandstats(client)
    subprocess.run(
        [sys.executable, "-c", FIRST_USE.format(url=url)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return delta(before, commandstats(client))


def test_a_new_process_trusts_checked_indexes_after_one_read(
    redis_url: str, redis_client: redis.Redis, namespace: Namespace
) -> None:
    first = first_use_in_a_new_process(redis_url, namespace, redis_client)
    assert first["ft.create"] == len(load_schemas().all())  # the full check created them
    assert first["hset"] == 1  # ... and wrote the marker

    second = first_use_in_a_new_process(redis_url, namespace, redis_client)

    # the server check (FT._LIST, JSON.TYPE, the ACL probe: one pipeline), the marker read
    # (HGETALL, FT._LIST: one pipeline), the app info write (JSON.SET); no FT.INFO
    assert "ft.info" not in second and "ft.create" not in second
    assert second["hgetall"] == 1
    assert second["ft._list"] == 2


def test_an_index_dropped_by_hand_is_recreated_by_the_next_process(
    redis_url: str, redis_client: redis.Redis, namespace: Namespace
) -> None:
    first_use_in_a_new_process(redis_url, namespace, redis_client)
    history = load_schemas().history
    run(redis_client, "FT.DROPINDEX", namespace.physical_index(history))

    commands = first_use_in_a_new_process(redis_url, namespace, redis_client)

    assert commands["ft.create"] == 1  # no longer listed: the full check ran and healed it
    assert namespace.physical_index(history) in run(redis_client, "FT._LIST")
    assert is_trusted(redis_client, namespace, load_schemas().all())


def test_a_flush_removes_the_marker_with_the_indexes(tmp_path: Path) -> None:
    server = EmbeddedRedisStack(tmp_path / "server", persistent=False)  # FLUSHALL: a server of its own
    url = server.start()
    client = redis.Redis.from_url(url, protocol=2, decode_responses=True)
    namespace = Namespace("pynenc")
    specs = load_schemas().all()
    try:
        first_use_in_a_new_process(url, namespace, client)
        assert is_trusted(client, namespace, specs)

        client.flushall()

        assert not is_trusted(client, namespace, specs)
        commands = first_use_in_a_new_process(url, namespace, client)
        assert commands["ft.create"] == len(specs)
        assert is_trusted(client, namespace, specs)
    finally:
        client.close()
        server.stop()


def test_another_schema_version_is_not_trusted(
    redis_url: str, redis_client: redis.Redis, namespace: Namespace
) -> None:
    first_use_in_a_new_process(redis_url, namespace, redis_client)
    specs = load_schemas().all()
    newer = dataclasses.replace(specs[0], version=specs[0].version + 1)
    changed_field = dataclasses.replace(specs[0], fields=specs[0].fields[:-1])

    assert is_trusted(redis_client, namespace, specs)
    assert not is_trusted(redis_client, namespace, [newer, *specs[1:]])
    assert not is_trusted(redis_client, namespace, [changed_field, *specs[1:]])
    assert spec_digest(namespace, changed_field) != spec_digest(namespace, specs[0])


def test_migrate_and_drop_rewrite_the_marker(redis_client: redis.Redis, namespace: Namespace) -> None:
    specs = all_specs()
    report = migrate(redis_client, namespace, specs, LiveExecutor(redis_client))
    assert report.ok
    assert is_trusted(redis_client, namespace, specs)  # migrate wrote it for every index

    drop(redis_client, namespace, specs, LiveExecutor(redis_client))

    assert run(redis_client, "EXISTS", namespace.index_check()) == 0
    assert not is_trusted(redis_client, namespace, specs)
