"""The README's one way to configure the whole distributed app without the builder: its
environment-variable set, and the same settings as a YAML file or ``[tool.pynenc]``, give
every component of this package to an app built with ``Pynenc()``. A worker (pynenc's own
``runner start``) and a caller in separate processes share only the server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unique_app_id

README = Path(__file__).resolve().parents[2] / "README.md"
DEADLINE_SECONDS = 120.0

TASKS_MODULE = """\
from pynenc import Pynenc

app = Pynenc()


@app.task
def add(x: int, y: int) -> int:
    return x + y
"""


def readme_block(marker: str) -> str:
    """The fenced block that follows ``<!-- <marker>:start -->`` in the README."""
    block = re.search(
        rf"<!-- {marker}:start -->\s*```[a-z]*\n(.*?)```", README.read_text(encoding="utf-8"), re.S
    )
    assert block, f"README has no {marker} block"
    return block.group(1)


def readme_settings() -> dict[str, str]:
    """``{PYNENC__NAME: value}`` of the README's environment block."""
    settings = {}
    for line in readme_block("config-env").splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        settings[name] = value
    return settings


def _base_environment() -> dict[str, str]:
    """The test process's environment without its PYNENC__ settings (the session exports
    its server's URL)."""
    return {name: value for name, value in os.environ.items() if not name.startswith("PYNENC__")}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "tasks.py").write_text(TASKS_MODULE)
    return tmp_path


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def test_the_readme_block_names_every_component_of_this_package() -> None:
    from pynenc_redis_stack.builder import COMPONENTS

    settings = readme_settings()
    for config_key, class_name in COMPONENTS.values():
        assert settings.get(f"PYNENC__{config_key.upper()}") == class_name
    yaml_lines = dict(line.split(": ", 1) for line in readme_block("config-yaml").splitlines())
    assert {f"PYNENC__{key.upper()}": value for key, value in yaml_lines.items()} == settings


@pytest.mark.parametrize("source", ["env", "yaml", "pyproject"])
def test_worker_and_caller_configured_without_the_builder(
    request: pytest.FixtureRequest,
    redis_url: str,
    project: Path,
    started: list[subprocess.Popen[str]],
    source: str,
) -> None:
    settings = readme_settings()
    settings["PYNENC__APP_ID"] = unique_app_id(request)
    settings["PYNENC__REDIS_STACK_URL"] = redis_url
    environment = {**_base_environment(), "PYTHONPATH": "."}
    if source == "env":
        environment.update(settings)
    else:
        plain = {name.removeprefix("PYNENC__").lower(): value for name, value in settings.items()}
        if source == "yaml":
            (project / "pynenc.yaml").write_text("".join(f"{k}: {v}\n" for k, v in plain.items()))
            environment["PYNENC__FILEPATH"] = "pynenc.yaml"
        else:
            lines = "".join(f'{k} = "{v}"\n' for k, v in plain.items())
            (project / "pyproject.toml").write_text(f"[tool.pynenc]\n{lines}")

    worker_log = (project / "worker.log").open("w")
    pynenc_command = str(Path(sys.executable).with_name("pynenc"))
    started.append(
        subprocess.Popen(
            [pynenc_command, "--app", "tasks.app", "runner", "start"],
            cwd=project,
            env=environment,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    )
    caller = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tasks import add, app; "
            "print(add(1, 2).result, type(app.broker).__name__, type(app.orchestrator).__name__)",
        ],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
    )
    worker_log.close()
    assert caller.returncode == 0, caller.stderr[-3000:] + (project / "worker.log").read_text()[-3000:]
    assert caller.stdout.split() == ["3", "RedisStackBroker", "RedisStackOrchestrator"]
    assert started[0].poll() is None, (project / "worker.log").read_text()[-3000:]
