"""The ``index`` command line: argument parsing and where the configuration comes from.

Every verb reads the session's real server; all of them run ``index status`` (reads only) on
namespaces nothing else uses, so they create nothing and leave nothing behind.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pynenc import PynencBuilder
from pynenc.identifiers.task_id import TaskId

from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.schema import all_specs, schema_dir


@pytest.fixture
def namespace(redis_client: redis.Redis) -> Iterator[str]:
    """A namespace nothing uses; the tests must not create anything in it."""
    name = f"t-cli-{uuid.uuid4().hex[:10]}"
    yield name
    assert [i for i in run(redis_client, "FT._LIST") if str(i).startswith(f"{name}:")] == []
    assert redis_client.exists(f"{name}:lock:index-migrate") == 0


@pytest.fixture(autouse=True)
def _no_ambient_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only PYNENC__REDIS_URL (exported by the session) configures these tests."""
    for variable in ("PYNENC__REDIS_STACK_URL", "PYNENC__REDIS_STACK_NAMESPACE", "PYNENC__FILEPATH"):
        monkeypatch.delenv(variable, raising=False)


def _aliases(out: str) -> list[str]:
    """The ALIAS column of ``index status``."""
    return [line.split()[0] for line in out.splitlines()[1:]]


def _expected(namespace: str) -> list[str]:
    """Every index of the package: the state backend's, then the orchestrator's."""
    return [f"{namespace}:{spec.name}" for spec in all_specs()]


