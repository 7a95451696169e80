"""``pynenc-redis-stack cli``: a raw command over the configured connection, its reply printed
byte for byte as the real ``redis-cli`` prints it at a terminal (``--no-raw``), and with
``--raw`` as ``redis-cli --raw`` does, for every README cookbook command and every kind of
reply."""

from __future__ import annotations

import io
import re
import subprocess
import uuid

import pytest
import redis

from pynenc_redis_stack.cli.main import main
from pynenc_redis_stack.core.command_line import split_redis_cli_line
from tests.conftest import RedisCli
from tests.integration.test_demo_and_cookbook import cookbook_commands, demo_state

__all__ = ["demo_state"]  # the fixture, shared with the cookbook tests


def real_redis_cli(redis_cli: RedisCli, line: str, mode: str = "--no-raw") -> str:
    """The real redis-cli's output for ``line``, error replies included."""
    completed = subprocess.run(
        [str(redis_cli.binary), "-u", redis_cli.url, mode],
        input=line + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return completed.stdout


def ours(redis_url: str, line: str, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
    code = main(["cli", "--url", redis_url, *options, *split_redis_cli_line(line)])
    return code, capsys.readouterr().out


@pytest.mark.parametrize(("title", "command"), cookbook_commands(), ids=[t for t, _ in cookbook_commands()])
def test_every_cookbook_command_prints_what_redis_cli_prints(
    title: str,
    command: str,
    demo_state: dict[str, str],
    redis_url: str,
    redis_cli: RedisCli,
    capsys: pytest.CaptureFixture[str],
) -> None:
    filled = re.sub(r"<([a-z-]+)>", lambda m: demo_state[m.group(1)], command)
    code, printed = ours(redis_url, filled, capsys)
    assert code == 0
    if command.startswith("FT.INFO"):  # its counters move with every query: compare the shape
        expected = real_redis_cli(redis_cli, filled)
        assert re.sub(r"\d+", "N", printed) == re.sub(r"\d+", "N", expected)
        assert ") num_docs\n" in printed  # a status reply: bare, as redis-cli prints it
    else:
        assert printed == real_redis_cli(redis_cli, filled), title
        assert ours(redis_url, filled, capsys, "--raw")[1] == real_redis_cli(redis_cli, filled, "--raw")
        assert re.match(r"\s*1\) \(integer\) [1-9]", printed), printed  # not an empty answer


def test_every_kind_of_reply_prints_as_redis_cli_prints_it(
    redis_url: str, redis_client: redis.Redis, redis_cli: RedisCli, capsys: pytest.CaptureFixture[str]
) -> None:
    key = f"cli-test:{uuid.uuid4().hex}"
    redis_client.rpush(f"{key}:list", "plain", 'quote " and \\ backslash', "tab\tnew\nline", "ünï 🙂", "")
    redis_client.execute_command("JSON.SET", f"{key}:json", "$", '{"a": [1, {"b": "c"}], "n": null}')
    lines = {
        "status": "PING",
        "integer": f"LLEN {key}:list",
        "nil": f"GET {key}:missing",
        "empty array": f"LRANGE {key}:missing 0 -1",
        "strings": f"LRANGE {key}:list 0 -1",
        "nested arrays (more than 9 elements)": "COMMAND INFO GET SET LPUSH RPUSH JSON.GET FT.SEARCH",
        "json": f"JSON.GET {key}:json $",
        "error": "NOSUCHCOMMAND a b",
    }
    try:
        for kind, line in lines.items():
            code, printed = ours(redis_url, line, capsys)
            assert printed == real_redis_cli(redis_cli, line), kind
            assert code == (1 if kind == "error" else 0), kind
            code, printed = ours(redis_url, line, capsys, "--raw")
            assert printed == real_redis_cli(redis_cli, line, "--raw"), f"{kind} --raw"
    finally:
        redis_client.delete(f"{key}:list", f"{key}:json")


def test_lines_from_stdin_are_commands(
    redis_url: str, redis_cli: RedisCli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = 'PING\nECHO "two words"\n\nECHO "\\x41\\n"\n'
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    assert main(["cli", "--url", redis_url]) == 0
    assert capsys.readouterr().out == 'PONG\n"two words"\n"A\\n"\n'
