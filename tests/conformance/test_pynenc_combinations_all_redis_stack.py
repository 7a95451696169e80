"""pynenc's whole combinations suite (real runners executing real tasks), unmodified, with
every component from this package (``redis_stack(url=...)``: the distributed app), with every
runner: the broker's queue files, the runner kill/reroute tests and the cron-triggered
recovery core tasks (through this package's trigger and atomic-service passes) included."""

import pytest
from pynenc import Pynenc
from pynenc_tests.integration.combinations.all_tests import *

from tests.conformance.conftest import SQLITE_COMBINATIONS, combination_app


@pytest.fixture(
    params=SQLITE_COMBINATIONS, ids=lambda c: c.combination_id.replace("SQLite", "RedisStack-all")
)
def app_combination_instance(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, temp_sqlite_db_path: str, redis_url: str
) -> Pynenc:
    return combination_app(request, monkeypatch, temp_sqlite_db_path, redis_url, all_components=True)
