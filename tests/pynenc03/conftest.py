"""The pynenc 0.3.x line: RedisStackStateBackend with pynenc-redis 0.3.0's orchestrator,
broker, trigger and client data store on the same Redis Stack (the distributed setup).

Collected only when pynenc 0.3.x is installed (see tests/conftest.py); ``./dev test`` runs it
in ``.venv-pynenc03``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import redis
from pynenc import Pynenc, PynencBuilder
from pynenc.invocation.status import InvocationStatus, InvocationStatusRecord, status_record_transition
from pynenc.serializer import BaseSerializer
from pynenc.util.subclasses import get_all_subclasses
from pynenc_redis.orchestrator.redis_orchestrator import RedisOrchestrator
from pynenc_tests.util import get_module_name
from pynenc_tests.util.subclasses import get_runner_subclasses

from pynenc_redis_stack import RedisStackStateBackend
from tests.conftest import unique_app_id
from tests.pynenc03.watched_status import watched_status_transition


@pytest.fixture(autouse=True)
def _pynenc_redis_status_transition_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set before any runner starts, so forked runner processes inherit it."""
    monkeypatch.setattr(RedisOrchestrator, "_atomic_status_transition", watched_status_transition)


def _distributed(builder: PynencBuilder, redis_url: str) -> PynencBuilder:
    return builder.redis(url=redis_url).redis_stack(url=redis_url)


@pytest.fixture
def app_instance(request: pytest.FixtureRequest, redis_url: str) -> Pynenc:
    app = _distributed(PynencBuilder().app_id(unique_app_id(request)), redis_url).build()
    assert isinstance(app.state_backend, RedisStackStateBackend)
    assert type(app.orchestrator).__name__ == "RedisOrchestrator"
    return app


@dataclass(frozen=True)
class AppComponents:
    """One runner with one serializer, as pynenc-redis pairs them."""

    serializer: type
    runner: type

    @property
    def combination_id(self) -> str:
        return f"Redis+RedisStack {self.runner.__name__}({self.serializer.__name__})"


def build_test_combinations() -> list[AppComponents]:
    runners = sorted(get_runner_subclasses(), key=lambda cls: cls.__name__)
    serializers = sorted(get_all_subclasses(BaseSerializer), key=lambda cls: cls.__name__)
    return [AppComponents(serializers[i % len(serializers)], runner) for i, runner in enumerate(runners)]


@pytest.fixture(params=build_test_combinations(), ids=lambda c: c.combination_id)
def app_combination_instance(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> Pynenc:
    """pynenc-redis's combinations fixture with our state backend; runner subprocesses
    rebuild the same app from the environment."""
    components: AppComponents = request.param
    test_module, test_name = get_module_name(request)
    app_id = f"{test_module}.{test_name}"
    builder = _distributed(PynencBuilder().app_id(app_id).logging_level("info"), redis_url)
    builder._config["serializer_cls"] = components.serializer.__name__
    builder._config["runner_cls"] = components.runner.__name__
    settings = {
        "APP_ID": app_id,
        "SERIALIZER_CLS": components.serializer.__name__,
        "RUNNER_CLS": components.runner.__name__,
        "ORCHESTRATOR__CYCLE_CONTROL": "True",
        "REDIS_URL": redis_url,
        "PRINT_ARGUMENTS": "False",
        "LOGGING_LEVEL": "info",
    }
    for name, value in settings.items():
        monkeypatch.setenv(f"PYNENC__{name}", value)
    app = builder.build()
    for component in ("client_data_store", "orchestrator", "broker", "state_backend", "trigger"):
        monkeypatch.setenv(f"PYNENC__{component.upper()}_CLS", type(getattr(app, component)).__name__)
    assert isinstance(app.state_backend, RedisStackStateBackend)
    app.state_backend.purge()
    return app
