"""The ``index`` command line without a server: usage, options and usage errors."""

from __future__ import annotations

import pytest

from pynenc_redis_stack.cli.main import main


def test_index_without_a_verb_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index"]) == 2
    err = capsys.readouterr().err
    assert "status" in err and "migrate" in err and "drop" in err


@pytest.mark.parametrize("verb", ["status", "migrate", "drop"])
def test_every_verb_takes_the_connection_options(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", verb, "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--url", "--app", "--config-file", "--namespace", "--schema-dir"):
        assert option in out


def test_unknown_app_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", "status", "--app", "no_such_module_for_pynenc_tests:app"]) == 2
    assert "--app no_such_module_for_pynenc_tests:app" in capsys.readouterr().err
