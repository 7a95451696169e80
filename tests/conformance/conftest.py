"""Fixtures pynenc's conformance suites ask plugins for."""

from __future__ import annotations

import pytest
from pynenc import Pynenc, PynencBuilder

from tests.conftest import unique_app_id


@pytest.fixture
def app_instance(request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str) -> Pynenc:
    """A pynenc app whose state backend is RedisStackStateBackend (others: pynenc's SQLite)."""
    return (
        PynencBuilder()
        .app_id(unique_app_id(request))
        .sqlite(sqlite_db_path=temp_sqlite_db_path)
        .redis_stack(url=redis_url)
        .build()
    )
