"""Unit tests run without a server: asking for the session's one, or starting an embedded
one, fails the test."""

from __future__ import annotations

from typing import NoReturn

import pytest

from pynenc_redis_stack.server import embedded

NO_SERVER = "unit tests run without a server: a test that needs one belongs in tests/integration"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Overrides the session's server fixture of tests/conftest.py for tests/unit."""
    pytest.fail(NO_SERVER)


@pytest.fixture(autouse=True)
def _no_embedded_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """``EmbeddedRedisStack.start`` finds no binaries here: it looks them up just before it
    launches a server, so no unit test can launch one."""

    def refuse() -> NoReturn:
        pytest.fail(NO_SERVER)

    monkeypatch.setattr(embedded, "locate_binaries", refuse)
