"""pynenc's unit trigger tests (events, trigger runs and their lookups), unmodified, with this package's trigger,
state backend, broker and client data store (pynenc's SQLite orchestrator).

One module of ``pynenc_tests.unit.trigger.all_tests`` per file: see
``test_pynenc_unit_trigger_all_instances.py``.
"""

import pytest
from pynenc import Pynenc
from pynenc_tests.unit.trigger.test_trigger_backend_monitoring import *

from tests.conformance.conftest import trigger_app


@pytest.fixture
def app_instance(request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str) -> Pynenc:
    return trigger_app(request, redis_url, temp_sqlite_db_path)
