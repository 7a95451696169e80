"""pynenc's core-task combinations tests (real runners executing real tasks), unmodified, on
every component from this package, with every runner: pynenc's recovery tasks are
cron-triggered, so recovering stuck invocations runs through this trigger's cron
compare-and-set, run claims and trigger loop in every runner's atomic service (with
ThreadRunner they also run in ``test_pynenc_combinations_all_redis_stack.py``)."""

import pytest
from pynenc import Pynenc
from pynenc_tests.integration.combinations.test_core_tasks_combinations import *

from tests.conformance.conftest import SQLITE_COMBINATIONS, combination_app


@pytest.fixture(
    params=SQLITE_COMBINATIONS, ids=lambda c: c.combination_id.replace("SQLite", "RedisStack-all")
)
def app_combination_instance(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, temp_sqlite_db_path: str, redis_url: str
) -> Pynenc:
    return combination_app(request, monkeypatch, temp_sqlite_db_path, redis_url, all_components=True)
