"""Which deployment a connection URL names, and the clear errors for combinations that cannot work."""

from __future__ import annotations

import pytest

from pynenc_redis_stack.core.client import redacted_url
from pynenc_redis_stack.core.conf import ConfigRedisStackKeyspace
from pynenc_redis_stack.core.connection import get_client
from pynenc_redis_stack.core.topology import Topology, is_write, parse_topology


@pytest.mark.parametrize("url", ["", "redis://h:1/0", "rediss://h:1", "unix:///tmp/r.sock"])
def test_plain_urls_name_one_server(url: str) -> None:
    assert parse_topology(url) == Topology("server")


def test_sentinel_url_names_sentinels_service_and_both_credentials() -> None:
    target = parse_topology(
        "redis+sentinel://app:s%40cret@s1:26380,s2/pynenc-master?sentinel_username=watch&sentinel_password=pw"
    )
    assert target == Topology(
        kind="sentinel",
        nodes=(("s1", 26380), ("s2", 26379)),
        service_name="pynenc-master",
        username="app",
        password="s@cret",
        sentinel_username="watch",
        sentinel_password="pw",
        tls=False,
    )


def test_cluster_url_names_startup_nodes_and_tls() -> None:
    target = parse_topology("rediss+cluster://:pw@n1:7000,n2:7001/0")
    assert target == Topology(kind="cluster", nodes=(("n1", 7000), ("n2", 7001)), password="pw", tls=True)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://s1:26379", "names no service"),
        ("redis+sentinel://s1:26379/", "names no service"),
        ("redis+sentinel://s1:26379/m/3", "database '3'"),
        ("redis+cluster://n1:7000/2", "database '2'"),
        ("redis+cluster://", "names no host"),
        ("redis+cluster://n1:port", "no valid port"),
        ("redis+cluster://n1:7000?sentinel_password=x", "unknown URL parameter"),
        ("redis+sentinel://s1/m?db=1", "unknown URL parameter"),
    ],
)
def test_bad_urls_are_refused_with_the_fix(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_topology(url)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"redis_stack_url": "redis+cluster://127.0.0.1:1", "redis_stack_wait_replicas": 1},
            "not supported with a cluster",
        ),
        (
            {"redis_stack_url": "redis+cluster://127.0.0.1:1", "redis_db": 2},
            "redis_db is 2 with a cluster URL",
        ),
        (
            {"redis_stack_url": "redis+sentinel://127.0.0.1:1/m", "redis_db": 1},
            "redis_db is 1 with a sentinel URL",
        ),
        (
            {"redis_stack_url": "redis://127.0.0.1:1", "redis_stack_wait_replicas": -1},
            "redis_stack_wait_replicas: -1 is not at least 0",
        ),
    ],
)
def test_bad_combinations_are_refused_before_connecting(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_client(ConfigRedisStackKeyspace(config_values=settings))


@pytest.mark.parametrize(
    ("command", "write"),
    [
        (("JSON.SET", "k", "$", "{}"), True),
        (("EVALSHA", "0" * 40, "1", "k"), True),
        (("FT.CREATE", "idx"), True),
        (("FT.ALIASUPDATE", "a", "idx"), True),
        (("JSON.GET", "k"), False),
        (("FT.SEARCH", "idx", "*"), False),
        (("FT.CURSOR", "READ", "idx", "1"), False),
        (("PING",), False),
    ],
)
def test_writes_are_told_from_reads(command: tuple[str, ...], write: bool) -> None:
    assert is_write(command) is write


def test_messages_mask_the_passwords_of_sentinel_and_cluster_urls() -> None:
    shown = redacted_url(
        "redis+sentinel://app:s3cret@s1:26379,s2/m?sentinel_password=w4tch&sentinel_username=u"
    )
    assert "s3cret" not in shown and "w4tch" not in shown
    assert shown.startswith("redis+sentinel://app:***@s1:26379,s2/m?")
    assert "rediss+cluster://:***@n1:7000" == redacted_url("rediss+cluster://:pw@n1:7000")
