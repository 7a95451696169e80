"""Ids with query-syntax characters matched literally, and documents RediSearch would
silently drop from an index (wrong-typed indexed values, NUL) refused before writing."""

from __future__ import annotations

import orjson
import pytest
import redis
from pynenc.identifiers.invocation_id import InvocationId

from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.errors import InvalidDocumentError
from tests.conftest import unique_app_id
from tests.integration.traps import (
    T0,
    backend_of,
    ft_info,
    history_entry,
    make_app,
    runner_context,
    runner_ids,
    upsert,
)

# -- documents RediSearch would silently drop ---------------------------------------------


def test_wrong_typed_indexed_value_is_rejected_before_writing(
    request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> None:
    backend = backend_of(make_app(unique_app_id(request), redis_url))
    backend.get_history(InvocationId("warm-up"))
    contexts_index, history_index = (
        backend.namespace.alias(backend.schemas.runner_contexts),
        backend.namespace.alias(backend.schemas.history),
    )
    failures_before = (
        ft_info(redis_client, contexts_index)["hash_indexing_failures"],
        ft_info(redis_client, history_index)["hash_indexing_failures"],
    )

    for bad in (
        runner_context("bad-cls", runner_cls=123),
        runner_context("bad-host", hostname=456),
    ):
        with pytest.raises(InvalidDocumentError, match="runner_cls|hostname"):
            backend._store_runner_context(bad)
        assert redis_client.exists(backend.keys.runner_context(bad.runner_id)) == 0
    with pytest.raises(InvalidDocumentError, match="runner_context_id"):
        backend._add_histories(
            [InvocationId("good"), InvocationId("bad")],
            history_entry("template", T0, runner_context_id=789),
        )
    assert redis_client.exists(backend.keys.invocation("good"), backend.keys.invocation("bad")) == 0
    assert backend.get_history(InvocationId("good")) == []

    failures_after = (
        ft_info(redis_client, contexts_index)["hash_indexing_failures"],
        ft_info(redis_client, history_index)["hash_indexing_failures"],
    )
    assert failures_after == failures_before

    # Control: the same document written raw is accepted by Redis and dropped by the index.
    key = backend.keys.runner_context("raw-bad")
    run(
        redis_client,
        "JSON.SET",
        key,
        "$",
        orjson.dumps({"app_id": backend.app.app_id, "runner_id": "raw-bad", "runner_cls": 123}).decode(),
    )
    try:
        assert (
            int(ft_info(redis_client, contexts_index)["hash_indexing_failures"])
            == int(failures_before[0]) + 1
        )
        assert runner_ids(backend, "raw-bad") == []
    finally:
        redis_client.delete(key)


# -- ids with query-syntax characters ----------------------------------------------------

PARENT_IDS = [
    "p",
    "P",
    "pa",
    "p,q",
    "p*",
    "p?",
    "p\\",
    "p-q",
    "p|q",
    "p q",
    "p{q}",
    "p}",
    "p:q",
    "p%3Aq",
    "$p0",
    "@p",
    "p)",
    "-p",
    "p.q",
    "p'q",
    'p"q',
    "pé",
    "p\tq",
    "p\nq",
    " p",
    "p\\q",
    "p\\\\q",
]


def test_tag_lookups_match_ids_literally(request: pytest.FixtureRequest, redis_url: str) -> None:
    backend = backend_of(make_app(unique_app_id(request), redis_url))
    for n, parent in enumerate(PARENT_IDS):
        upsert(backend, f"child-{n}", parent=parent, event=parent)
    for n, parent in enumerate(PARENT_IDS):
        assert list(backend.get_child_invocations(InvocationId(parent))) == [f"child-{n}"], parent
        assert list(backend.get_invocations_by_parent_event(parent)) == [f"child-{n}"], parent
    assert list(backend.get_child_invocations(InvocationId("q"))) == []
    assert list(backend.get_child_invocations(InvocationId(""))) == []


def test_nul_character_in_ids_is_refused_or_matched_exactly(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    """An id with NUL must either be refused before writing or behave like any other id."""
    backend = backend_of(make_app(unique_app_id(request), redis_url))
    upsert(backend, "child-of-p", parent="p")
    backend._store_runner_context(runner_context("plain-runner"))
    try:
        upsert(backend, "child-of-nul", parent="p\x00q")
        backend._store_runner_context(runner_context("nul\x00runner"))
    except InvalidDocumentError:
        stored = False
    else:
        stored = True

    assert list(backend.get_child_invocations(InvocationId("p"))) == ["child-of-p"]
    assert runner_ids(backend, "plain") == ["plain-runner"]
    if stored:
        assert list(backend.get_child_invocations(InvocationId("p\x00q"))) == ["child-of-nul"]
        assert runner_ids(backend, "\x00") == ["nul\x00runner"]
