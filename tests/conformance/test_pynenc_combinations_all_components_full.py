"""pynenc's whole combinations suite, unmodified, with this package's state backend, broker
and client data store. Opt-in (``pytest --all-components-full``): about 13 minutes on a
loaded 2-core machine, beyond the CI budget; the broker's part of it runs by default
(``test_pynenc_combinations_all_components.py``)."""

import pytest
from pynenc import Pynenc
from pynenc_tests.integration.combinations.all_tests import *

from tests.conformance.conftest import SQLITE_COMBINATIONS, combination_app

pytestmark = pytest.mark.all_components_full


@pytest.fixture(
    params=SQLITE_COMBINATIONS, ids=lambda c: c.combination_id.replace("SQLite", "SQLite+RedisStack-all")
)
def app_combination_instance(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, temp_sqlite_db_path: str, redis_url: str
) -> Pynenc:
    return combination_app(request, monkeypatch, temp_sqlite_db_path, redis_url, all_components=True)
