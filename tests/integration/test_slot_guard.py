"""The slot guard (tests/slot_guard.py) finds each kind of command a cluster refuses, on the
session's ordinary server."""

from __future__ import annotations

import hashlib

import pytest
import redis

from tests.slot_guard import SlotGuard, SlotGuardError, command_keys, instrumented


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        (("EVALSHA", "0" * 40, "2", "a", "b", "arg"), ["a", "b"]),
        (("JSON.MGET", "a", "b", "$"), ["a", "b"]),
        (("JSON.MSET", "a", "$", "1", "b", "$", "2"), ["a", "b"]),
        (("DEL", "a", "b"), ["a", "b"]),
        (("JSON.SET", "a", "$", "1"), ["a"]),
        (("FT.SEARCH", "idx", "*"), []),
        (("PING",), []),
    ],
)
def test_keys_of_a_command(args: tuple[str, ...], keys: list[str]) -> None:
    assert command_keys(args) == keys


def test_a_script_reports_undeclared_keys_and_search_calls_and_keeps_its_reply(
    redis_client: redis.Redis,
) -> None:
    source = """
local n = redis.call('INCR', KEYS[1])
redis.call('SET', 'guard:undeclared', n)
redis.pcall('FT._LIST')
return {n, ARGV[1]}
"""
    violations, reply = redis_client.eval(instrumented(source), 1, "guard:declared{t}", "arg")
    assert sorted(violations) == ["FT:FT._LIST", "KEY:SET guard:undeclared"]
    assert reply[1] == "arg"
    # a script that keeps to its keys reports nothing, and a nil reply stays nil
    assert redis_client.eval(instrumented("redis.call('GET', KEYS[1])"), 1, "guard:declared{t}") == [[]]
    # a shebang stays the first line
    assert redis_client.eval(instrumented("#!lua flags=no-writes\nreturn 7"), 0) == [[], 7]


def test_strict_mode_fails_what_a_cluster_refuses() -> None:
    guard = SlotGuard(strict=True)
    guard.check(("JSON.SET", "a", "$", "1"))  # one key: always fine
    guard.check(("DEL", "x{tag}", "y{tag}"))  # one slot by hash tag
    with pytest.raises(SlotGuardError, match="keys span slots"):
        guard.check(("DEL", "x", "y"))
    with pytest.raises(SlotGuardError, match="MULTI keys span slots"):
        guard.check_transaction([("SET", "x", "1"), ("SET", "y", "1")])
    with pytest.raises(SlotGuardError, match=r"FT\.\* inside MULTI"):
        guard.check_transaction([("SET", "x{t}", "1"), ("FT.SEARCH", "idx", "*")])
    with pytest.raises(SlotGuardError, match="undeclared key in a script"):
        guard.unwrap(("EVAL", "return 1", "0"), [["KEY:SET k"], 1])


def test_a_script_is_sent_as_the_same_command_of_its_instrumented_source() -> None:
    """``EVALSHA`` stays ``EVALSHA`` (of the instrumented script), ``SCRIPT LOAD`` loads the
    instrumented source, in both spellings: command counts and round trips are an unguarded
    run's, and the server caches an instrumented script exactly when the original would be."""
    source = "return redis.call('GET', KEYS[1])"
    guard = SlotGuard(strict=True)
    guard.learn(source)
    wrapped = instrumented(source)
    original_sha, wrapped_sha = (hashlib.sha1(text.encode()).hexdigest() for text in (source, wrapped))
    assert guard.rewrite_script(("EVALSHA", original_sha, "1", "k")) == ("EVALSHA", wrapped_sha, "1", "k")
    assert guard.rewrite_script(("EVAL", source, "1", "k")) == ("EVAL", wrapped, "1", "k")
    assert guard.rewrite_script(("SCRIPT", "LOAD", source)) == ("SCRIPT", "LOAD", wrapped)
    assert guard.rewrite_script(("SCRIPT LOAD", source)) == ("SCRIPT LOAD", wrapped)
    assert guard.rewrite_script(("GET", "k")) is None
