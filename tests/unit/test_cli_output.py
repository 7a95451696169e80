"""What the command prints besides its reports: the progress bar and errors (no server)."""

from __future__ import annotations

import io

import pytest

from pynenc_redis_stack.cli.main import main
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


@pytest.mark.parametrize("command", [["index", "status"], ["prune", "--older-than", "30d", "--app-id", "a"]])
def test_an_error_is_one_line_unless_traceback_is_asked(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--url", CLOSED]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pynenc-redis-stack: ") and "127.0.0.1:1" in err

    assert main(["--traceback", *command, "--url", CLOSED]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)") and "ConnectionError" in err
