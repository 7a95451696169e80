"""Unit tests run without a server: asking for the session's one fails the test."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Overrides the session's server fixture of tests/conftest.py for tests/unit."""
    pytest.fail("unit tests run without a server: a test that needs one belongs in tests/integration")
