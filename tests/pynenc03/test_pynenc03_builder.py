"""On pynenc 0.3, ``redis_stack()`` without ``components`` selects the state backend alone:
this package's other components implement pynenc 0.4's contracts."""

from __future__ import annotations

import pytest
from pynenc import PynencBuilder

from pynenc_redis_stack import RedisStackStateBackend
from tests.conftest import unique_app_id


def test_redis_stack_alone_selects_the_state_backend_only(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    app = PynencBuilder().app_id(unique_app_id(request)).redis_stack(url=redis_url).build()
    assert isinstance(app.state_backend, RedisStackStateBackend)
    chosen = {
        name: app.config_values.get(f"{name}_cls") for name in ("orchestrator", "broker", "client_data_store")
    }
    assert chosen == dict.fromkeys(chosen)  # pynenc's defaults: nothing chosen
