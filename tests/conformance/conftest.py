"""Fixtures pynenc's conformance suites ask plugins for."""

from __future__ import annotations

import pytest
from pynenc import Pynenc, PynencBuilder
from pynenc_tests import util
from pynenc_tests.integration.combinations.conftest import (
    AppComponents,
    BackendFamily,
    build_test_combinations,
)

from pynenc_redis_stack.builder import COMPONENTS
from tests.conftest import unique_app_id


@pytest.fixture
def app_instance(request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str) -> Pynenc:
    """A pynenc app whose state backend is RedisStackStateBackend (others: pynenc's SQLite)."""
    return (
        PynencBuilder()
        .app_id(unique_app_id(request))
        .sqlite(sqlite_db_path=temp_sqlite_db_path)
        .redis_stack(url=redis_url)
        .build()
    )


SQLITE_COMBINATIONS = [c for c in build_test_combinations() if c.family is BackendFamily.SQLITE]


@pytest.fixture(
    params=SQLITE_COMBINATIONS, ids=lambda c: c.combination_id.replace("SQLite", "SQLite+RedisStack")
)
def app_combination_instance(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, temp_sqlite_db_path: str, redis_url: str
) -> Pynenc:
    """pynenc's SQLite combinations with RedisStackStateBackend as the state backend."""
    return combination_app(request, monkeypatch, temp_sqlite_db_path, redis_url)


def combination_app(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    temp_sqlite_db_path: str,
    redis_url: str,
    orchestrator_cls: str | None = None,
    all_components: bool = False,
) -> Pynenc:
    """The app of one of pynenc's combinations (``request.param``) with this package's state
    backend, its orchestrator when ``orchestrator_cls`` names it, and every component this
    package provides if ``all_components``.

    Configured through the environment, like pynenc's own fixture, so that runner
    subprocesses build the same app.
    """
    components: AppComponents = request.param
    test_module, test_name = util.get_module_name(request)
    settings = {
        "APP_ID": f"{test_module}.{test_name}",
        "CLIENT_DATA_STORE_CLS": components.client_data_store.__name__,
        "ORCHESTRATOR_CLS": orchestrator_cls or components.orchestrator.__name__,
        "BROKER_CLS": components.broker.__name__,
        "TRIGGER_CLS": components.trigger.__name__,
        "SERIALIZER_CLS": components.serializer.__name__,
        "RUNNER_CLS": components.runner.__name__,
        "STATE_BACKEND_CLS": "RedisStackStateBackend",
        "REDIS_STACK_URL": redis_url,
        "SQLITE_DB_PATH": temp_sqlite_db_path,
        "LOGGING_LEVEL": "info",
        "PRINT_ARGUMENTS": "False",
        "RUNNER_LOOP_SLEEP_TIME_SEC": "0.01",
        "INVOCATION_WAIT_RESULTS_SLEEP_TIME_SEC": "0.01",
    }
    if all_components:
        for config_field, class_name in COMPONENTS.values():
            settings[config_field.upper()] = class_name
    for name, value in settings.items():
        monkeypatch.setenv(f"PYNENC__{name}", value)
    app = Pynenc()
    app.state_backend.purge()  # a rerun of the same test id starts clean
    if all_components:
        assert_all_redis_stack(app)
        for component in ("orchestrator", "broker", "client_data_store", "trigger"):
            getattr(app, component).purge()
    return app


def assert_all_redis_stack(app: Pynenc) -> None:
    """Fail unless every component this package provides is the app's (the suites must run
    against ours, not a fallback)."""
    for name, (_config_field, class_name) in COMPONENTS.items():
        assert type(getattr(app, name)).__name__ == class_name, f"{name}: {type(getattr(app, name)).__name__}"


def all_components_app(request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str) -> Pynenc:
    """A pynenc app with every component this package provides (pynenc's SQLite ones for any
    it does not)."""
    app = (
        PynencBuilder()
        .app_id(unique_app_id(request))
        .sqlite(sqlite_db_path=temp_sqlite_db_path)
        .redis_stack(url=redis_url, components="all")
        .build()
    )
    assert_all_redis_stack(app)
    return app


TRIGGER_SUITE_MODULES = (
    "test_trigger_all_instances",
    "test_trigger_auto_purge",
    "test_trigger_backend_monitoring",
)
"""The modules of pynenc's unit trigger suite (``pynenc_tests.unit.trigger.all_tests``)."""


trigger_app = all_components_app
"""The app of pynenc's trigger and pynmon suites: every component from this package."""
