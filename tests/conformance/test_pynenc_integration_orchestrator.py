"""pynenc's integration orchestrator suite, unmodified, on RedisStackOrchestrator.

Plus pynenc's atomic-service claim concurrency tests, which its ``all_tests`` leaves to each
backend plugin ("Backend plugins own equivalent suites"): they run here as they are.
"""

import pytest
from pynenc import Pynenc
from pynenc_tests.integration.orchestrator.all_tests import *
from pynenc_tests.integration.orchestrator.test_atomic_service_claim_concurrency import *


@pytest.fixture
def app_instance(orchestrator_app_instance: Pynenc) -> Pynenc:
    return orchestrator_app_instance
