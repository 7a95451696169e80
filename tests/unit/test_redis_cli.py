"""``redis-cli`` lines: what a dry run prints splits back into the exact arguments."""

from __future__ import annotations

import pytest

from pynenc_redis_stack.core.command_line import redis_cli_line, redis_cli_quote, split_redis_cli_line
from pynenc_redis_stack.core.errors import QueryError

ROUND_TRIPS = [
    # (argument, how redis_cli_quote writes it)
    ("pynenc:invocations", "pynenc:invocations"),
    ("a-b.c:d", "a-b.c:d"),
    ("{}|@*?", "{}|@*?"),
    ("@f:{$p}", "@f:{$p}"),
    ("$.a", "$.a"),
    ('q"uote', '"q\\"uote"'),
    ("it's", '"it\'s"'),
    ("back\\slash", '"back\\\\slash"'),
    ("sp ace", '"sp ace"'),
    ("", '""'),
    ("new\nline", '"new\\nline"'),
    ("cr\rtab\t", '"cr\\rtab\\t"'),
    ("\x00\x7f\x1b", '"\\x00\\x7f\\x1b"'),
    ("日本", "日本"),
    ("日本 ü", '"日本 ü"'),
    ("x} | @status:{failed", '"x} | @status:{failed"'),
    ("-.:{}|@*?\\\"' \n日本", '"-.:{}|@*?\\\\\\"\' \\n日本"'),
]


@pytest.mark.parametrize(("arg", "quoted"), ROUND_TRIPS)
def test_quote_then_split_gives_the_argument_back(arg: str, quoted: str) -> None:
    assert redis_cli_quote(arg) == quoted
    assert split_redis_cli_line(quoted) == [arg]


def test_a_line_of_every_argument_splits_back_whole() -> None:
    args = ["FT.SEARCH", *(arg for arg, _quoted in ROUND_TRIPS)]
    line = redis_cli_line(args)
    assert "\n" not in line
    assert split_redis_cli_line(line) == args


def test_splitting_follows_redis_cli() -> None:
    assert redis_cli_line(["GET", "a b"]) == 'GET "a b"'
    assert split_redis_cli_line("SET k 'it\\'s' \"x\\x41\\n\"") == ["SET", "k", "it's", "xA\n"]
    assert split_redis_cli_line("  GET   k  ") == ["GET", "k"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [('GET "abc', "unbalanced"), ("GET 'abc", "unbalanced"), ('GET "a"b', "closing quote must be followed")],
)
def test_malformed_lines_are_refused(line: str, problem: str) -> None:
    with pytest.raises(QueryError, match=problem):
        split_redis_cli_line(line)
