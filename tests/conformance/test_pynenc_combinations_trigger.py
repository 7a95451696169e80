"""pynenc's combinations tests (real runners executing real tasks), unmodified, on this
package's components alone: state backend, orchestrator, broker, client data store and
trigger. pynenc's recovery tasks are cron-triggered, so recovering stuck invocations runs
through this trigger's cron compare-and-set, run claims and trigger loop in every runner's
atomic service; plus plain execution and the runner kill/reroute tests."""

import pytest
from pynenc import Pynenc
from pynenc_tests.integration.combinations.test_app_combinations import (
    test_runner_kills_and_reroutes_running_invocation_on_stop,
    test_task_execution,
)
from pynenc_tests.integration.combinations.test_core_tasks_combinations import *

from tests.conformance.conftest import SQLITE_COMBINATIONS, combination_app


@pytest.fixture(
    params=SQLITE_COMBINATIONS, ids=lambda c: c.combination_id.replace("SQLite", "RedisStack-all+trigger")
)
def app_combination_instance(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, temp_sqlite_db_path: str, redis_url: str
) -> Pynenc:
    return combination_app(
        request,
        monkeypatch,
        temp_sqlite_db_path,
        redis_url,
        orchestrator_cls="RedisStackOrchestrator",
        all_components=True,
        trigger=True,
    )
