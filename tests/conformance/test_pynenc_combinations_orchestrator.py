"""pynenc's combinations suite (real runners executing real tasks), unmodified, with this
package's orchestrator and state backend (broker, trigger, client data store: pynenc's SQLite)."""

import pytest
from pynenc import Pynenc
from pynenc_tests.integration.combinations.all_tests import *

from tests.conformance.conftest import SQLITE_COMBINATIONS, combination_app


@pytest.fixture(
    params=SQLITE_COMBINATIONS,
    ids=lambda c: c.combination_id.replace("SQLite", "SQLite+RedisStack+RedisStackOrchestrator"),
)
def app_combination_instance(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, temp_sqlite_db_path: str, redis_url: str
) -> Pynenc:
    return combination_app(request, monkeypatch, temp_sqlite_db_path, redis_url, "RedisStackOrchestrator")
