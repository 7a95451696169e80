"""pynenc's unit orchestrator suite, unmodified, on RedisStackOrchestrator, with every
component from this package."""

import pytest
from pynenc import Pynenc
from pynenc_tests.unit.orchestrator.all_tests import *

from tests.conformance.conftest import all_components_app


@pytest.fixture
def app_instance(request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str) -> Pynenc:
    return all_components_app(request, redis_url, temp_sqlite_db_path)
