"""Partial runner-id lookups and complete answers, against the real server.

MINPREFIX (2) and MAXPREFIXEXPANSIONS (200) would make contains/prefix tag queries miss
matches, query-syntax characters in a partial would be wildcards or injected clauses, and the
default ``ON_TIMEOUT RETURN`` policy would cut slow answers short without an error.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
import redis
from pynenc.identifiers.invocation_id import InvocationId

from pynenc_redis_stack.core import codec, query
from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.state_backend import documents as docs
from tests.conftest import unique_app_id
from tests.integration.traps import (
    T0,
    backend_of,
    history_entry,
    make_app,
    runner_context,
    runner_ids,
)

if TYPE_CHECKING:
    from pynenc_redis_stack.state_backend.backend import RedisStackStateBackend


# -- substring lookups ----------------------------------------------------------------------

SPECIAL_IDS = [
    "a*b",
    "axb",
    "a?b",
    "a-b",
    "a|b",
    "a\\b",
    "a\\\\b",
    'a"b',
    "A*B",
    "x",
    "yxy",
    "a:b",
    "a%3Ab",
    "a b",
    "a\tb",
    "a\nb",
]


@pytest.fixture
def special_contexts(request: pytest.FixtureRequest, redis_url: str) -> RedisStackStateBackend:
    backend = backend_of(make_app(unique_app_id(request), redis_url))
    for runner_id in SPECIAL_IDS:
        backend._store_runner_context(runner_context(runner_id, runner_cls=f"cls-{runner_id}"))
    return backend


def test_single_character_partial_matches(
    special_contexts: RedisStackStateBackend,
) -> None:
    """MINPREFIX is 2: a 1-character prefix/contains tag query would match nothing."""
    assert sorted(runner_ids(special_contexts, "x")) == ["axb", "x", "yxy"]
    assert sorted(runner_ids(special_contexts, "y")) == ["yxy"]
    assert sorted(runner_ids(special_contexts, "A")) == ["A*B", "a%3Ab"]
    assert sorted(runner_ids(special_contexts, "%")) == ["a%3Ab"]


@pytest.mark.parametrize(
    ("partial", "expected"),
    [
        ("a*b", ["a*b"]),  # not a wildcard: 'axb' must not match
        ("*", ["A*B", "a*b"]),
        ("a*", ["a*b"]),
        ("A*B", ["A*B"]),  # case-sensitive
        ("a?b", ["a?b"]),  # not a single-character wildcard
        ("?", ["a?b"]),
        ("-", ["a-b"]),  # not negation
        ("|", ["a|b"]),  # not alternation
        ("\\", ["a\\b", "a\\\\b"]),  # a lone backslash
        ("a\\b", ["a\\b"]),
        ("\\\\", ["a\\\\b"]),  # two backslashes: not the same as one
        ("a\\\\b", ["a\\\\b"]),
        ("\t", ["a\tb"]),
        ("\n", ["a\nb"]),  # a newline inside the literal
        ('"', ['a"b']),  # cannot close the string literal
        ('a"b', ['a"b']),
        (":", ["a:b"]),  # stored as %3A in the key, not in the id
        ("%3A", ["a%3Ab"]),
        (" ", ["a b"]),
        ('") > 0 || contains(@runner_id, "', []),  # no expression injection
    ],
)
def test_special_characters_in_partial_are_literal(
    special_contexts: RedisStackStateBackend, partial: str, expected: list[str]
) -> None:
    contexts = list(special_contexts.get_matching_runner_contexts(partial))
    assert sorted(c.runner_id for c in contexts) == sorted(expected)
    assert all(c.runner_cls == f"cls-{c.runner_id}" for c in contexts)  # each id its own document


MANY = 5000


@pytest.fixture(scope="module")
def many_contexts(request: pytest.FixtureRequest, redis_url: str) -> RedisStackStateBackend:
    """5 000 distinct runner ids containing 'zz' (MAXPREFIXEXPANSIONS is 200), plus 5 000
    history entries in one range, on one app."""
    backend = backend_of(make_app(unique_app_id(request, "-many"), redis_url))
    # The documents _store_runner_context writes, sent in one pipeline for speed.
    pipe = backend.client.pipeline(transaction=False)
    for n in range(MANY):
        # a random suffix without digits, so it can never add a match for '-0042'
        suffix = uuid.uuid4().hex[:6].translate(str.maketrans("0123456789", "ghijklmnop"))
        context = runner_context(f"runner-{n:05d}-zz-{suffix}")
        document = codec.validated(
            backend.schemas.runner_contexts,
            docs.runner_context_document(backend.app.app_id, context),
        )
        run(
            pipe,
            "JSON.SET",
            backend.keys.runner_context(context.runner_id),
            "$",
            codec.dumps(document),
        )
    pipe.execute()
    backend._store_runner_context(runner_context("runner-no-match"))
    for start in range(0, MANY, 1000):
        ids = [InvocationId(f"inv-{n:05d}") for n in range(start, start + 1000)]
        backend._add_histories(ids, history_entry("template", T0 + timedelta(microseconds=start)))
    return backend


def test_contains_lookup_beyond_prefix_expansion_limit(
    many_contexts: RedisStackStateBackend,
) -> None:
    ids = runner_ids(many_contexts, "zz")
    assert len(ids) == MANY > 200
    assert len(set(ids)) == MANY
    assert all("zz" in i for i in ids)


def test_contains_lookup_subset(many_contexts: RedisStackStateBackend) -> None:
    ids = runner_ids(many_contexts, "-0042")
    assert sorted(i[:12] for i in ids) == [
        "runner-00420",
        "runner-00421",
        "runner-00422",
        "runner-00423",
        "runner-00424",
        "runner-00425",
        "runner-00426",
        "runner-00427",
        "runner-00428",
        "runner-00429",
    ]


@pytest.fixture
def search_timeout_1ms(redis_client: redis.Redis) -> Iterator[None]:
    """FT.CONFIG TIMEOUT 1 (ms) with the default ON_TIMEOUT RETURN; restored afterwards."""
    original = run(redis_client, "FT.CONFIG", "GET", "TIMEOUT")[0][1]
    policy = run(redis_client, "FT.CONFIG", "GET", "ON_TIMEOUT")[0][1]
    assert policy.lower() == "return"
    run(redis_client, "FT.CONFIG", "SET", "TIMEOUT", "1")
    try:
        yield
    finally:
        run(redis_client, "FT.CONFIG", "SET", "TIMEOUT", original)


def test_answers_complete_despite_server_timeout(
    many_contexts: RedisStackStateBackend,
    redis_client: redis.Redis,
    search_timeout_1ms: None,
) -> None:
    backend = many_contexts
    # Control: the backend's own request without 'TIMEOUT 0' is cut short by the server.
    spec = backend.schemas.runner_contexts
    request = query.Aggregate(
        backend.namespace.alias(backend.schemas.runner_contexts),
        query.where(spec, backend.app.app_id),
        (*query.contains(spec, "runner_id", "zz"), *query.LOAD_DOCUMENT),
    )
    args = request.args()
    at = args.index("TIMEOUT")
    assert args[at : at + 2] == ["TIMEOUT", "0"]
    raw = run(redis_client, *(args[:at] + args[at + 2 :]))
    assert len(raw) - 1 < MANY  # partial answer, silently (no error)

    assert len(runner_ids(backend, "zz")) == MANY
    entries = [
        h for batch in backend.iter_history_in_timerange(T0, T0 + timedelta(seconds=1), 700) for h in batch
    ]
    assert len(entries) == MANY
    assert [h.timestamp for h in entries] == sorted(h.timestamp for h in entries)
    ids = [
        i
        for batch in backend.iter_invocations_in_timerange(T0, T0 + timedelta(seconds=1), 700)
        for i in batch
    ]
    assert sorted(ids) == [f"inv-{n:05d}" for n in range(MANY)]
