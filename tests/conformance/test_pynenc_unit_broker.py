"""pynenc's unit broker suite, unmodified, with this package's state backend, broker and
client data store (pynenc's SQLite orchestrator and trigger)."""

import pytest
from pynenc import Pynenc
from pynenc_tests.unit.broker.all_tests import *

from tests.conformance.conftest import all_components_app


@pytest.fixture
def app_instance(request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str) -> Pynenc:
    return all_components_app(request, redis_url, temp_sqlite_db_path)
