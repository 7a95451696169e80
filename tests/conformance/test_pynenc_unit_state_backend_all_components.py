"""pynenc's unit state-backend suite, unmodified, with every component from this package
(the distributed app); the same suite with pynenc's SQLite components is
``test_pynenc_unit_state_backend.py``."""

import pytest
from pynenc import Pynenc
from pynenc_tests.unit.state_backend.all_tests import *

from tests.conformance.conftest import all_components_app


@pytest.fixture
def app_instance(request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str) -> Pynenc:
    return all_components_app(request, redis_url, temp_sqlite_db_path)
