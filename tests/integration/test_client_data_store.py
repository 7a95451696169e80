"""RedisStackClientDataStore on the real server: values by reference key, per app."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from pynenc import Pynenc

from pynenc_redis_stack import RedisStackClientDataStore
from pynenc_redis_stack.client_data_store.store import stored_at_field
from pynenc_redis_stack.core.errors import InvalidDocumentError
from tests.conftest import unique_app_id
from tests.integration.conftest import RoundTrips, commandstats, delta
from tests.integration.test_broker import config


@pytest.fixture
def make_store(
    request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str
) -> Callable[[str], RedisStackClientDataStore]:
    def make(suffix: str = "") -> RedisStackClientDataStore:
        app = Pynenc(config_values=config(unique_app_id(request, suffix), redis_url, temp_sqlite_db_path))
        store = app.client_data_store
        assert isinstance(store, RedisStackClientDataStore)
        store.purge()
        return store

    return make


def test_large_values_are_stored_once_by_content_and_read_back(
    make_store: Callable[[str], RedisStackClientDataStore], redis_client: redis.Redis
) -> None:
    store = make_store("")
    value = {"payload": "é\n\"'{}" * 500_000}  # ~6 MB serialized
    reference = store.serialize(value)
    assert store.is_reference(reference)
    assert store.serialize(value) == reference  # same content, same key, one field (and its stamp)
    one_value = sorted([reference, stored_at_field(reference)])
    assert sorted(redis_client.hkeys(store.key)) == one_value
    store._deserialized_cache.clear()  # read from the server, not the process cache
    assert store.resolve(reference) == value
    small = store.serialize("small")
    assert not store.is_reference(small) and sorted(redis_client.hkeys(store.key)) == one_value


@pytest.mark.parametrize("hostile", ["-a:b", "-a%3Ab", "-{x}", "-ünï cødé"])
def test_apps_are_isolated_and_purge_only_their_own(
    make_store: Callable[[str], RedisStackClientDataStore], redis_client: redis.Redis, hostile: str
) -> None:
    first, second = make_store("-1"), make_store(hostile)
    assert first.key != second.key
    first._store("ref", "first value")
    second._store("ref", "second value")
    assert (first._retrieve("ref"), second._retrieve("ref")) == ("first value", "second value")
    second.purge()
    with pytest.raises(KeyError, match="Key ref not found in client data store of app"):
        second._retrieve("ref")
    assert first._retrieve("ref") == "first value"
    assert redis_client.exists(second.key) == 0


def test_one_command_and_round_trip_per_store_retrieve_and_purge(
    make_store: Callable[[str], RedisStackClientDataStore], redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    store = make_store("")
    with pytest.raises(KeyError):  # the first use checks the server; counted calls come after
        store._retrieve("warm-up")
    for operation, expected in (
        (lambda: store._store("k", "v"), {"hset": 1}),
        (lambda: store._retrieve("k"), {"hget": 1}),
        (store._purge, {"unlink": 1}),
    ):
        before = commandstats(redis_client)
        with round_trips.counting():
            operation()
        assert delta(before, commandstats(redis_client)) == expected
        assert round_trips.count == 1


def test_lone_surrogates_are_refused_naming_the_fix(
    make_store: Callable[[str], RedisStackClientDataStore],
) -> None:
    with pytest.raises(InvalidDocumentError, match="client data value .*lone surrogate"):
        make_store("")._store("ref", "bad\udcff")
