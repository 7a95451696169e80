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

from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.client import run
from pynenc_redis_stack.schema import load_schemas, schema_dir


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
    return [f"{namespace}:{spec.name}" for spec in load_schemas().all()]


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
    assert [(row[0], row[2]) for row in rows] == [
        (alias, "v4" if alias.endswith(":invocations") else "v1") for alias in _expected(namespace)
    ]


def test_drop_of_an_unknown_index_name_is_refused(namespace: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", "drop", "--yes", "--namespace", namespace, "invocation"]) == 1
    assert "unknown index invocation; indexes: app-infos, history, invocations" in capsys.readouterr().err


def test_drop_dry_run_of_nothing_prints_nothing(namespace: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", "drop", "--dry-run", "--namespace", namespace]) == 0
    assert capsys.readouterr().out == "nothing to drop\n"
