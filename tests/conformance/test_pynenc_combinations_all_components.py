"""pynenc's combinations tests (real runners executing real tasks), unmodified, with every
component from this package: the broker's own files (queues, priorities, selection
strategies) and the runner kill/reroute tests, with every runner. The whole combinations
suite on these components is ``test_pynenc_combinations_all_redis_stack.py``."""

import pytest
from pynenc import Pynenc
from pynenc_tests.integration.combinations.test_app_combinations import (
    test_runner_kills_and_reroutes_running_invocation_on_stop,
    test_runner_reroutes_on_real_os_signal,
)
from pynenc_tests.integration.combinations.test_broker_queue_flexibility import *
from pynenc_tests.integration.combinations.test_broker_queue_priority import *

from tests.conformance.conftest import SQLITE_COMBINATIONS, combination_app


@pytest.fixture(
    params=SQLITE_COMBINATIONS, ids=lambda c: c.combination_id.replace("SQLite", "RedisStack-all")
)
def app_combination_instance(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, temp_sqlite_db_path: str, redis_url: str
) -> Pynenc:
    return combination_app(request, monkeypatch, temp_sqlite_db_path, redis_url, all_components=True)
