"""pynmon's trigger_run_detail view tests, unmodified, against this package's trigger (events and
trigger runs as documents), state backend, broker and client data store."""

import pytest
from pynenc import Pynenc
from pynenc_tests.unit.pynmon.views.test_trigger_run_detail import *

from tests.conformance.conftest import trigger_app


@pytest.fixture
def app_instance(request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str) -> Pynenc:
    return trigger_app(request, redis_url, temp_sqlite_db_path)
