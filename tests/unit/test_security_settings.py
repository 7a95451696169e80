"""Password masking, the ACL rule and the TLS settings, without a server."""

from __future__ import annotations

import pytest
import redis

from pynenc_redis_stack.core.client import redacted_url
from pynenc_redis_stack.core.conf import ConfigStateBackendRedisStack
from pynenc_redis_stack.core.connection import _tls_options
from pynenc_redis_stack.core.server_check import acl_rule


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://admin:secret@db.example:6379/0", "redis://admin:***@db.example:6379/0"),
        ("rediss://:secret@db.example/0", "rediss://:***@db.example/0"),
        ("redis://default:p%40ss:w0rd@h:1/0", "redis://default:***@h:1/0"),
        ("redis://admin@db.example:6379/0?password=secret", "redis://admin@db.example:6379/0?password=***"),
        (
            "redis://h:1/0?socket_timeout=2&PASSWORD=secret&password=again",
            "redis://h:1/0?socket_timeout=2&PASSWORD=***&password=***",
        ),
        ("unix://:secret@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        ("redis://admin@db.example:6379/0", "redis://admin@db.example:6379/0"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("", ""),
        ("redis://[::1:6379/0", "***"),  # unparseable: nothing of it is shown
    ],
)
def test_redacted_url(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
    assert "secret" not in redacted_url(url)


def test_acl_rule_names_every_command_and_only_the_namespace_keys() -> None:
    rule = acl_rule("orders")
    assert rule.startswith("resetkeys ~orders:* resetchannels -@all ")
    granted = rule.split()[4:]
    assert all(part.startswith("+") and "@" not in part for part in granted)
    assert {"+ft.aggregate", "+ft.cursor", "+json.set", "+eval", "+evalsha", "+script|load"} <= set(granted)


def _conf(**values: object) -> ConfigStateBackendRedisStack:
    return ConfigStateBackendRedisStack(config_values=values)


def test_tls_is_off_by_default_and_on_for_rediss_or_redis_ssl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYNENC__REDIS_URL", raising=False)
    assert _tls_options(_conf()) == {}
    assert _tls_options(_conf(redis_url="redis://h:1/0")) == {}
    for conf in (_conf(redis_stack_url="rediss://h:1/0"), _conf(redis_ssl=True)):
        assert _tls_options(conf) == {
            "connection_class": redis.SSLConnection,
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": True,
        }
    options = _tls_options(
        _conf(
            redis_ssl=True,
            redis_ssl_ca_certs="/ca.pem",
            redis_ssl_certfile="/c.pem",
            redis_ssl_keyfile="/c.key",
            redis_ssl_cert_reqs="NONE",
        )
    )
    assert options["ssl_ca_certs"] == "/ca.pem" and options["ssl_certfile"] == "/c.pem"
    assert options["ssl_keyfile"] == "/c.key"
    assert options["ssl_cert_reqs"] == "none" and options["ssl_check_hostname"] is False


def test_tls_settings_without_tls_or_with_a_bad_value_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYNENC__REDIS_URL", raising=False)
    with pytest.raises(ValueError, match="redis_ssl_certfile, redis_ssl_keyfile set but TLS is off"):
        _tls_options(_conf(redis_ssl_certfile="/c.pem", redis_ssl_keyfile="/c.key"))
    # refused when read, before any connection is made
    with pytest.raises(
        ValueError, match="redis_ssl_cert_reqs: 'always' is not one of required, optional, none"
    ):
        _conf(redis_ssl=True, redis_ssl_cert_reqs="always")


def test_the_documented_acl_rule_is_the_one_the_code_checks() -> None:
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    assert f"ACL SETUSER pynenc-app on >CHANGE-ME {acl_rule('pynenc')}\n" in docs


def test_every_command_a_script_sends_is_in_the_acl_rule() -> None:
    """A script's ``redis.call`` is checked against the user's ACL like any command: one the
    rule lacks fails only when that script runs (a running-concurrency lease's HMGET was
    refused to the least-privilege user at the first recovery task)."""
    import importlib
    import pkgutil
    import re
    import sys

    import pynenc_redis_stack
    from pynenc_redis_stack.core.scripts import Script
    from pynenc_redis_stack.core.server_check import REQUIRED_COMMANDS

    for module in pkgutil.walk_packages(pynenc_redis_stack.__path__, "pynenc_redis_stack."):
        if not module.name.startswith(("pynenc_redis_stack.demo", "pynenc_redis_stack.cli")):
            importlib.import_module(module.name)
    sources = [
        value.source if isinstance(value, Script) else value
        for name, loaded in list(sys.modules.items())
        if name.startswith("pynenc_redis_stack")
        for value in vars(loaded).values()
        if isinstance(value, Script) or (isinstance(value, str) and "redis.call" in value)
    ]
    used = {
        command.upper()
        for source in sources
        for command in re.findall(r"redis\.p?call\(\s*'([A-Za-z._]+)'", source)
    }
    assert len(used) > 20
    assert used - {command[0] for command in REQUIRED_COMMANDS} == set()
