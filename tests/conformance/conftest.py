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

from pynenc_redis_stack import RedisStackBroker, RedisStackClientDataStore, RedisStackTrigger
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
    trigger: bool = False,
) -> Pynenc:
    """The app of one of pynenc's combinations (``request.param``) with this package's state
    backend, its orchestrator when ``orchestrator_cls`` names it, its broker and client data
    store if ``all_components``, and its trigger if ``trigger``.

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
        settings["BROKER_CLS"] = "RedisStackBroker"
        settings["CLIENT_DATA_STORE_CLS"] = "RedisStackClientDataStore"
    if trigger:
        settings["TRIGGER_CLS"] = "RedisStackTrigger"
    for name, value in settings.items():
        monkeypatch.setenv(f"PYNENC__{name}", value)
    app = Pynenc()
    app.state_backend.purge()  # a rerun of the same test id starts clean
    if all_components:
        app.broker.purge()
        app.client_data_store.purge()
    if trigger:
        assert isinstance(app.trigger, RedisStackTrigger)
        app.trigger.purge()
    return app


ALL_COMPONENTS_DEFAULT = ("state_backend", "broker", "client_data_store")
"""What :func:`all_components_app` selects unless told otherwise."""


def all_components_app(
    request: pytest.FixtureRequest,
    redis_url: str,
    temp_sqlite_db_path: str,
    components: tuple[str, ...] = ALL_COMPONENTS_DEFAULT,
) -> Pynenc:
    """A pynenc app with this package's ``components`` (by default the state backend, broker
    and client data store; add ``"trigger"`` for the trigger); pynenc's SQLite ones for the rest."""
    app = (
        PynencBuilder()
        .app_id(unique_app_id(request))
        .sqlite(sqlite_db_path=temp_sqlite_db_path)
        .redis_stack(url=redis_url, components=components)
        .build()
    )
    # the suites run against ours, not SQLite's
    if "broker" in components:
        assert isinstance(app.broker, RedisStackBroker)
    if "client_data_store" in components:
        assert isinstance(app.client_data_store, RedisStackClientDataStore)
    if "trigger" in components:
        assert isinstance(app.trigger, RedisStackTrigger)
        app.trigger.purge()  # a rerun of the same test id starts clean
    return app


TRIGGER_SUITE_MODULES = (
    "test_trigger_all_instances",
    "test_trigger_auto_purge",
    "test_trigger_backend_monitoring",
)
"""The modules of pynenc's unit trigger suite (``pynenc_tests.unit.trigger.all_tests``)."""


def trigger_app(request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str) -> Pynenc:
    """A pynenc app with this package's trigger, state backend, broker and client data store."""
    return all_components_app(
        request,
        redis_url,
        temp_sqlite_db_path,
        components=("state_backend", "broker", "client_data_store", "trigger"),
    )


@pytest.fixture
def orchestrator_app_instance(
    request: pytest.FixtureRequest, redis_url: str, temp_sqlite_db_path: str
) -> Pynenc:
    """A pynenc app whose orchestrator and state backend are this package's (broker, trigger
    and client data store: pynenc's SQLite ones)."""
    return (
        PynencBuilder()
        .app_id(unique_app_id(request))
        .sqlite(sqlite_db_path=temp_sqlite_db_path)
        .redis_stack(url=redis_url)
        .redis_stack_orchestrator()
        .build()
    )
