"""The embedded Redis Stack and its CLI, each test with servers of its own (no mocks)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.core.errors import EmbeddedServerError
from pynenc_redis_stack.server import HOME_ENV_VAR, EmbeddedRedisStack


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test off the user's default data directory."""
    monkeypatch.setenv(HOME_ENV_VAR, str(tmp_path / "default-home"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedisStack]:
    """One non-persistent server shared by the read-only tests of this module."""
    server = EmbeddedRedisStack(tmp_path_factory.mktemp("stack"), persistent=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(stack: EmbeddedRedisStack) -> Iterator[redis.Redis]:
    url = stack.url()
    assert url is not None
    with redis.Redis.from_url(url, protocol=2, decode_responses=True) as conn:
        yield conn


def test_server_listens_on_loopback_with_a_non_default_port(
    stack: EmbeddedRedisStack, client: redis.Redis
) -> None:
    status = stack.status()
    assert status.running
    assert status.port is not None and status.port != 6379
    password = stack.password_file.read_text().strip()
    assert status.url == f"redis://default:{password}@127.0.0.1:{status.port}/0"
    assert client.ping() is True
    assert client.config_get("bind") == {"bind": "127.0.0.1"}
    assert status.version is not None and status.version.startswith("8.")


def test_search_and_json_modules_are_loaded_with_stack_limits(
    stack: EmbeddedRedisStack, client: redis.Redis
) -> None:
    names = {module["name"] for module in client.module_list()}
    assert {"search", "ReJSON"} <= names
    assert {"search", "ReJSON"} <= set(stack.status().modules)
    assert client.execute_command("FT.CONFIG", "GET", "MAXSEARCHRESULTS") == [["MAXSEARCHRESULTS", "10000"]]
    assert client.execute_command("FT.CONFIG", "GET", "MAXAGGREGATERESULTS") == [
        ["MAXAGGREGATERESULTS", "10000"]
    ]


def test_json_documents_are_searchable(client: redis.Redis) -> None:
    client.execute_command(
        "FT.CREATE", "unit-idx", "ON", "JSON", "PREFIX", "1", "unit:doc:",
        "SCHEMA", "$.status", "AS", "status", "TAG",
    )  # fmt: skip
    # Written after FT.CREATE, so indexed synchronously (no background scan).
    client.json().set("unit:doc:1", "$", {"status": "RUNNING"})
    result = client.execute_command("FT.SEARCH", "unit-idx", "@status:{RUNNING}")
    assert result[:2] == [1, "unit:doc:1"]


def test_start_is_idempotent(stack: EmbeddedRedisStack) -> None:
    before = stack.status()
    assert stack.start() == before.url
    # A second instance on the same data dir (another process, in real use).
    assert EmbeddedRedisStack(stack.data_dir).start() == before.url
    assert stack.status().pid == before.pid


def test_start_on_another_port_while_running_is_refused(
    stack: EmbeddedRedisStack,
) -> None:
    port = stack.status().port
    assert port is not None
    with pytest.raises(EmbeddedServerError, match="Already running"):
        stack.start(port=port + 1 if port < 65535 else port - 1)


def test_cli_url_and_status(stack: EmbeddedRedisStack, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = str(stack.data_dir)
    assert main(["server", "url", "--data-dir", data_dir]) == 0
    assert capsys.readouterr().out.strip() == stack.url()
    assert main(["server", "status", "--data-dir", data_dir]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "running: yes" in lines
    assert f"url: {stack.url()}" in lines
    assert any(line.startswith("module: search ") for line in lines)


def test_stop_then_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = EmbeddedRedisStack(tmp_path / "data", persistent=False)
    url = server.start()
    assert url.startswith("redis://default:") and "@127.0.0.1:" in url
    pid = server.status().pid
    assert pid is not None

    assert server.stop() is True
    assert server.stop() is False
    status = server.status()
    assert not status.running and status.pid is None and status.url is None
    assert server.url() is None
    assert not server.state_file.exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, protocol=2, socket_connect_timeout=1).ping()

    data_dir = str(server.data_dir)
    assert main(["server", "url", "--data-dir", data_dir]) == 1
    assert main(["server", "status", "--data-dir", data_dir]) == 1
    assert "running: no" in capsys.readouterr().out.splitlines()
    assert main(["server", "stop", "--data-dir", data_dir]) == 0


def test_restart_reuses_the_previous_port(tmp_path: Path) -> None:
    server = EmbeddedRedisStack(tmp_path, persistent=False)
    first = server.start()
    assert server.stop() is True
    try:
        assert server.start() == first
    finally:
        server.stop()


def test_start_failure_reports_the_server_log(tmp_path: Path) -> None:
    # A port someone else listens on: redis-server exits and we show why.
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        server = EmbeddedRedisStack(tmp_path, persistent=False)
        with pytest.raises(EmbeddedServerError, match="Address already in use"):
            server.start(port=port)
    assert not server.status().running
    assert not server.state_file.exists()
