"""Every way pynenc selects a state backend selects ours, and the builder composes in any order."""

from __future__ import annotations

from pathlib import Path

import pytest
from pynenc import Pynenc, PynencBuilder
from pynenc.state_backend import SQLiteStateBackend
from pynenc_redis.state_backend import RedisStateBackend

from pynenc_redis_stack import RedisStackStateBackend
from pynenc_redis_stack.builder import COMPONENTS, STATE_BACKEND_ONLY
from pynenc_redis_stack.core.errors import ServerNotSupportedError
from tests.conftest import unique_app_id


def _assert_working(app: Pynenc) -> None:
    backend = app.state_backend
    assert isinstance(backend, RedisStackStateBackend)
    from pynenc.app import AppInfo

    backend.store_app_info(AppInfo.from_app(app))
    assert backend.get_app_info().app_id == app.app_id


def test_config_values(request: pytest.FixtureRequest, redis_url: str) -> None:
    app = Pynenc(
        config_values={
            "app_id": unique_app_id(request),
            "state_backend_cls": "RedisStackStateBackend",
            "redis_url": redis_url,
        }
    )
    _assert_working(app)


def test_environment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYNENC__APP_ID", unique_app_id(request))
    monkeypatch.setenv("PYNENC__STATE_BACKEND_CLS", "RedisStackStateBackend")
    _assert_working(Pynenc())  # PYNENC__REDIS_URL is exported by the test session


def test_yaml_config_file(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "pynenc.yaml"
    path.write_text(
        f"app_id: {unique_app_id(request)}\nstate_backend_cls: RedisStackStateBackend\n"
        f"redis_stack_url: {redis_url}\nredis_stack_namespace: pynenc\n"
    )
    _assert_working(Pynenc(config_filepath=str(path)))


def test_pyproject_tool_pynenc(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(
        f'[tool.pynenc]\napp_id = "{unique_app_id(request)}"\n'
        f'state_backend_cls = "RedisStackStateBackend"\nredis_url = "{redis_url}"\n'
    )
    _assert_working(Pynenc(config_filepath=str(path)))


def test_builder_alone_selects_every_component_of_this_package(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    app = PynencBuilder().app_id(unique_app_id(request)).redis_stack(url=redis_url).build()
    chosen = {name: type(getattr(app, name)).__name__ for name in COMPONENTS}
    assert chosen == {name: class_name for name, (_key, class_name) in COMPONENTS.items()}
    _assert_working(app)


def test_builder_state_backend_only_leaves_pynenc_defaults(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    app = (
        PynencBuilder()
        .app_id(unique_app_id(request))
        .redis_stack(url=redis_url, components=STATE_BACKEND_ONLY)
        .build()
    )
    assert type(app.orchestrator).__name__ == "MemOrchestrator"
    assert type(app.broker).__name__ == "MemBroker"
    assert type(app.client_data_store).__name__ == "MemClientDataStore"
    _assert_working(app)


@pytest.mark.parametrize("order", ["stack-last", "stack-first"])
def test_builder_composes_with_memory_in_either_order(
    request: pytest.FixtureRequest, redis_url: str, order: str
) -> None:
    """``.memory()`` chooses every other component whichever call comes first (the default
    selection yields to it); a later ``components=`` call is kept over it."""
    builder = PynencBuilder().app_id(unique_app_id(request))
    if order == "stack-last":
        builder = builder.memory().redis_stack(url=redis_url)
    else:
        builder = builder.redis_stack(url=redis_url).memory()
    app = builder.redis_stack(components=["broker"]).build()
    assert type(app.orchestrator).__name__ == "MemOrchestrator"
    assert type(app.client_data_store).__name__ == "MemClientDataStore"
    assert type(app.broker).__name__ == "RedisStackBroker"
    _assert_working(app)


@pytest.mark.parametrize("order", ["stack-last", "stack-first"])
def test_builder_composes_with_sqlite_in_either_order(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path, order: str
) -> None:
    builder = PynencBuilder().app_id(unique_app_id(request))
    if order == "stack-last":
        builder = builder.sqlite(sqlite_db_path=str(tmp_path / "db")).redis_stack(url=redis_url)
    else:
        builder = builder.redis_stack(url=redis_url).sqlite(sqlite_db_path=str(tmp_path / "db"))
    app = builder.build()
    assert type(app.orchestrator).__name__ == "SQLiteOrchestrator"
    assert type(app.broker).__name__ == "SQLiteBroker"
    assert not isinstance(app.state_backend, SQLiteStateBackend)
    _assert_working(app)


@pytest.mark.parametrize("order", ["stack-last", "stack-first"])
def test_builder_composes_with_pynenc_redis_in_either_order(
    request: pytest.FixtureRequest, redis_url: str, order: str
) -> None:
    builder = PynencBuilder().app_id(unique_app_id(request))
    if order == "stack-last":
        builder = builder.redis(url=redis_url).redis_stack(url=redis_url)
    else:
        builder = builder.redis_stack(url=redis_url).redis(url=redis_url)
    config = builder._config
    assert config["orchestrator_cls"] == "RedisOrchestrator"
    assert config["client_data_store_cls"] == "RedisClientDataStore"
    app = builder.build()
    assert app.config_values["state_backend_cls"] == "RedisStackStateBackend"
    assert not isinstance(app.state_backend, RedisStateBackend)
    _assert_working(app)


def test_builder_refuses_a_database_other_than_zero(redis_url: str) -> None:
    with pytest.raises(ValueError, match="database 0"):
        PynencBuilder().redis_stack(url=redis_url.rsplit("/", 1)[0] + "/2")


def test_configured_database_other_than_zero_is_a_clear_error(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    app = Pynenc(
        config_values={
            "app_id": unique_app_id(request),
            "state_backend_cls": "RedisStackStateBackend",
            "redis_stack_url": redis_url.rsplit("/", 1)[0] + "/3",
        }
    )
    with pytest.raises(ServerNotSupportedError, match="only in database 0"):
        app.state_backend.get_history("anything")
