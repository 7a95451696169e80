"""pynenc's whole combinations suite (real runners executing real tasks), unmodified, with
every component from this package (``redis_stack(components="all")``): the distributed app.

By default only the ThreadRunner combination runs (the process-based runners start a Python
process per invocation or worker: every runner takes about 13 minutes on a loaded 2-core
machine, beyond the CI budget); ``pytest --all-redis-stack-runners`` runs every runner. The
broker's files and the runner kill tests run with every runner by default
(``test_pynenc_combinations_all_components.py``)."""

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
