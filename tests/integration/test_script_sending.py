"""How scripts and pipelines are sent (core/scripts.py, core/client.py): ``EVALSHA`` loaded on
demand, the queue a pipeline keeps through redis-py's public methods, on this package's client
and on a plain redis-py client. Round trips are counted client-side, commands server-side."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from pynenc_redis_stack.core.client import Client, RetryingPipeline, run
from pynenc_redis_stack.core.conf import ConfigRedisStackKeyspace
from pynenc_redis_stack.core.connection import get_client
from pynenc_redis_stack.core.scripts import Script
from tests.conftest import unique_app_id
from tests.integration.conftest import RoundTrips, commandstats, delta

ADD = """
-- KEYS[1]: a counter. ARGV[1]: how much to add. Returns the new value.
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""

add_script = Script(ADD)


@pytest.fixture
def client(redis_url: str) -> Iterator[Client]:
    client = get_client(ConfigRedisStackKeyspace(config_values={"redis_stack_url": redis_url}))
    yield client
    client.close()


@pytest.fixture
def key(request: pytest.FixtureRequest, redis_client: redis.Redis) -> Iterator[str]:
    name = f"pynenc:test:{unique_app_id(request)}"
    yield name
    redis_client.delete(name)


def test_a_pipeline_keeps_what_it_queued_not_what_a_watch_sent_at_once(client: Client, key: str) -> None:
    pipe = client.pipeline(transaction=True)
    assert isinstance(pipe, RetryingPipeline)
    pipe.watch(key)
    assert run(pipe, "GET", key) is None  # sent at once: the pipeline watches
    pipe.multi()
    run(pipe, "SET", key, "1")
    run(pipe, "INCRBY", key, "2")

    assert [args for args, _options in pipe.queued] == [("SET", key, "1"), ("INCRBY", key, "2")]
    assert pipe.execute() == [True, 3]
    assert pipe.queued == []


def test_script_calls_refused_before_the_load_run_once_each_after_it(
    client: Client, key: str, redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    redis_client.script_flush()
    pipe = client.pipeline(transaction=False)
    run(pipe, *add_script.command([key], ["1"]))
    before = commandstats(redis_client)
    with round_trips.counting():
        replies = add_script.run_in(pipe, [key], ["10"])

    # both EVALSHA refused (NOSCRIPT), SCRIPT LOAD, both replayed
    assert replies == [1, 11]
    assert delta(before, commandstats(redis_client)) == {"evalsha": 4, "script|load": 1, "incrby": 2}
    assert round_trips.count == 3
    assert redis_client.get(key) == "11"


def test_a_script_on_a_client_is_loaded_once_when_the_server_lacks_it(
    client: Client, key: str, redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    redis_client.script_flush()
    with round_trips.counting():
        assert add_script.run(client, [key], ["2"]) == 2
    assert round_trips.count == 3  # EVALSHA refused, SCRIPT LOAD, EVALSHA
    with round_trips.counting():
        assert add_script.run(client, [key], ["3"]) == 5
    assert round_trips.count == 1


def test_on_a_plain_redis_py_pipeline_the_source_goes_with_the_call_in_one_round_trip(
    key: str, redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    redis_client.script_flush()
    pipe = redis_client.pipeline(transaction=False)
    run(pipe, "SET", key, "4")
    with round_trips.counting():
        replies = add_script.run_in(pipe, [key], ["1"])
    assert replies == [True, 5]  # the SCRIPT LOAD's reply is left out
    assert round_trips.count == 1


def test_redis_pys_script_in_a_pipeline_costs_a_round_trip_more_than_ours(
    client: Client, key: str, round_trips: RoundTrips
) -> None:
    """Why core.scripts.Script is not redis-py's ``register_script``: in a pipeline, redis-py
    sends ``SCRIPT EXISTS`` before every ``execute`` (redis-py 7.1 to 8.2)."""
    theirs = client.register_script(ADD)
    add_script.run(client, [key], ["0"])  # both loaded (same source, same SHA1)

    pipe = client.pipeline(transaction=False)
    with round_trips.counting():
        theirs(keys=[key], args=["1"], client=pipe)
        pipe.execute()
    assert round_trips.count == 2

    with round_trips.counting():
        add_script.run_in(client.pipeline(transaction=False), [key], ["1"])
    assert round_trips.count == 1