def test_environment_configures_by_default(
    monkeypatch: pytest.MonkeyPatch, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYNENC__REDIS_STACK_NAMESPACE", namespace)
    assert main(["index", "status"]) == 1  # nothing exists in that namespace
    assert _aliases(capsys.readouterr().out) == _expected(namespace)


def test_url_and_namespace_flags_override_the_environment(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYNENC__REDIS_STACK_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PYNENC__REDIS_STACK_NAMESPACE", "not-this-one")
    assert main(["index", "status"]) == 1
    assert "127.0.0.1:1" in capsys.readouterr().err  # the environment's (closed) port was used
    assert main(["index", "status", "--url", redis_url, "--namespace", namespace]) == 1
    assert _aliases(capsys.readouterr().out) == _expected(namespace)


def test_config_file(
    tmp_path: Path, redis_url: str, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pynenc.yaml"
    path.write_text(f"redis_stack_url: {redis_url}\nredis_stack_namespace: {namespace}\n")
    assert main(["index", "status", "--config-file", str(path)]) == 1
    assert _aliases(capsys.readouterr().out) == _expected(namespace)


@pytest.mark.parametrize("form", ["module:variable", "pynenc"])
def test_app_configuration(
    form: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = f"lifecycle_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(
            f"""
            from pynenc import Pynenc

            tasks_app = Pynenc(config_values={{
                "app_id": "cli-test",
                "redis_url": {redis_url!r},
                "redis_stack_namespace": {namespace!r},
            }})
            """
        )
    )
    monkeypatch.chdir(tmp_path)  # the CLI imports from the current directory, like python -m
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = f"{module}:tasks_app" if form == "module:variable" else f"{module}.tasks_app"
    assert main(["index", "status", "--app", spec]) == 1
    assert _aliases(capsys.readouterr().out) == _expected(namespace)


def test_schema_dir_is_compared_instead_of_the_installed_files(
    tmp_path: Path, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for source in schema_dir().glob("*.yaml"):
        text = source.read_text()
        if source.name == "invocations.yaml":
            text = text.replace("version: 1", "version: 4")
        (tmp_path / source.name).write_text(text)
    assert main(["index", "status", "--namespace", namespace, "--schema-dir", str(tmp_path)]) == 1
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    versions = {f"{namespace}:{spec.name}": f"v{spec.version}" for spec in all_specs()}
    assert [(row[0], row[2]) for row in rows] == [
        (alias, "v4" if alias.endswith(":invocations") else versions[alias]) for alias in _expected(namespace)
    ]


def test_drop_of_an_unknown_index_name_is_refused(namespace: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", "drop", "--yes", "--namespace", namespace, "invocation"]) == 1
    names = ", ".join(
        f"{namespace}:{name}"
        for name in (
            "app-infos, atomic-service-executions, history, invocations, orchestrator-invocations, "
            "orchestrator-waits, payloads, runner-contexts, runner-heartbeats"
        ).split(", ")
    )
    assert f"unknown index invocation; indexes: {names}" in capsys.readouterr().err


def test_drop_dry_run_of_nothing_prints_nothing(namespace: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", "drop", "--dry-run", "--namespace", namespace]) == 0
    assert capsys.readouterr().out == "nothing to drop\n"


# -- the orchestrator's indexes: one registry, one lifecycle -----------------------------------

ORCHESTRATOR_INDEXES = (
    "orchestrator-invocations",
    "orchestrator-waits",
    "runner-heartbeats",
    "atomic-service-executions",
)


@pytest.fixture
def used_namespace(redis_client: redis.Redis) -> Iterator[str]:
    """A namespace the test may create indexes and documents in; all removed afterwards."""
    name = f"t-cli-{uuid.uuid4().hex[:10]}"
    yield name
    for index in run(redis_client, "FT._LIST"):
        if str(index).startswith(f"{name}:"):
            run(redis_client, "FT.DROPINDEX", index)
    keys = list(redis_client.scan_iter(match=f"{name}:*", count=1000))
    if keys:
        redis_client.unlink(*keys)


def _ours(client: redis.Redis, namespace: str) -> list[str]:
    return sorted(str(i) for i in run(client, "FT._LIST") if str(i).startswith(f"{namespace}:"))


def _states(out: str) -> dict[str, str]:
    """``index status``: alias name -> state."""
    return {line.split()[0].split(":", 1)[1]: line.split()[3] for line in out.splitlines()[1:]}


def test_the_orchestrators_first_use_creates_its_indexes_through_the_lifecycle(
    redis_url: str, used_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An orchestrator alone creates its four indexes on first use, as ``index migrate``
    would (versioned name behind the alias); ``index status`` lists them with the others."""
    app = (
        PynencBuilder()
        .app_id("orchestrator-first-use")
        .memory()
        .redis_stack(url=redis_url, namespace=used_namespace, components=("orchestrator",))
        .build()
    )
    assert list(app.orchestrator.get_task_invocation_ids(TaskId("tests.cli", "nothing"))) == []
    assert _ours(redis_client_of(redis_url), used_namespace) == sorted(
        f"{used_namespace}:idx:{name}:v{_version(name)}" for name in ORCHESTRATOR_INDEXES
    )
    assert main(["index", "status", "--namespace", used_namespace]) == 1  # the backend's are missing
    states = _states(capsys.readouterr().out)
    assert list(states) == [spec.name for spec in all_specs()]
    assert {name: states[name] for name in ORCHESTRATOR_INDEXES} == dict.fromkeys(ORCHESTRATOR_INDEXES, "ok")
    assert set(states.values()) == {"ok", "missing"}


def _version(index_name: str) -> int:
    (version,) = [spec.version for spec in all_specs() if spec.name == index_name]
    return version


def redis_client_of(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, protocol=2, decode_responses=True)


def test_migrate_creates_and_rebuilds_and_drop_drops_the_orchestrators_indexes(
    redis_client: redis.Redis, used_namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = used_namespace
    args = ["--namespace", ns]
    every = sorted(f"{ns}:idx:{spec.name}:v{spec.version}" for spec in all_specs())

    # dry runs change nothing, and print the orchestrator's commands with the others
    assert main(["index", "migrate", "--dry-run", *args]) == 0
    printed = capsys.readouterr().out.splitlines()
    for name in ORCHESTRATOR_INDEXES:
        physical = f"{ns}:idx:{name}:v{_version(name)}"
        assert f"FT.ALIASADD {ns}:{name} {physical}" in printed
        assert any(line.startswith(f"FT.CREATE {physical} ON JSON PREFIX 1 ") for line in printed)
    assert _ours(redis_client, ns) == []

    assert main(["index", "migrate", *args]) == 0
    created = capsys.readouterr().out.splitlines()
    assert created == [
        f"{ns}:{spec.name}: created {ns}:idx:{spec.name}:v{spec.version}" for spec in all_specs()
    ]
    assert _ours(redis_client, ns) == every
    assert main(["index", "status", *args]) == 0
    assert set(_states(capsys.readouterr().out).values()) == {"ok"}

    # a new version of one orchestrator schema: built beside, alias switched, old one dropped
    for source in schema_dir().glob("*.yaml"):
        text = source.read_text()
        if source.name == "orchestrator_waits.yaml":
            text = text.replace("version: 1", "version: 2")
        (tmp_path / source.name).write_text(text)
    schema_args = [*args, "--schema-dir", str(tmp_path)]
    assert main(["index", "migrate", "--dry-run", *schema_args]) == 0
    assert f"FT.ALIASUPDATE {ns}:orchestrator-waits {ns}:idx:orchestrator-waits:v2" in capsys.readouterr().out
    assert _ours(redis_client, ns) == every
    assert main(["index", "migrate", *schema_args]) == 0
    assert (
        f"{ns}:orchestrator-waits: migrated {ns}:idx:orchestrator-waits:v1 -> {ns}:idx:orchestrator-waits:v2; "
        f"dropped {ns}:idx:orchestrator-waits:v1"
    ) in capsys.readouterr().out.splitlines()
    upgraded = sorted({*every, f"{ns}:idx:orchestrator-waits:v2"} - {f"{ns}:idx:orchestrator-waits:v1"})
    assert _ours(redis_client, ns) == upgraded
    assert main(["index", "status", *schema_args]) == 0
    capsys.readouterr()

    # drop: a dry run drops nothing; by name, then everything
    assert main(["index", "drop", "--dry-run", *args]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert f"FT.DROPINDEX {ns}:idx:orchestrator-waits:v2" in printed
    assert f"FT.DROPINDEX {ns}:idx:runner-heartbeats:v1" in printed
    assert _ours(redis_client, ns) == upgraded
    assert main(["index", "drop", "--yes", *args, "runner-heartbeats"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{ns}:runner-heartbeats: dropped {ns}:idx:runner-heartbeats:v1 (documents kept)"
    ]
    assert f"{ns}:idx:runner-heartbeats:v1" not in _ours(redis_client, ns)
    assert main(["index", "drop", "--yes", *args]) == 0
    dropped = capsys.readouterr().out
    assert f"{ns}:orchestrator-waits: dropped {ns}:idx:orchestrator-waits:v2" in dropped
    assert f"{ns}:atomic-service-executions: dropped {ns}:idx:atomic-service-executions:v1" in dropped
    assert _ours(redis_client, ns) == []
