"""pynenc's integration orchestrator suite, unmodified, on RedisStackOrchestrator, with every
component from this package.

Plus pynenc's atomic-service claim concurrency tests, which its ``all_tests`` leaves to each
backend plugin ("Backend plugins own equivalent suites"): they run here as they are.
"""

import pytest
from pynenc import Pynenc
from pynenc_tests.integration.orchestrator.all_tests import *
from pynenc_tests.integration.orchestrator.test_atomic_service_claim_concurrency import *

from tests.conformance.conftest import all_components_app


@pytest.fixture
def app_instance(request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str) -> Pynenc:
    return all_components_app(request, redis_url, temp_sqlite_db_path)
