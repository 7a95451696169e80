"""The embedded server's files and command line, without starting a server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.server import HOME_ENV_VAR, EmbeddedRedisStack, default_data_dir


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test off the user's default data directory."""
    monkeypatch.setenv(HOME_ENV_VAR, str(tmp_path / "default-home"))


def test_stale_state_file_is_cleaned_up(tmp_path: Path) -> None:
    # The pid of a process that has exited (and was reaped) is a dead pid.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    server = EmbeddedRedisStack(tmp_path, persistent=False)
    server.state_file.write_text(json.dumps({"pid": int(dead.stdout), "port": 1, "url": "redis://x"}))
    assert not server.status().running
    assert server.stop() is False
    assert not server.state_file.exists()


def test_default_data_dir_honours_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOME_ENV_VAR, str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home"
    monkeypatch.delenv(HOME_ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "pynenc-redis-stack"


@pytest.mark.parametrize(
    "argv",
    [["server", "start", "--port", "0"], ["server", "start", "--port", "x"], ["nope"]],
)
def test_cli_bad_input_exits_2(argv: list[str]) -> None:
    assert main(argv) == 2
