"""pynenc's unit orchestrator suite, unmodified, on RedisStackOrchestrator."""

import pytest
from pynenc import Pynenc
from pynenc_tests.unit.orchestrator.all_tests import *


@pytest.fixture
def app_instance(orchestrator_app_instance: Pynenc) -> Pynenc:
    return orchestrator_app_instance
