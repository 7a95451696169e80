"""What the command prints besides its reports: the progress bar and errors (no server)."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from pynenc_redis_stack.cli import format_table
from pynenc_redis_stack.cli.main import build_parser, main
from pynenc_redis_stack.cli.progress import ProgressBar

CLOSED = "redis://127.0.0.1:1/0"
"""Nothing listens there: connecting fails at once."""


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_the_bar_prints_one_line_per_tenth() -> None:
    stream = io.StringIO()
    with ProgressBar(stream, width=10).counting("import-redis") as count:
        for done in range(0, 41):
            count(done, 40)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11  # 0 %, 10 %, ... 100 %
    assert lines[0] == "import-redis [..........]   0% 0/40"
    assert lines[-1] == "import-redis [##########] 100% 40/40"


def test_a_quiet_bar_prints_nothing_for_a_wait_that_ends_at_once() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, quiet_seconds=60.0)
    bar.update("ns:idx:history:v1", 0.0, "0 docs")
    bar.update("ns:idx:history:v1", 1.0, "0 docs")
    bar.done("ns:idx:history:v1")
    assert stream.getvalue() == ""


def test_on_a_terminal_the_bar_is_redrawn_in_place() -> None:
    stream = Terminal()
    bar = ProgressBar(stream, width=4)
    bar.update("ns:idx:invocations:v2", 0.5, "10 docs")
    bar.update("ns:idx:invocations:v2", 1.0, "20 docs")
    bar.done("ns:idx:invocations:v2")
    assert stream.getvalue() == (
        "\rns:idx:invocations:v2 [##..]  50% 10 docs\rns:idx:invocations:v2 [####] 100% 20 docs\n"
    )


def _verbs(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every runnable command line of ``parser``: ``("server", "start")``, ``("prune",)``..."""
    groups = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not groups:
        return [path]
    return [verb for name, sub in groups[0].choices.items() for verb in _verbs(sub, (*path, name))]


VERBS = _verbs(build_parser())


def test_every_verb_is_listed() -> None:
    assert set(VERBS) == {
        ("server", "start"), ("server", "stop"), ("server", "status"), ("server", "url"),
        ("index", "status"), ("index", "migrate"), ("index", "drop"), ("import-redis",), ("prune",),
        ("query", "invocations"), ("query", "history"), ("query", "runners"), ("query", "count"), ("cli",),
    }  # fmt: skip


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_every_verb_takes_traceback(verb: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*verb, "--help"]) == 0
    assert "--traceback" in capsys.readouterr().out


@pytest.mark.parametrize("verb", [v for v in VERBS if v[0] != "server"], ids=" ".join)
def test_every_configured_verb_takes_the_one_option_set(
    verb: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*verb, "--help"]) == 0
    out = capsys.readouterr().out
    assert "connection and configuration (as pynenc resolves them)" in out
    for option in ("--url", "--app", "--config-file", "--namespace"):
        assert option in out


UNREACHABLE = [
    ["index", "status", "--url", CLOSED],
    ["index", "migrate", "--url", CLOSED],
    ["index", "drop", "--yes", "--url", CLOSED],
    ["import-redis", "--app-id", "a", "--url", CLOSED, "--source-url", CLOSED],
    ["prune", "--older-than", "30d", "--app-id", "a", "--url", CLOSED],
    ["query", "invocations", "--app-id", "a", "--url", CLOSED],
]


@pytest.mark.parametrize("command", UNREACHABLE, ids=lambda command: " ".join(command[:2]))
def test_an_error_is_one_line_unless_traceback_is_asked(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(command) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("pynenc-redis-stack: ")
    assert "127.0.0.1:1" in captured.err and "Traceback" not in captured.out + captured.err

    for with_traceback in (["--traceback", *command], [*command, "--traceback"]):
        assert main(with_traceback) == 1
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last)") and "ConnectionError" in err


def test_the_cli_command_takes_its_options_before_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    """After the command, ``--traceback`` is an argument of the command sent."""
    assert main(["cli", "--url", CLOSED, "PING", "--traceback"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "127.0.0.1:1" in err
    assert main(["cli", "--traceback", "--url", CLOSED, "PING"]) == 1
    assert capsys.readouterr().err.startswith("Traceback (most recent call last)")


def test_a_server_verb_error_is_one_line_unless_traceback_is_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The data directory cannot be made (a file stands in its path): the error comes before
    any server is looked for."""
    (tmp_path / "file").touch()
    command = ["server", "start", "--data-dir", str(tmp_path / "file" / "data")]
    assert main(command) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("pynenc-redis-stack: ")
    assert "Not a directory" in captured.err

    for with_traceback in (["--traceback", *command], [*command, "--traceback"]):
        assert main(with_traceback) == 1
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last)") and "NotADirectoryError" in err


def test_the_status_table_aligns_numbers_and_their_header_right() -> None:
    assert format_table(
        [("ALIAS", "DOCS", "DETAIL"), ("ns:invocations", "200000", ""), ("ns:history", "7", "drifted")],
        right_aligned={1},
    ) == [
        "ALIAS             DOCS  DETAIL",
        "ns:invocations  200000",
        "ns:history           7  drifted",
    ]
