"""pynenc's unit trigger tests (registration, valid conditions, cron, trigger loop), unmodified, with this package's trigger,
state backend, broker and client data store (pynenc's SQLite orchestrator).

One module of ``pynenc_tests.unit.trigger.all_tests`` per file: see
``test_pynenc_unit_trigger_all_instances.py``.
"""

import re

import pytest
from pynenc import Pynenc
from pynenc_tests.unit.trigger.test_trigger_all_instances import *

from tests.conformance.conftest import TRIGGER_SUITE_MODULES, trigger_app


@pytest.fixture
def app_instance(request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str) -> Pynenc:
    return trigger_app(request, redis_url, temp_sqlite_db_path)


def test_these_files_cover_pynenc_trigger_all_tests() -> None:
    """pynenc's ``all_tests`` star-imports these three modules; imported together, the last
    module's ``trigger`` fixture shadows the others' (the first module's sets ``add.app``, and
    its ``test_report_task_status`` fails without it, with pynenc's own SQLite trigger too).
    So each module runs from its own file, and this pins that none is missed."""
    import inspect

    from pynenc_tests.unit.trigger import all_tests

    imported = re.findall(
        r"^from pynenc_tests\.unit\.trigger\.(\w+) import \*", inspect.getsource(all_tests), re.M
    )
    assert sorted(imported) == sorted(TRIGGER_SUITE_MODULES)
