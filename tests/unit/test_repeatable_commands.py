"""Which commands the client may send again after a lost reply (``core.client.is_repeatable``):
a wrong yes sends a non-idempotent write twice, or skips a cursor batch; a wrong no only
turns a blip into an error."""

from __future__ import annotations

import pytest

from pynenc_redis_stack.core import client
from pynenc_redis_stack.core.client import REPEATABLE_COMMANDS, is_repeatable, register_repeatable_script


@pytest.fixture(autouse=True)
def _no_registered_scripts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no script declared repeatable (the registry is process-wide)."""
    monkeypatch.setattr(client, "_REPEATABLE_SCRIPTS", set())


@pytest.mark.parametrize(
    "args",
    [
        ("GET", "k"),
        ("JSON.GET", "k", "$"),
        ("JSON.SET", "k", "$", "{}"),
        ("FT.SEARCH", "idx", "@app_id:{$a}", "PARAMS", "2", "a", "x", "DIALECT", "2"),
        ("DEL", "k"),
        ("ft.search", "idx", "*"),  # command names are case-insensitive
        ("FT.AGGREGATE", "idx", "*", "LOAD", "1", "@a"),
        ("FT.AGGREGATE", "idx", "@runner_id:{WITHCURSOR}"),  # the word inside a query is no option
    ],
    ids=lambda args: " ".join(map(str, args[:2])),
)
def test_reads_and_writes_of_a_client_computed_value_are_repeatable(args: tuple[str, ...]) -> None:
    assert is_repeatable(args)


@pytest.mark.parametrize(
    "args",
    [
        ("FT.AGGREGATE", "idx", "*", "WITHCURSOR", "COUNT", "10"),  # opens a cursor
        ("FT.CURSOR", "READ", "idx", "123", "COUNT", "10"),  # the server may have consumed the batch
        ("FT.CURSOR", "DEL", "idx", "123"),
        ("INCR", "k"),  # derived from the stored value
        ("JSON.NUMINCRBY", "k", "$.n", "1"),
        ("ZADD", "queue", "1", "m"),
        ("LPUSH", "list", "v"),
        ("EVAL", "return 1", "0"),
        ("EVALSHA", "0" * 40, "0"),  # a script nobody declared repeatable
        ("FT.CREATE", "idx", "ON", "JSON", "SCHEMA", "$.a", "AS", "a", "TAG"),
    ],
    ids=lambda args: " ".join(map(str, args[:2])),
)
def test_commands_whose_second_send_changes_state_or_answer_are_not(args: tuple[str, ...]) -> None:
    assert not is_repeatable(args)


def test_a_script_is_repeatable_once_registered_and_only_that_one() -> None:
    sha, other = "a" * 40, "b" * 40
    assert not is_repeatable(("EVALSHA", sha, "1", "k"))
    register_repeatable_script(sha)
    assert is_repeatable(("EVALSHA", sha, "1", "k"))
    assert is_repeatable(("evalsha", sha, "0"))
    assert not is_repeatable(("EVALSHA", other, "1", "k"))
    assert not is_repeatable(("EVAL", sha, "0"))  # EVAL's argument is a body, never a SHA


def test_the_allow_list_is_upper_case_and_holds_no_cursor_or_counter_command() -> None:
    # is_repeatable upper-cases the sent name, so a lower-case entry could never match
    assert all(name == name.upper() for name in REPEATABLE_COMMANDS)
    assert not REPEATABLE_COMMANDS & {"FT.CURSOR", "FT.AGGREGATE", "EVAL", "EVALSHA", "INCR", "INCRBY"}
